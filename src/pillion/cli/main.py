"""``pillion run | init | exec | validate | schema | version | demo | certs``."""

from __future__ import annotations

import importlib
import json
import logging
import os
import sys
from pathlib import Path
from typing import ClassVar

import click

from pillion import __version__
from pillion.config import EXIT_BAD_CONFIG, ConfigError, PillionConfig, load_config
from pillion.telemetry import configure_logging

__all__ = ["main"]

_config_option = click.option(
    "-c",
    "--config",
    "config_path",
    envvar="PILLION_CONFIG",
    required=True,
    type=click.Path(dir_okay=False),
    help="Path of pillion.yaml (or set PILLION_CONFIG).",
)


class _Commands(click.Group):
    """The commands defined here, and the others by ``module:attribute``, imported
    when named: ``pillion run`` starts without the Kubernetes, certificate and
    capture commands' imports."""

    elsewhere: ClassVar[dict[str, str]] = {
        "certs": "pillion.cli.certs:certs",
        "inject": "pillion.cli.kube:inject",
        "proxy-status": "pillion.cli.kube:proxy_status",
        "webhook": "pillion.cli.kubeserve:webhook",
        "install": "pillion.cli.kubeserve:install",
        "wait-started": "pillion.cli.kubeserve:wait_started",
        "iptables": "pillion.cli.capture:iptables",
    }

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *self.elsewhere])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        where = self.elsewhere.get(cmd_name)
        if where is None:
            return super().get_command(ctx, cmd_name)
        module, attribute = where.split(":")
        command = getattr(importlib.import_module(module), attribute)
        assert isinstance(command, click.Command)
        return command


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="pillion")
def cli() -> None:
    """Pillion: the sidecar for your pod's proxy, logs, secrets and metrics."""


@cli.command()
@_config_option
@click.option(
    "--once",
    is_flag=True,
    help="Render the secrets once and exit (0, or 1 naming the failure): the "
    "init-container mode, as `pillion init`.",
)
def run(config_path: str, once: bool) -> None:
    """Run the sidecar until SIGTERM (drain, then exit 0)."""
    config = _load_or_log(config_path)
    # imported here: `pillion validate` and `version` need none of the runtime
    if once:
        from pillion.runtime.once import render_once

        sys.exit(render_once(config))
    from pillion.runtime import run_sidecar

    sys.exit(run_sidecar(config, config_path))


@cli.command()
@_config_option
def init(config_path: str) -> None:
    """Render the secrets once and exit: 0, or 1 naming the template or source
    that failed (nothing is written then)."""
    from pillion.runtime.once import render_once

    sys.exit(render_once(_load_or_log(config_path)))


@cli.command(name="exec")
@_config_option
@click.argument("command", nargs=-1, required=True)
def exec_command(config_path: str, command: tuple[str, ...]) -> None:
    """Render the secrets, then run COMMAND (after `--`) with them in its environment;
    restart or signal it when they change; exit with its status."""
    from pillion.runtime.execmode import run_exec

    sys.exit(run_exec(_load_or_log(config_path), list(command)))


def _load_or_log(config_path: str) -> PillionConfig:
    try:
        return load_config(config_path)
    except ConfigError as exc:
        configure_logging("info")
        logging.getLogger("pillion.config").error(
            "invalid configuration; nothing started",
            extra={"source": exc.source, "errors": [str(issue) for issue in exc.issues]},
        )
        sys.exit(exc.exit_code)


@cli.command()
@_config_option
@click.option(
    "--against",
    "against",
    type=click.Path(dir_okay=False),
    default=None,
    help="The config running now: list what the checked file would change (listeners, "
    "routes, clusters, outputs, sources...) before it is applied. Secrets never show.",
)
def validate(config_path: str, against: str | None) -> None:
    """Check a config file: exit 0 if valid, 2 with every error otherwise.

    Renamed keys still in the file are read under their new names and listed as
    warnings on stderr (exit 0)."""
    config = _load_or_exit(config_path)
    for note in config.deprecations:
        click.echo(f"{config_path}: warning: {note}", err=True)
    enabled = [
        name
        for name in ("proxy", "logs", "secrets", "config", "exporters")
        if getattr(config, name) is not None
    ]
    click.echo(f"{config_path}: valid (features on: {', '.join(enabled) or 'none'})")
    if against is not None:
        from pillion.config.diff import describe_changes

        changes = describe_changes(_load_or_exit(against), config)
        click.echo(f"against {against}: " + (f"{len(changes)} changes" if changes else "no change"))
        for line in changes:
            click.echo(f"  {line}")


