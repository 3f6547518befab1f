"""``pillion certs init | issue``: a development CA and workload certificates.

The CA code (and ``cryptography``) is imported by these commands only, so that
``pillion run`` does not carry it."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from pillion.config import EXIT_BAD_CONFIG
from pillion.tls.lifetimes import CA_DAYS, WORKLOAD_DAYS

__all__ = ["certs"]


def _fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(EXIT_BAD_CONFIG)


def _write(path: Path, data: bytes, mode: int) -> None:
    """Write atomically (temp file, fsync, rename), created with ``mode`` (never
    readable by others even for a moment when 0600)."""
    temp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temp, path)


@click.group()
def certs() -> None:
    """A development CA and workload certificates (ECDSA P-256)."""


@certs.command()
@click.option("--dir", "directory", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Where ca.crt and ca.key (mode 0600) go.")  # fmt: skip
@click.option("--name", default="Pillion dev CA", show_default=True, help="The CA's common name.")
@click.option("--days", default=CA_DAYS, show_default=True, type=click.FloatRange(min=0.001))
@click.option("--force", is_flag=True, help="Replace an existing CA.")
def init(directory: Path, name: str, days: float, force: bool) -> None:
    """Create a CA in DIR (ca.crt, ca.key)."""
    cert, key = directory / "ca.crt", directory / "ca.key"
    if (cert.exists() or key.exists()) and not force:
        _fail(f"{directory} already has a CA; --force replaces it")
    from pillion.tls.devca import new_ca

    directory.mkdir(parents=True, exist_ok=True)
    ca = new_ca(name, days=days)
    _write(key, ca.key_pem, 0o600)
    _write(cert, ca.cert_pem, 0o644)
    click.echo(f"CA written: {cert} (key {key}), valid {days:g} days")


@certs.command(name="issue")
@click.option("--ca-dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="The CA made by `pillion certs init`.")  # fmt: skip
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Where NAME.crt and NAME.key (mode 0600) go.")  # fmt: skip
@click.option("--name", required=True, help="File name stem, e.g. `checkout`.")
@click.option("--spiffe-id", default=None, help="e.g. spiffe://cluster.local/ns/shop/sa/checkout")
@click.option("--dns", "dns_names", multiple=True, help="A DNS name (repeat for more).")
@click.option("--ip", "ip_addresses", multiple=True, help="An IP address (repeat for more).")
@click.option("--common-name", default=None, help="Subject CN (default: none).")
@click.option("--days", default=WORKLOAD_DAYS, show_default=True, type=click.FloatRange(min=0.001))
def issue_command(
    ca_dir: Path,
    out_dir: Path,
    name: str,
    spiffe_id: str | None,
    dns_names: tuple[str, ...],
    ip_addresses: tuple[str, ...],
    common_name: str | None,
    days: float,
) -> None:
    """Issue a workload certificate signed by the CA."""
    from pillion.tls.devca import Issued, issue

    if "/" in name or name.startswith("."):
        _fail(f"--name {name!r} must be a plain file name")
    try:
        ca = Issued((ca_dir / "ca.crt").read_bytes(), (ca_dir / "ca.key").read_bytes())
    except OSError as exc:
        _fail(f"cannot read the CA in {ca_dir}: {exc.strerror} (run `pillion certs init` first)")
        return
    try:
        issued = issue(
            ca,
            spiffe_id=spiffe_id,
            dns_names=dns_names,
            ip_addresses=ip_addresses,
            common_name=common_name,
            days=days,
        )
    except ValueError as exc:
        _fail(str(exc))
        return
    out_dir.mkdir(parents=True, exist_ok=True)
    cert, key = out_dir / f"{name}.crt", out_dir / f"{name}.key"
    _write(key, issued.key_pem, 0o600)
    _write(cert, issued.cert_pem, 0o644)
    click.echo(f"certificate written: {cert} (key {key}), valid {days:g} days")
