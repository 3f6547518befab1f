"""A pod's containers run by podman, from the images, in the kubelet's order.

Real: the container runtime (podman and runc), Pillion's image as ``make image``
builds it, each container's security context as podman enforces it (user and
group, read-only root filesystem, capabilities, no new privileges), the volume
mounts at their paths, and the pod's shared network namespace (each container
joins the one ``podharness.Network`` made, with its client, remote and node links).

Kept from ``podharness.PodRun``: the kubelet's order (init containers one by one, a
native sidecar's startup probe before the next container, ``preStop`` hooks before
SIGTERM, native sidecars stopped last), probes sent to the pod IP, and volumes as
host directories (configMap and downwardAPI files written once from the pod as
given).

Why not ``podman kube play``: Debian 12's podman (4.3) refuses annotation values
longer than 63 characters, and the injector writes longer ones (its status, the
generated config); it has no native sidecars either.

Emulated: the app's image. Containers whose image is not Pillion's run on Pillion's
image (its Python, which is all the test app needs) under its tini, as any image
would run with ``--init``: the app's own process is not PID 1.
"""

from __future__ import annotations

import json
import signal
import subprocess
from dataclasses import dataclass
from typing import IO, Any

from tests.helpers import wait_until
from tests.image.podman import environ, podman
from tests.kube.podharness import SERVICE_ACCOUNT_DIR, PodRun, Running


@dataclass
class ContainerPodRun(PodRun):
    image: str = ""  # Pillion's image, by reference

    def rewrite(self, text: str) -> str:
        return text  # the mounts are at their own paths

    def container_name(self, container: dict[str, Any]) -> str:
        return f"{self.net.pod}-{container['name']}"

    def _run_options(self, container: dict[str, Any]) -> list[str]:
        pod_context = self.spec.get("securityContext") or {}
        context = container.get("securityContext") or {}
        options = ["--name", self.container_name(container), "--pull", "never",
                   "--network", f"ns:/run/netns/{self.net.pod}",
                   "--hostname", self.pod["metadata"]["name"]]  # fmt: skip
        uid = context.get("runAsUser", pod_context.get("runAsUser"))
        gid = context.get("runAsGroup", pod_context.get("runAsGroup"))
        if uid is not None:
            options += ["--user", f"{uid}:{gid}" if gid is not None else str(uid)]
        if "fsGroup" in pod_context:
            options += ["--group-add", str(pod_context["fsGroup"])]
        if context.get("readOnlyRootFilesystem"):
            options.append("--read-only")
        if context.get("allowPrivilegeEscalation") is False:
            options += ["--security-opt", "no-new-privileges"]
        capabilities = context.get("capabilities") or {}
        options += [f"--cap-drop={name}" for name in capabilities.get("drop") or []]
        options += [f"--cap-add={name}" for name in capabilities.get("add") or []]
        for mount in container.get("volumeMounts") or []:
            source = self.volumes[mount["name"]] / mount.get("subPath", "")
            source.mkdir(parents=True, exist_ok=True)
            read_only = ":ro" if mount.get("readOnly") else ""
            options.append(f"--volume={source}:{mount['mountPath']}{read_only}")
        options.append(f"--volume={self.paths[SERVICE_ACCOUNT_DIR]}:{SERVICE_ACCOUNT_DIR}:ro")
        for name, value in self._env(container).items():
            if name not in ("PATH", "HOME"):  # the image's own
                options.append(f"--env={name}={value}")
        return options

    def _image_and_command(self, container: dict[str, Any]) -> list[str]:
        command = list(container.get("command") or [])
        args = list(container.get("args") or [])
        if container.get("image") == self.image:
            entrypoint = ["--entrypoint", json.dumps(command)] if command else []
        else:  # the app's image, stood in for (see the module's docstring)
            entrypoint = ["--entrypoint", json.dumps(["/usr/bin/tini", "--", *command])]
        return [*entrypoint, self.image, *args]

    def _launch(self, container: dict[str, Any], out: IO[bytes]) -> subprocess.Popen[bytes]:
        """``podman run``, attached: it lasts as long as the container and exits
        with its code."""
        argv = ["podman", "run", *self._run_options(container),
                *self._image_and_command(container)]  # fmt: skip
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=environ()
        )
        # as the kubelet, on once the runtime has started it (a hook or a signal
        # before then would find no container)
        name = self.container_name(container)

        def started() -> bool:
            state = podman("container", "inspect", "--format", "{{.State.Status}}", name)
            return proc.poll() is not None or state.stdout.strip() in ("running", "exited")

        wait_until(started, timeout=60)
        return proc

    def _signal(self, running: Running, signum: int) -> None:
        name = self.container_name(running.spec)
        podman("kill", "--signal", signal.Signals(signum).name, name, timeout=30)

    def _exec_hook(self, container: dict[str, Any], command: list[str]) -> int:
        done = podman("exec", self.container_name(container), *command, timeout=120)
        return done.returncode

    def inspect(self, name: str) -> dict[str, Any]:
        """``podman inspect`` of the container ``name`` (its name in the pod)."""
        done = podman("inspect", f"{self.net.pod}-{name}")
        assert done.returncode == 0, done.stderr
        found: dict[str, Any] = json.loads(done.stdout)[0]
        return found

    def close(self) -> None:
        super().close()
        # every container of the pod, also one whose start was never seen through
        for container in self.init_containers + self.containers:
            podman("rm", "--force", "--time", "0", self.container_name(container))
