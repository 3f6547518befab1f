"""``pillion iptables``: install (or remove) the pod's traffic capture, then exit."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence

import click

from pillion.kube.iptables import (
    FAMILIES,
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
    help="Comma-separated CIDRs (IPv4 or IPv6) not captured outbound.",
)
@click.option(
    "--exclude-outbound-ports",
    default="",
    help="Comma-separated destination ports not captured outbound.",
)
@click.option(
    "--ipv6/--no-ipv6",
    default=True,
    show_default=True,
    help="Capture IPv6 too (ip6tables), where the pod has IPv6.",
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
    ipv6: bool,
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
    families = FAMILIES if ipv6 else FAMILIES[:1]
    if dry_run:
        for family in families:
            tool = _TOOLS[family]
            if cleanup:
                click.echo("\n".join(" ".join([tool, *c]) for c in cleanup_commands()))
            else:
                click.echo(f"# {tool}-restore --noflush")
                click.echo(restore_input(settings, family), nl=False)
        return
    done = []
    for family in families:
        tool = _TOOLS[family]
        try:
            listing = _run([tool, "-t", "nat", "-S"])
        except _Failed as exc:
            if family == "ipv6":  # no IPv6 in this pod (or kernel): nothing to capture
                click.echo(f"warning: IPv6 not captured: {exc}", err=True)
                continue
            click.echo(f"error: {exc}", err=True)
            sys.exit(EXIT_FAILED)
        try:
            _clean(tool, listing)
            if not cleanup:
                _run([f"{tool}-restore", "--noflush"], restore_input(settings, family))
        except _Failed as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(EXIT_FAILED)
        done.append(family)
    what = "capture removed" if cleanup else f"capture installed ({settings.mode})"
    click.echo(f"{what}: {', '.join(done)}")


class _Failed(Exception):
    pass


_TOOLS = {"ipv4": "iptables", "ipv6": "ip6tables"}


def _clean(tool: str, listing: str) -> None:
    """Remove what ``listing`` shows of an earlier capture (nothing, if there is none)."""
    for command in cleanup_commands(listing):
        _run([tool, *command])


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
