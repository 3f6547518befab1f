"""A proxy worker process: ``python -m pillion.proxy.worker_main --index N --ready-fd FD``.

Reads its configuration (the ``app``, ``proxy`` and ``lifecycle`` sections, as
JSON) on stdin, serves the listeners with ``SO_REUSEPORT`` beside its siblings,
writes ``ready`` to the inherited file descriptor once listening, drains on
SIGTERM and exits 0; SIGUSR1 drains only its inbound listeners (the app's
preStop), then writes ``drained`` to the same descriptor. Its metrics go to
``PROMETHEUS_MULTIPROC_DIR``, which the supervising process merges into
``/metrics``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys

import uvloop

from pillion.components import EXIT_OK, EXIT_RUNTIME_FAILURE, ComponentStartError
from pillion.config import PillionConfig
from pillion.proxy.component import ProxyComponent
from pillion.telemetry import Metrics, configure_logging

__all__ = ["main"]

log = logging.getLogger("pillion.proxy")


class _WorkerField(logging.Filter):
    def __init__(self, index: int) -> None:
        super().__init__()
        self.index = index

    def filter(self, record: logging.LogRecord) -> bool:
        record.worker = self.index
        return True


async def _serve(config: PillionConfig, ready_fd: int) -> int:
    assert config.proxy is not None  # workers run only for a config with a proxy
    proxy = ProxyComponent(
        config.proxy, config.app, Metrics(process=False), config.telemetry.tracing
    )
    try:
        await proxy.start()
    except ComponentStartError as exc:
        log.error("cannot start", extra={"error": exc.reason})
        return EXIT_RUNTIME_FAILURE
    os.write(ready_fd, b"ready\n")  # kept open: "drained" follows a SIGUSR1's drain
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    inbound: set[asyncio.Task[None]] = set()

    async def drain_inbound() -> None:
        await proxy.drain_inbound(loop.time() + config.lifecycle.drain_timeout)
        os.write(ready_fd, b"drained\n")

    def on_usr1() -> None:  # the app's preStop hook, passed on by the parent
        task = loop.create_task(drain_inbound())
        inbound.add(task)
        task.add_done_callback(inbound.discard)

    loop.add_signal_handler(signal.SIGUSR1, on_usr1)
    await stop.wait()
    await proxy.drain(loop.time() + config.lifecycle.drain_timeout)
    await proxy.close()
    os.close(ready_fd)
    return EXIT_OK


def main() -> None:
    parser = argparse.ArgumentParser(description="a Pillion proxy worker (started by Pillion)")
    parser.add_argument("--index", type=int, required=True)
    parser.add_argument("--ready-fd", type=int, required=True)
    args = parser.parse_args()
    config = PillionConfig.model_validate(json.loads(sys.stdin.read()))
    configure_logging(config.telemetry.log_level)
    for handler in logging.getLogger("pillion").handlers:
        handler.addFilter(_WorkerField(args.index))
    sys.exit(uvloop.run(_serve(config, args.ready_fd)))


if __name__ == "__main__":
    main()
