"""The secrets' destination directory on a failing disk: a real Pillion, a real
OpenBao dev server, the rendered files on a real small tmpfs that is remounted
read-only or filled up while a secret changes.

The previous file stays whole (no temporary file left behind), the failure is
counted (``pillion_secret_renders_total{result="error"}``), shown in the
``/healthz/ready`` body (the pod stays ready: the app's file is still valid) and
logged without the secret; once the directory takes writes again, the file is
written, though no value changed since (the render is retried on its own).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import PillionProcess, http, metric_value, running_pillion, wait_until
from tests.logs.mounts import fill, remount, tmpfs
from tests.secrets.servers import OpenBao
from tests.secrets.test_openbao import approle, secrets_config

OLD, NEW = "old-Pa55word-kept", "new-Pa55word-written-late"


def ready(process: PillionProcess) -> tuple[int, dict[str, object]]:
    status, _, body = http("GET", f"{process.status_url}/healthz/ready")
    return status, json.loads(body)


def problems(process: PillionProcess) -> list[str]:
    _, health = ready(process)
    components = health["components"]
    assert isinstance(components, dict)
    return list(components["secrets"].get("problems", []))


def errors(process: PillionProcess) -> float:
    exposition = http("GET", f"{process.status_url}/metrics")[2]
    series = 'pillion_secret_renders_total{result="error",template="env"}'
    return metric_value(exposition, series) or 0.0


@pytest.mark.parametrize("fault", ["read_only", "full"])
def test_an_unwritable_destination_keeps_the_old_file_and_writes_once_it_can(
    openbao: OpenBao, tmp_path: Path, fault: str
) -> None:
    openbao.put_kv("secret", "app", {"password": OLD})
    with tmpfs(tmp_path / "secrets", "1m") as out:
        body = secrets_config(
            openbao,
            approle(openbao, tmp_path),
            "    - {name: app, type: kv, path: secret/app, refresh: 200ms}",
            f"    - {{name: env, destination: {out}/app.env, format: dotenv, source: app}}",
        )
        with running_pillion(tmp_path, body) as process:
            assert (out / "app.env").read_text() == f'password="{OLD}"\n'
            filler = None
            if fault == "read_only":
                remount(out, "ro")
            else:
                filler = fill(out)
            openbao.put_kv("secret", "app", {"password": NEW})
            wait_until(lambda: errors(process) >= 2)  # failed, and tried again
            assert (out / "app.env").read_text() == f'password="{OLD}"\n'  # whole
            assert sorted(p.name for p in out.iterdir()) == sorted(
                ["app.env", *(["filler"] if filler else [])]
            )  # no temporary file left
            status, _ = ready(process)
            assert status == 200
            (problem,) = problems(process)
            reason = "Read-only file system" if fault == "read_only" else "No space left"
            assert problem.startswith(f"template env: cannot write {out}/app.env: {reason}")
            assert problem.endswith("the previous file is kept, written again once it can be")
            failure = process.wait_for_log("render failed; the previous file is kept")
            assert failure["template"] == "env"
            if filler is None:
                remount(out, "rw")
            else:
                filler.unlink()
            wait_until(lambda: (out / "app.env").read_text() == f'password="{NEW}"\n')
            wait_until(lambda: not problems(process))
            process.wait_for_log("written again")
        output = process.output()
    assert OLD not in output
    assert NEW not in output
