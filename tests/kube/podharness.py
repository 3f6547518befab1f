"""A pod on this machine: its containers as processes in one network namespace,
with one directory per volume, started and stopped in the kubelet's order.

Real: the network namespaces (the pod's; a client's, a remote service's, each
joined to the pod by a veth pair; and a link to this machine's own namespace,
where servers such as OpenBao run), iptables in the pod's namespace, each
container's process with the uid, gid and groups of its security context
(``setpriv``), the env (``fieldRef`` included), the HTTP startup probe, and the
order: init containers one by one, a native sidecar (``restartPolicy: Always``)
started and its startup probe passed before the next container, ``postStart``
hooks holding the next container, ``preStop`` hooks before SIGTERM, native
sidecars stopped after the app containers have exited, in reverse order, within
the grace period, then SIGKILL.

Emulated (there is no container runtime here): images (Pillion's image runs the
checkout's ``pillion``, other containers run their command), volume mounts (a
directory per volume; each mount path is rewritten to it in args, env, and the
files of configMap and downwardAPI volumes), the downwardAPI files (written once,
from the pod as given). Processes of Pillion's image get ``CAP_DAC_READ_SEARCH``
only to read the checkout wherever it lies; the app gets nothing extra.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

PILLION_IMAGE = "pillion"
PILLION = str(Path(sys.executable).with_name("pillion"))
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def app_container(*args: str) -> dict[str, Any]:
    """The test app's container (``podapp.py`` from the ``app-code`` ConfigMap, run
    by the image's python3) with ``args``, listening on 8080."""
    return {
        "name": "app",
        "image": "python",
        "command": ["/usr/bin/python3", "-I", "/app/podapp.py", *args],
        "volumeMounts": [{"name": "app-code", "mountPath": "/app"}],
        "ports": [{"containerPort": 8080}],
    }


def sh(*argv: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, check=check, timeout=timeout)


@dataclass
class Network:
    """The pod's namespace and its neighbours, on 10.124.S.0/28 and fd00:124:S::/48."""

    tag: str
    subnet: int

    @property
    def pod(self) -> str:
        return f"pod-{self.tag}"

    @property
    def client(self) -> str:
        return f"client-{self.tag}"

    @property
    def remote(self) -> str:
        return f"remote-{self.tag}"

    def ip(self, last: int) -> str:
        return f"10.124.{self.subnet}.{last}"

    @property
    def pod_ip(self) -> str:
        return self.ip(2)

    @property
    def client_ip(self) -> str:
        return self.ip(1)

    @property
    def remote_ip(self) -> str:
        return self.ip(6)

    def ip6(self, link: int, last: int) -> str:
        return f"fd00:124:{self.subnet:x}:{link}::{last}"

    @property
    def pod_ip6(self) -> str:
        return self.ip6(1, 2)

    @property
    def client_ip6(self) -> str:
        return self.ip6(1, 1)

    @property
    def remote_ip6(self) -> str:
        return self.ip6(2, 2)

    @property
    def node_ip(self) -> str:
        """This machine's own namespace, as the pod reaches it."""
        return self.ip(10)

    def create(self) -> None:
        for name in (self.pod, self.client, self.remote):
            sh("ip", "netns", "add", name)
            sh("ip", "-n", name, "link", "set", "lo", "up")
        # (namespace, address) at each end of a /30, and of a /64 for the first two
        links = [
            ((self.client, self.client_ip), (self.pod, self.pod_ip)),
            ((self.pod, self.ip(5)), (self.remote, self.remote_ip)),
            ((self.pod, self.ip(9)), (None, self.node_ip)),
        ]
        links6 = [(self.client_ip6, self.pod_ip6), (self.ip6(2, 1), self.remote_ip6)]
        for index, ((left, left_ip), (right, right_ip)) in enumerate(links):
            a, b = f"v{self.tag}{index}a", f"v{self.tag}{index}b"
            where_b = ["netns", right] if right is not None else []
            sh("ip", "link", "add", a, "netns", str(left), "type", "veth",
               "peer", "name", b, *where_b)  # fmt: skip
            sh("ip", "-n", str(left), "addr", "add", f"{left_ip}/30", "dev", a)
            sh("ip", "-n", str(left), "link", "set", a, "up")
            on_b = ["-n", right] if right is not None else []
            sh("ip", *on_b, "addr", "add", f"{right_ip}/30", "dev", b)
            sh("ip", *on_b, "link", "set", b, "up")
            if index < len(links6):  # no duplicate address detection: usable at once
                left6, right6 = links6[index]
                sh("ip", "-n", str(left), "addr", "add", f"{left6}/64", "dev", a, "nodad")
                sh("ip", *on_b, "addr", "add", f"{right6}/64", "dev", b, "nodad")

    def delete(self) -> None:
        for name in (self.pod, self.client, self.remote):  # their veth pairs go with them
            sh("ip", "netns", "del", name, check=False)

    def run(
        self, namespace: str, *argv: str, timeout: float = 30
    ) -> subprocess.CompletedProcess[str]:
        return sh("ip", "netns", "exec", namespace, *argv, check=False, timeout=timeout)

    def popen(self, namespace: str, *argv: str, log: Path) -> subprocess.Popen[bytes]:
        with log.open("ab") as out:
            return subprocess.Popen(
                ["ip", "netns", "exec", namespace, *argv], stdout=out, stderr=subprocess.STDOUT
            )

    def curl(self, namespace: str, url: str, *options: str) -> tuple[int, str]:
        """Status and body of a GET from ``namespace``; status 0 when no answer came."""
        done = self.run(
            namespace, "curl", "-s", "-m", "5", "-w", "\n%{http_code}", *options, url, timeout=10
        )
        body, _, code = done.stdout.rpartition("\n")
        return (int(code) if code.isdigit() else 0), body


