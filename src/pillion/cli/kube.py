"""``pillion inject``: offline sidecar injection into manifests, like ``istioctl kube-inject``;
``pillion proxy-status``: which pods run which sidecar, from ``kubectl get pods`` output."""

from __future__ import annotations

import dataclasses
import difflib
import sys
from typing import Any, NoReturn

import click
import yaml

from pillion import __version__
from pillion.kube import proxystatus
from pillion.kube.inject import InjectSettings
from pillion.kube.workloads import inject_documents

__all__ = ["inject", "proxy_status"]

EXIT_OLDER = 1
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
              help="The Pillion image injected (a pod's pillion.dev/image wins).")  # fmt: skip
@click.option("--revision", default=InjectSettings.revision, show_default=True,
              help="Inject as this revision: pods labelled pillion.dev/rev for another "
              "one are left to it.")  # fmt: skip
def inject(path: str, diff: bool, native: bool | None, image: str, revision: str) -> None:
    """Inject Pillion into the pods of a manifest and print it (to `kubectl apply -f -`).

    Every pod template is injected unless it opts out; why one was not is printed
    on stderr. Exit 2 when the file cannot be read or is not YAML.
    """
    try:
        documents = _read(path)
    except click.ClickException as exc:
        click.echo(f"error: {exc.message}", err=True)
        sys.exit(EXIT_BAD_INPUT)
    settings = InjectSettings(image=image, revision=revision)
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


def _version_option(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    if proxystatus.parse_version(value) is None:
        raise click.BadParameter(f"{value!r} is not a version like 0.2.0")
    return value.strip()


@click.command(name="proxy-status")
@click.option("-f", "--filename", "path", default="-", show_default=True,
              help="What `kubectl get pods -A -o json` (or -o yaml) printed: a List of "
              "Pods, a PodList or a Pod; - reads stdin.")  # fmt: skip
@click.option("--older-than", default=__version__, show_default=True, callback=_version_option,
              help="Flag sidecars older than this version (default: this Pillion's).")  # fmt: skip
@click.option("-o", "--output", type=click.Choice(["table", "json"]), default="table",
              show_default=True, help="A table per pod and per namespace, or JSON.")  # fmt: skip
@click.option("--fail-if-older", is_flag=True,
              help="Exit 1 when a pod's sidecar is older than --older-than (for CI).")  # fmt: skip
def proxy_status(path: str, older_than: str, output: str, fail_if_older: bool) -> None:
    """Report which pods run Pillion, at which version and injector revision, as a
    native or classic sidecar, and why the others were not injected. Reads pods,
    needs no API access:

    \b
        kubectl get pods -A -o json | pillion proxy-status

    A version that is not release numbers (latest, a digest) is listed as unknown,
    never as older.

    Exit status: 0 (also for no pods); 1 with --fail-if-older when a sidecar is
    older; 2 when the input cannot be read or is not pods (nothing is printed).
    """
    source = "stdin" if path == "-" else path
    try:
        with click.open_file(path, encoding="utf-8-sig") as stream:
            text = stream.read()
        rows = proxystatus.pod_rows(proxystatus.load_pods(text), older_than)
    except OSError as exc:
        _bad_input(f"{source}: cannot read: {exc.strerror or exc}")
    except UnicodeDecodeError as exc:
        _bad_input(f"{source}: not UTF-8 text: {exc.reason}")
    except proxystatus.NotAPodList as exc:
        _bad_input(f"{source}: {exc}")
    render = proxystatus.render_json if output == "json" else proxystatus.render_table
    click.echo(render(rows, older_than), nl=False)
    if fail_if_older and any(row.version_check == "older" for row in rows):
        sys.exit(EXIT_OLDER)


def _bad_input(message: str) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(EXIT_BAD_INPUT)