@cli.command()
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["json", "markdown"]),
    default="json",
    show_default=True,
    help="JSON Schema for editors, or the Markdown reference.",
)
def schema(output_format: str) -> None:
    """Print the JSON Schema (or Markdown reference) of pillion.yaml."""
    if output_format == "markdown":
        from pillion.config.reference import markdown_reference

        click.echo(markdown_reference(), nl=False)
    else:
        from pillion.config.reference import json_schema

        click.echo(json.dumps(json_schema(), indent=2))


@cli.command()
def version() -> None:
    """Print Pillion's version, then whether its hot path runs compiled (and, in
    the image, the source revision it was built from)."""
    from pillion import extensions

    click.echo(__version__)
    click.echo(f"hot path: {extensions.describe()}")
    revision = os.environ.get("PILLION_IMAGE_REVISION")
    if revision:
        click.echo(f"image built from revision {revision}")


@cli.command()
@click.option("--app-port", default=8080, show_default=True, help="Port of the demo app.")
@click.option("--admin-port", default=15000, show_default=True, help="Pillion's admin port.")
@click.option("--status-port", default=15020, show_default=True, help="Pillion's status port.")
@click.option("--proxy-port", default=15006, show_default=True, help="Pillion's inbound proxy.")
@click.option("--limited-port", default=15007, show_default=True, help="A rate-limited listener.")
@click.option("--tcp-port", default=15008, show_default=True, help="A TCP passthrough to the app.")
@click.option("--outbound-port", default=15001, show_default=True, help="The outbound listener.")
@click.option(
    "--backend-port", default=8081, show_default=True, help="A second service the app calls."
)
@click.option("--tls-port", default=15443, show_default=True, help="Pillion's TLS listener.")
@click.option("--statsd-port", default=9125, show_default=True, help="Pillion's StatsD (UDP).")
@click.option("--grpc-port", default=50051, show_default=True, help="A gRPC service, via Pillion.")
@click.option(
    "--collector-port", default=4318, show_default=True, help="An OTLP/HTTP trace collector."
)
@click.option(
    "--workdir",
    type=click.Path(file_okay=False),
    default=None,
    help="Where the pod's shared files go (default: a new temporary directory).",
)
@click.option(
    "--print-config",
    is_flag=True,
    help="Print the demo's pillion.yaml with these ports written in, and exit: a "
    "config to start from.",
)
def demo(
    app_port: int,
    admin_port: int,
    status_port: int,
    proxy_port: int,
    limited_port: int,
    tcp_port: int,
    outbound_port: int,
    backend_port: int,
    tls_port: int,
    statsd_port: int,
    grpc_port: int,
    collector_port: int,
    workdir: str | None,
    print_config: bool,
) -> None:
    """Run a local pod: a demo app plus Pillion with a built-in config."""
    from pillion.demo.runner import DemoPorts, demo_config, run_demo

    ports = DemoPorts(
        app=app_port,
        admin=admin_port,
        status=status_port,
        proxy=proxy_port,
        limited=limited_port,
        tcp=tcp_port,
        outbound=outbound_port,
        backend=backend_port,
        tls=tls_port,
        statsd=statsd_port,
        grpc=grpc_port,
        collector=collector_port,
    )
    if print_config:
        click.echo(demo_config(ports, workdir or str(Path("pillion-demo").resolve())), nl=False)
        return
    sys.exit(run_demo(ports, workdir))


def _load_or_exit(config_path: str) -> PillionConfig:
    try:
        return load_config(config_path)
    except ConfigError as exc:
        click.echo(str(exc), err=True)
        sys.exit(EXIT_BAD_CONFIG)


def main() -> None:
    """The console script."""
    cli(prog_name="pillion")
