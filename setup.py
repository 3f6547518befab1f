"""Build Pillion's compiled hot path: the modules in ``COMPILED`` through mypyc.

The modules stay plain Python source; mypyc compiles the same files into C
extensions that sit next to them. ``pillion.extensions`` decides at import time
which of the two runs (``PILLION_NO_EXTENSIONS=1`` forces the source). Without
a C compiler, or with ``PILLION_NO_EXTENSIONS=1`` at build time, the package
installs as pure Python.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_ext import build_ext

SRC = Path(__file__).parent / "src"
MANIFEST = SRC / "pillion" / "_compiled.json"
BUILD = Path(__file__).parent / "build"

# The per-request path of both proxies, HTTP/1.1 and HTTP/2.
COMPILED = [
    "pillion/http/errors.py",
    "pillion/http/chunked.py",
    "pillion/http/headers.py",
    "pillion/http/request.py",
    "pillion/http/response.py",
    "pillion/http/serialize.py",
    "pillion/http/h2fields.py",
    "pillion/h2/huffman.py",
    "pillion/h2/hpack.py",
    "pillion/h2/events.py",
    "pillion/h2/connection.py",
    "pillion/http/grpc.py",
    "pillion/proxy/accesslog.py",
    "pillion/proxy/balancing.py",
    "pillion/proxy/channels.py",
    "pillion/proxy/cluster.py",
    "pillion/proxy/connection.py",
    "pillion/proxy/deadlines.py",
    "pillion/proxy/edits.py",
    "pillion/proxy/exchange.py",
    "pillion/proxy/flags.py",
    "pillion/proxy/forwarding.py",
    "pillion/proxy/gate.py",
    "pillion/proxy/http2.py",
    "pillion/proxy/http2_stream.py",
    "pillion/proxy/metrics.py",
    "pillion/proxy/observe.py",
    "pillion/proxy/ratelimit.py",
    "pillion/proxy/retries.py",
    "pillion/proxy/retrying.py",
    "pillion/proxy/routes.py",
    "pillion/proxy/routing.py",
    "pillion/proxy/tracing.py",
    "pillion/proxy/upstream.py",
    "pillion/proxy/upstream_http2.py",
    "pillion/telemetry/per_turn.py",
    "pillion/telemetry/tracecontext.py",
    "pillion/telemetry/spans.py",
    # The StatsD exporter's per-packet and per-scrape path.
    "pillion/exporters/statsd_parse.py",
    "pillion/exporters/statsd_text.py",
    "pillion/exporters/statsd_quantiles.py",
    "pillion/exporters/statsd_store.py",
    "pillion/exporters/statsd_ingest.py",
    "pillion/exporters/statsd_exposition.py",
    # Log shipping's per-line path: splitting, the record log, its disk tier, rendering.
    "pillion/logs/lines.py",
    "pillion/logs/buffer.py",
    "pillion/logs/spill.py",
    "pillion/logs/syslog.py",
    "pillion/logs/jsonlines.py",
]


def source_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def extensions() -> list[object]:
    """mypyc's extension modules, and the manifest the import side checks them against."""
    if MANIFEST.exists():
        MANIFEST.unlink()
    if os.environ.get("PILLION_NO_EXTENSIONS") or sys.implementation.name != "cpython":
        return []
    try:
        from mypyc.build import mypycify
    except ImportError:
        print("mypyc is not installed: Pillion installs as pure Python", file=sys.stderr)
        return []
    BUILD.mkdir(exist_ok=True)
    config = BUILD / "mypyc.ini"
    # Third-party packages are Any to the compiler, always: an isolated build does not
    # have them, an in-place one would, and mypyc trusts their stubs at run time
    # (httptools' says a URL's port is an int; it is None when absent). The same
    # build everywhere; mypy strict still reads their stubs in `make check`.
    config.write_text(
        "[mypy]\nignore_missing_imports = True\nfollow_imports = silent\nno_site_packages = True\n"
    )
    paths = [f"src/{source}" for source in COMPILED]
    modules: list[object] = mypycify(
        [f"--config-file={config}", *paths],
        opt_level="3",
        debug_level="0",
        group_name="pillion_hotpath",
    )
    digests = {
        source[: -len(".py")].replace("/", "."): source_digest(SRC / source) for source in COMPILED
    }
    MANIFEST.write_text(json.dumps({"compiler": "mypyc", "modules": digests}, indent=1) + "\n")
    return modules


class BuildOrFallBack(build_ext):
    """Without a working C compiler the package installs as pure Python (and says so)."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as error:  # any compiler failure means "no extensions"
            print(f"cannot compile the hot path ({error}): pure Python", file=sys.stderr)
            if MANIFEST.exists():
                MANIFEST.unlink()


setup(ext_modules=extensions(), cmdclass={"build_ext": BuildOrFallBack})
