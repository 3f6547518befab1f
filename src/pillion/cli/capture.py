"""``pillion iptables``: install (or remove) the pod's traffic capture, then exit."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence

import click

from pillion.kube.iptables import (
    CaptureSettings,
    cleanup_commands,
    parse_cidrs,
    parse_ports,
    restore_input,
)

__all__ = ["iptables"]

EXIT_FAILED = 1
EXIT_BAD_OPTIONS = 2


@click.command()
@click.option(
    "--capture",
    "--mode",
    "mode",
    type=click.Choice(["inbound", "all"]),
    default="inbound",
    show_default=True,
    help="Inbound only, or also the pod's outgoing TCP.",
)
@click.option("--proxy-uid", default=1337, show_default=True, type=click.IntRange(0))
@click.option("--inbound-port", default=15006, show_default=True, type=click.IntRange(1, 65535))
@click.option("--outbound-port", default=15001, show_default=True, type=click.IntRange(1, 65535))
@click.option(
    "--exclude-inbound-ports",
    default="",
    help="Comma-separated ports not captured inbound (15000 and 15020 never are).",
)
@click.option(
    "--exclude-outbound-cidrs",
    default="",
    help="Comma-separated IPv4 CIDRs not captured outbound.",
)
@click.option(
    "--exclude-outbound-ports",
    default="",
    help="Comma-separated destination ports not captured outbound.",
)
@click.option("--cleanup", is_flag=True, help="Remove Pillion's chains and jump rules instead.")
@click.option("--dry-run", is_flag=True, help="Print what would be applied; change nothing.")
def iptables(
    mode: str,
    proxy_uid: int,
    inbound_port: int,
    outbound_port: int,
    exclude_inbound_ports: str,
    exclude_outbound_cidrs: str,
    exclude_outbound_ports: str,
    cleanup: bool,
    dry_run: bool,
) -> None:
    """Redirect the pod's TCP traffic to Pillion (nat table, Pillion's own chains;
    other rules are kept). Running it again replaces the capture."""
    try:
        settings = CaptureSettings(
            mode="all" if mode == "all" else "inbound",
            inbound_port=inbound_port,
            outbound_port=outbound_port,
            proxy_uid=proxy_uid,
            exclude_inbound_ports=parse_ports(exclude_inbound_ports),
            exclude_outbound_cidrs=parse_cidrs(exclude_outbound_cidrs),
            exclude_outbound_ports=parse_ports(exclude_outbound_ports),
        )
    except ValueError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_BAD_OPTIONS)
    if dry_run:
        if cleanup:
            click.echo("\n".join(" ".join(["iptables", *c]) for c in cleanup_commands()))
        else:
            click.echo(restore_input(settings), nl=False)
        return
    try:
        _clean()
        if not cleanup:
            _run(["iptables-restore", "--noflush"], restore_input(settings))
    except _Failed as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_FAILED)
    click.echo("capture removed" if cleanup else f"capture installed ({settings.mode})")


class _Failed(Exception):
    pass


def _clean() -> None:
    """Remove what is there of an earlier capture (nothing, if there is none)."""
    listing = _run(["iptables", "-t", "nat", "-S"])
    for command in cleanup_commands(listing):
        _run(["iptables", *command])


def _run(argv: Sequence[str], stdin: str | None = None) -> str:
    try:
        done = subprocess.run(
            list(argv), input=stdin, capture_output=True, text=True, check=False, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise _Failed(f"{argv[0]}: {exc}") from None
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip() or f"exit {done.returncode}"
        raise _Failed(f"{' '.join(argv)} failed: {detail}")
    return done.stdout
