"""``pillion inject``: offline sidecar injection into manifests, like ``istioctl kube-inject``."""

from __future__ import annotations

import dataclasses
import difflib
import sys
from typing import Any

import click
import yaml

from pillion.kube.inject import InjectSettings
from pillion.kube.workloads import inject_documents

__all__ = ["inject"]

EXIT_BAD_INPUT = 2


def _dump(documents: list[dict[str, Any]]) -> str:
    return yaml.safe_dump_all(documents, sort_keys=False)


def _read(path: str) -> list[dict[str, Any]]:
    try:
        with click.open_file(path, encoding="utf-8") as stream:
            loaded = [doc for doc in yaml.safe_load_all(stream) if doc is not None]
    except OSError as exc:
        raise click.ClickException(f"{path}: cannot read: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise click.ClickException(f"{path}: not UTF-8 text: {exc.reason}") from exc
    except yaml.YAMLError as exc:
        raise click.ClickException(f"{path}: invalid YAML: {exc}") from exc
    for index, document in enumerate(loaded):
        if not isinstance(document, dict):
            kind = type(document).__name__
            raise click.ClickException(
                f"{path}: document {index + 1} is a {kind}, not a Kubernetes object"
            )
    return loaded


@click.command()
@click.option("-f", "--filename", "path", required=True,
              help="The manifest file (multi-document YAML); - reads stdin.")  # fmt: skip
@click.option("--diff", is_flag=True, help="Print a unified diff of the changes instead.")
@click.option("--native/--classic", "native", default=None,
              help="The default mode: a native sidecar (Kubernetes 1.29+), or a first "
              "container held by a postStart hook. A pod's pillion.dev/native-sidecar "
              "annotation wins. Default: native.")  # fmt: skip
@click.option("--image", default=InjectSettings.image, show_default=True,
              help="The Pillion image injected.")  # fmt: skip
def inject(path: str, diff: bool, native: bool | None, image: str) -> None:
    """Inject Pillion into the pods of a manifest and print it (to `kubectl apply -f -`).

    Every pod template is injected unless it opts out; why one was not is printed
    on stderr. Exit 2 when the file cannot be read or is not YAML.
    """
    try:
        documents = _read(path)
    except click.ClickException as exc:
        click.echo(f"error: {exc.message}", err=True)
        sys.exit(EXIT_BAD_INPUT)
    settings = InjectSettings(image=image)
    if native is not None:
        settings = dataclasses.replace(settings, native_sidecar=native)
    injected, outcomes = inject_documents(documents, settings)
    for outcome in outcomes:
        if not outcome.decision.injected:
            click.echo(f"{outcome.where}: not injected: {outcome.decision.reason}", err=True)
    if diff:
        lines = difflib.unified_diff(
            _dump(documents).splitlines(keepends=True),
            _dump(injected).splitlines(keepends=True),
            fromfile=path,
            tofile=f"{path} (injected)",
        )
        click.echo("".join(lines), nl=False)
    else:
        click.echo(_dump(injected), nl=False)
