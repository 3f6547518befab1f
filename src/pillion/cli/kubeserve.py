"""``pillion webhook`` and ``pillion install``: the injector, and its manifests."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from typing import Any, Literal, TypeVar

import click
import yaml

from pillion import __version__
from pillion.config.types import ListenAddress

__all__ = ["install", "wait_started", "webhook"]

_F = TypeVar("_F", bound=Callable[..., Any])


def _revision_option(text: str) -> Callable[[_F], _F]:
    """``--revision``, checked as a name the manifests can be suffixed with."""
    return click.option(
        "--revision",
        default="default",
        show_default=True,
        callback=lambda _c, _p, value: _revision_name(value),
        help=text,
    )


@click.command()
@click.option("--listen", default="0.0.0.0:8443", show_default=True, help="HTTPS address.")
@click.option("--cert", required=True, type=click.Path(dir_okay=False), help="Serving cert.")
@click.option("--key", required=True, type=click.Path(dir_okay=False), help="Its key.")
@click.option(
    "--image",
    default=f"ghcr.io/pillion/pillion:{__version__}",
    show_default=True,
    help="The Pillion image injected (a pod's pillion.dev/image wins).",
)
@_revision_option(
    "Which pods this injector takes: `default`, those naming no revision; else those "
    "labelled (or in a namespace labelled) pillion.dev/rev=REVISION."
)
@click.option(
    "--injector-namespace",
    default="pillion-system",
    show_default=True,
    help="The injector's own namespace (never injected).",
)
@click.option(
    "--on-malformed",
    type=click.Choice(["allow", "deny"]),
    default="allow",
    show_default=True,
    help="The answer to a review that is not well formed.",
)
def webhook(
    listen: str,
    cert: str,
    key: str,
    image: str,
    revision: str,
    injector_namespace: str,
    on_malformed: str,
) -> None:
    """Serve the mutating admission webhook (AdmissionReview v1) over HTTPS."""
    from pillion.kube.inject import InjectSettings
    from pillion.kube.webhook import WebhookServer, run_webhook
    from pillion.telemetry import configure_logging

    try:
        address = ListenAddress.parse(listen)
    except ValueError as exc:
        click.echo(f"error: --listen: {exc}", err=True)
        sys.exit(2)
    configure_logging("info")
    settings = InjectSettings(image=image, injector_namespace=injector_namespace, revision=revision)
    policy: Literal["allow", "deny"] = "deny" if on_malformed == "deny" else "allow"
    sys.exit(run_webhook(WebhookServer(settings, cert, key, address, policy)))


@click.command()
@click.option("--namespace", default="pillion-system", show_default=True)
@click.option("--image", default=f"ghcr.io/pillion/pillion:{__version__}", show_default=True)
@click.option(
    "--failure-policy",
    type=click.Choice(["Ignore", "Fail"]),
    default="Ignore",
    show_default=True,
    help="What the API server does when the webhook fails.",
)
@click.option(
    "--cert-manager",
    is_flag=True,
    help="Leave the serving certificate to cert-manager (default: made here).",
)
@click.option("--replicas", default=2, show_default=True, type=click.IntRange(1, 100))
@_revision_option(
    "Render an independent injector (names suffixed -REVISION) for the namespaces and "
    "pods labelled pillion.dev/rev=REVISION: a canary of a new version."
)
@click.option(
    "--tag",
    default=None,
    callback=lambda _c, _p, value: None if value is None else _revision_name(value),
    help="Render only a webhook configuration sending what is labelled "
    "pillion.dev/rev=TAG to --revision's injector (move the tag by applying it again).",
)
@click.option(
    "--ca-file",
    type=click.Path(dir_okay=False, exists=True),
    default=None,
    help="With --tag and without --cert-manager: the revision's CA certificate "
    "(its Secret's ca.crt), which the API server checks the injector with.",
)
def install(
    namespace: str,
    image: str,
    failure_policy: str,
    cert_manager: bool,
    replicas: int,
    revision: str,
    tag: str | None,
    ca_file: str | None,
) -> None:
    """Print the injector's manifests, for `kubectl apply -f -`."""
    from pathlib import Path

    from pillion.kube.install import InstallSettings, manifests, tag_manifests

    policy: Literal["Ignore", "Fail"] = "Fail" if failure_policy == "Fail" else "Ignore"
    settings = InstallSettings(namespace, image, policy, cert_manager, replicas, revision)
    if tag is None:
        documents = manifests(settings)
    else:
        if tag == revision:
            raise click.UsageError("a tag is another name than the revision it points at")
        if not cert_manager and ca_file is None:
            raise click.UsageError(
                "--tag needs the revision's CA: --ca-file (its Secret's ca.crt) or --cert-manager"
            )
        ca = None if cert_manager or ca_file is None else Path(ca_file).read_bytes()
        documents = tag_manifests(settings, tag, ca)
    click.echo(yaml.safe_dump_all(documents, sort_keys=False), nl=False)


def _revision_name(value: str) -> str:
    """A revision or tag: a DNS label short enough to suffix names with."""
    if not re.fullmatch(r"[a-z0-9]([a-z0-9-]{0,28}[a-z0-9])?", value):
        raise click.BadParameter(
            f"{value!r}: a revision is lower-case letters, digits and '-', at most 30"
        )
    return value


@click.command(name="wait-started")
@click.option(
    "--status", default="127.0.0.1:15020", show_default=True, help="Pillion's status address."
)
@click.option("--timeout", default=300.0, show_default=True, help="Seconds before exit 1.")
def wait_started(status: str, timeout: float) -> None:
    """Wait until Pillion's /healthz/started passes (classic mode's postStart hold,
    so the app container starts after the sidecar is up)."""
    import time
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    url = f"http://{status}/healthz/started"
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    click.echo(f"error: {url} did not pass in {timeout:g}s", err=True)
    sys.exit(1)
