"""``pillion webhook`` and ``pillion install``: the injector, and its manifests."""

from __future__ import annotations

import sys
from typing import Literal

import click
import yaml

from pillion.config.types import ListenAddress

__all__ = ["install", "wait_started", "webhook"]


@click.command()
@click.option("--listen", default="0.0.0.0:8443", show_default=True, help="HTTPS address.")
@click.option("--cert", required=True, type=click.Path(dir_okay=False), help="Serving cert.")
@click.option("--key", required=True, type=click.Path(dir_okay=False), help="Its key.")
@click.option(
    "--image",
    default="ghcr.io/pillion/pillion:latest",
    show_default=True,
    help="The Pillion image injected.",
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
    listen: str, cert: str, key: str, image: str, injector_namespace: str, on_malformed: str
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
    settings = InjectSettings(image=image, injector_namespace=injector_namespace)
    policy: Literal["allow", "deny"] = "deny" if on_malformed == "deny" else "allow"
    sys.exit(run_webhook(WebhookServer(settings, cert, key, address, policy)))


@click.command()
@click.option("--namespace", default="pillion-system", show_default=True)
@click.option("--image", default="ghcr.io/pillion/pillion:latest", show_default=True)
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
def install(
    namespace: str, image: str, failure_policy: str, cert_manager: bool, replicas: int
) -> None:
    """Print the injector's manifests, for `kubectl apply -f -`."""
    from pillion.kube.install import InstallSettings, manifests

    policy: Literal["Ignore", "Fail"] = "Fail" if failure_policy == "Fail" else "Ignore"
    settings = InstallSettings(namespace, image, policy, cert_manager, replicas)
    click.echo(yaml.safe_dump_all(manifests(settings), sort_keys=False), nl=False)


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