@contextmanager
def network() -> Iterator[Network]:
    if os.geteuid() != 0:
        raise AssertionError("network namespaces need root (CI runs as root)")
    made = Network(f"{random.randrange(16**5):05x}", random.randrange(1, 255))
    try:
        made.create()
        yield made
    finally:
        made.delete()


@dataclass
class Running:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    sidecar: bool
    spec: dict[str, Any]
    killed: bool = False


@dataclass
class PodRun:
    """One pod, run the kubelet's way. ``config_maps`` hold the files of the
    configMap volumes, by ConfigMap name."""

    pod: dict[str, Any]
    net: Network
    config_maps: dict[str, dict[str, str]] = field(default_factory=dict)
    secrets: dict[str, dict[str, str]] = field(default_factory=dict)
    service_account_token: str = "no-token"  # mounted into every container, as by default
    probe_interval: float = 0.2  # faster than periodSeconds: the order is what matters
    base: Path = field(init=False)
    volumes: dict[str, Path] = field(init=False)
    paths: dict[str, Path] = field(init=False)
    running: list[Running] = field(default_factory=list, init=False)
    events: list[tuple[float, str]] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        # Under /tmp (not pytest's 0700 directories): other uids must reach it.
        self.base = Path(tempfile.mkdtemp(prefix="pillion-pod-"))
        self.base.chmod(0o755)
        (self.base / "logs").mkdir()
        self.volumes = {}
        for volume in self.spec.get("volumes") or []:
            path = self.base / "volumes" / volume["name"]
            path.mkdir(parents=True)
            path.chmod(0o777)  # an emptyDir's mode
            self.volumes[volume["name"]] = path
        self.paths = {}
        for container in self.containers + self.init_containers:
            for mount in container.get("volumeMounts") or []:
                self.paths.setdefault(mount["mountPath"].rstrip("/"), self.volumes[mount["name"]])
        account = self.base / "serviceaccount"
        account.mkdir()
        (account / "token").write_text(self.service_account_token)
        (account / "token").chmod(0o644)
        self.paths[SERVICE_ACCOUNT_DIR] = account
        for volume in self.spec.get("volumes") or []:
            self._fill(volume)

    @property
    def spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = self.pod["spec"]
        return spec

    @property
    def containers(self) -> list[dict[str, Any]]:
        return list(self.spec.get("containers") or [])

    @property
    def init_containers(self) -> list[dict[str, Any]]:
        return list(self.spec.get("initContainers") or [])

    # -- volumes --

    def rewrite(self, text: str) -> str:
        """``text`` with every mount path replaced by its volume's directory."""
        for mount_path in sorted(self.paths, key=len, reverse=True):
            pattern = re.escape(mount_path) + r"(?=/|\b|$)"
            text = re.sub(r"(?<![\w/.-])" + pattern, str(self.paths[mount_path]), text)
        return text

    def _fill(self, volume: dict[str, Any]) -> None:
        path = self.volumes[volume["name"]]
        if "configMap" in volume:
            for key, text in self.config_maps[volume["configMap"]["name"]].items():
                (path / key).write_text(self.rewrite(text))
        elif "secret" in volume:
            for key, text in self.secrets[volume["secret"]["secretName"]].items():
                (path / key).write_text(text)
                (path / key).chmod(0o644)  # a Secret volume's defaultMode
        elif "downwardAPI" in volume:
            for item in volume["downwardAPI"]["items"]:
                (path / item["path"]).write_text(self.rewrite(self._field(item["fieldRef"])))

    def _field(self, ref: dict[str, Any]) -> str:
        metadata = self.pod.get("metadata") or {}
        wanted = ref["fieldPath"]
        if wanted in ("metadata.labels", "metadata.annotations"):
            values = metadata.get(wanted.split(".")[1]) or {}
            return "\n".join(f"{key}={json.dumps(value)}" for key, value in sorted(values.items()))
        one = re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", wanted)
        if one:
            return str((metadata.get(one.group(1)) or {}).get(one.group(2), ""))
        simple = {
            "metadata.name": metadata.get("name", "pod"),
            "metadata.namespace": metadata.get("namespace", "default"),
            "spec.nodeName": "node-1",
            "status.podIP": self.net.pod_ip,
        }
        return str(simple.get(wanted, ""))

    # -- processes --

    def _argv(self, container: dict[str, Any], command: Sequence[str]) -> list[str]:
        argv = [self.rewrite(arg) for arg in command]
        if container.get("image") == PILLION_IMAGE and argv and argv[0] == "pillion":
            argv[0] = PILLION
        pod_context = self.spec.get("securityContext") or {}
        context = container.get("securityContext") or {}
        uid = context.get("runAsUser", pod_context.get("runAsUser", 0))
        gid = context.get("runAsGroup", pod_context.get("runAsGroup", 0))
        groups = [str(pod_context["fsGroup"])] if "fsGroup" in pod_context else []
        if uid == 0 and gid == 0 and not groups:
            return argv
        user = ["setpriv", f"--reuid={uid}", f"--regid={gid}"]
        user += [f"--groups={','.join(groups)}"] if groups else ["--clear-groups"]
        if container.get("image") == PILLION_IMAGE:
            user += ["--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search"]
        return [*user, "--", *argv]

    def _env(self, container: dict[str, Any]) -> dict[str, str]:
        env = {"PATH": SYSTEM_PATH, "HOME": "/nonexistent"}
        for item in container.get("env") or []:
            if "value" in item:
                env[item["name"]] = self.rewrite(str(item["value"]))
            elif "fieldRef" in (item.get("valueFrom") or {}):
                env[item["name"]] = self._field(item["valueFrom"]["fieldRef"])
        return env

    def _command(self, container: dict[str, Any]) -> list[str]:
        command = list(container.get("command") or [])
        if not command and container.get("image") == PILLION_IMAGE:
            command = ["pillion"]  # the image's entrypoint
        return [*command, *(container.get("args") or [])]

    def _launch(self, container: dict[str, Any], out: IO[bytes]) -> subprocess.Popen[bytes]:
        """The container's process, in the pod's namespace, its output to ``out``."""
        argv = self._argv(container, self._command(container))
        return subprocess.Popen(
            ["ip", "netns", "exec", self.net.pod, *argv],
            stdout=out, stderr=subprocess.STDOUT, env=self._env(container),
        )  # fmt: skip

    def _signal(self, running: Running, signum: int) -> None:
        running.proc.send_signal(signum)

    def _spawn(self, container: dict[str, Any], *, sidecar: bool) -> Running:
        name = container["name"]
        log = self.base / "logs" / f"{name}.log"
        with log.open("ab") as out:
            proc = self._launch(container, out)
        self.event(f"started {name}")
        running = Running(name, proc, log, sidecar, container)
        self.running.append(running)
        return running

    def _exec_hook(self, container: dict[str, Any], command: list[str]) -> int:
        argv = self._argv(container, command)
        done = subprocess.run(
            ["ip", "netns", "exec", self.net.pod, *argv],
            capture_output=True, env=self._env(container), timeout=120,
        )  # fmt: skip
        return done.returncode

    def _http_get(self, action: dict[str, Any], timeout: float) -> list[str]:
        """An ``httpGet`` probe or hook, sent to the pod IP as the kubelet does; curl
        prints the status."""
        headers = [f"{h['name']}: {h['value']}" for h in action.get("httpHeaders") or []]
        return ["ip", "netns", "exec", self.net.pod, "curl", "-s", "-o", "/dev/null",
                "-w", "%{http_code}", "-m", str(max(1, int(timeout))),
                *[x for header in headers for x in ("-H", header)],
                f"http://{self.net.pod_ip}:{action['port']}{action.get('path', '/')}"]  # fmt: skip

    def event(self, what: str) -> None:
        self.events.append((time.monotonic(), what))  # list.append: safe from threads

    def when(self, what: str) -> float:
        return next(at for at, event in self.events if event == what)

    def log(self, name: str) -> str:
        return (self.base / "logs" / f"{name}.log").read_text(errors="replace")

    # -- the kubelet's order --

    def start(self, timeout: float = 60) -> None:
        """Init containers in order (a native sidecar until its startup probe
        passes, any other until it exits 0), then the app containers in order, each
        ``postStart`` hook finishing before the next container starts."""
        for container in self.init_containers:
            if container.get("restartPolicy") == "Always":
                running = self._spawn(container, sidecar=True)
                self._wait_started(running, timeout)
            else:
                running = self._spawn(container, sidecar=False)
                code = running.proc.wait(timeout=timeout)
                self.event(f"exited {running.name} {code}")
                if code != 0:
                    raise AssertionError(f"init container {running.name} exited {code}: "
                                         f"{self.log(running.name)}")  # fmt: skip
        for container in self.containers:
            running = self._spawn(container, sidecar=False)
            post_start = ((container.get("lifecycle") or {}).get("postStart") or {}).get("exec")
            if post_start:
                code = self._exec_hook(container, post_start["command"])
                self.event(f"postStart {running.name} {code}")
                if code != 0:
                    raise AssertionError(f"postStart of {running.name} exited {code}: "
                                         f"{self.log(running.name)}")  # fmt: skip

    def _wait_started(self, running: Running, timeout: float) -> None:
        probe = running.spec.get("startupProbe")
        if probe is None:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if running.proc.poll() is not None:
                raise AssertionError(f"{running.name} exited {running.proc.returncode} "
                                     f"before it started: {self.log(running.name)}")  # fmt: skip
            done = sh(*self._http_get(probe["httpGet"], 2), check=False)
            if done.stdout == "200":
                self.event(f"probe passed {running.name}")
                return
            time.sleep(self.probe_interval)
        raise AssertionError(f"{running.name} never passed its startup probe: "
                             f"{self.log(running.name)}")  # fmt: skip

    def stop(self, grace: float | None = None) -> dict[str, int | None]:
        """Delete the pod: app containers get their ``preStop`` hook and SIGTERM (with
        native sidecars, those are signalled once the app containers have exited,
        last started first; in classic mode, all at once). SIGKILL at the end of
        the grace period. The exit codes, ``None`` for a container killed."""
        if grace is None:
            grace = float(self.spec.get("terminationGracePeriodSeconds", 30))
        deadline = time.monotonic() + grace
        apps = [r for r in self.running if not r.sidecar and r.proc.poll() is None]
        sidecars = [r for r in self.running if r.sidecar]
        self._terminate(apps, deadline)
        for running in reversed(sidecars):
            self._terminate([running], deadline)
        return self.exit_codes()

    def _terminate(self, group: list[Running], deadline: float) -> None:
        """Each container of ``group`` at once, as the kubelet does: its ``preStop``
        hook, then SIGTERM; SIGKILL at ``deadline``."""
        threads = [threading.Thread(target=self._kill_container, args=(r, deadline))
                   for r in group]  # fmt: skip
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def _kill_container(self, running: Running, deadline: float) -> None:
        pre_stop = (running.spec.get("lifecycle") or {}).get("preStop") or {}
        if running.proc.poll() is None and "httpGet" in pre_stop:
            self.event(f"preStop {running.name}")
            argv = self._http_get(pre_stop["httpGet"], deadline - time.monotonic())
            done = subprocess.run(argv, capture_output=True, text=True, check=False)
            self.event(f"preStop done {running.name} {done.stdout}")
        if running.proc.poll() is None:
            self.event(f"SIGTERM {running.name}")
            self._signal(running, signal.SIGTERM)
        try:
            running.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.event(f"SIGKILL {running.name}")
            self._signal(running, signal.SIGKILL)
            running.proc.wait(timeout=10)
            running.killed = True
        self.event(f"exited {running.name} {running.proc.returncode}")

    def wait_completed(self, timeout: float) -> dict[str, int | None]:
        """A Job's pod: waits for every app container to exit; then native sidecars are
        stopped (as the kubelet does), while in classic mode every container must
        exit by itself. Raises if the pod has not completed by ``timeout``."""
        deadline = time.monotonic() + timeout
        for running in self.running:
            if running.sidecar:
                continue
            left = deadline - time.monotonic()
            try:
                running.proc.wait(timeout=max(0.1, left))
            except subprocess.TimeoutExpired:
                raise AssertionError(
                    f"the pod did not complete: {running.name} still runs; {self.log(running.name)}"
                ) from None
            self.event(f"exited {running.name} {running.proc.returncode}")
        sidecars = [r for r in self.running if r.sidecar]
        for running in reversed(sidecars):
            self._terminate([running], time.monotonic() + 30)
        return self.exit_codes()

    def exit_codes(self) -> dict[str, int | None]:
        return {r.name: None if r.killed else r.proc.returncode for r in self.running}

    def close(self) -> None:
        """Kill whatever still runs, and remove the volumes."""
        for running in self.running:
            if running.proc.poll() is None:
                self._signal(running, signal.SIGKILL)
                running.proc.wait(timeout=10)
        shutil.rmtree(self.base, ignore_errors=True)
