# The two commands a newcomer needs: `make demo` and `make test`.
# Everything they need is installed here; nothing is assumed to be on the machine
# beyond python3, make and git (Debian packages are installed when run as root).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# Debian packages the tests use: promtool (from prometheus) checks /metrics,
# curl is the client the demo tour prints, postgresql is the database OpenBao
# issues credentials for in the secrets tests (OpenBao itself comes from PyPI),
# nghttp2-client has h2load, the HTTP/2 client of the proxy tests.
# podman, runc and mmdebstrap build and run the image (`make image`, tests/image);
# chromium and chromium-driver are the real browser of the login test.
SYSTEM_PACKAGES := prometheus curl openssl rsyslog rsyslog-openssl postgresql iptables nghttp2-client \
	podman runc mmdebstrap chromium chromium-driver

.PHONY: demo test check docs image lock dist extensions system-deps fuzz soak bench-proxy bench-h2 bench-logs bench-webhook bench-exporters bench-capture bench-start clean

demo: $(VENV)/.installed
	$(BIN)/pillion demo

# The whole suite on the compiled hot path, then the tests of the compiled parts again
# on their pure-Python source (PILLION_NO_EXTENSIONS=1): both implementations ship. For
# the exporters and the logs, the tests of the compiled modules (StatsD; lines, buffer,
# spill, syslog framing), not the JSON exporter's or every shipping scenario's.
PURE_TESTS := tests/proxy tests/http tests/h2 tests/telemetry tests/fuzz \
	$(wildcard tests/exporters/test_statsd_*.py) \
	$(addprefix tests/logs/,test_pieces.py test_fast_paths.py test_framing.py \
		test_buffer_faults.py test_hostile_lines.py test_syslog.py)
test: $(VENV)/.installed-dev $(VENV)/.extensions system-deps
	$(MAKE) check
	PILLION_EXPECT_COMPILED=1 $(BIN)/pytest
	PILLION_NO_EXTENSIONS=1 $(BIN)/pytest -q $(PURE_TESTS)

check: $(VENV)/.installed-dev
	$(BIN)/ruff format --check src tests
	$(BIN)/ruff check src tests
	$(BIN)/mypy
	$(BIN)/lint-imports

# Regenerate the reference docs from the config models (a test checks they match).
docs: $(VENV)/.installed
	$(BIN)/pillion schema --format markdown > docs/configuration.md
	$(BIN)/python -c "from pillion.kube.annotations import markdown_reference as m; print(m(), end='')" > docs/annotations.md

system-deps:
	@scripts/install-system-packages.sh $(SYSTEM_PACKAGES)

# The container image, with podman (or docker where a daemon answers); the last line
# printed is its reference. IMAGE=<reference> to name it. See scripts/image.sh.
image:
	@scripts/install-system-packages.sh podman runc mmdebstrap
	scripts/image.sh

# The release artefacts: an sdist and a wheel with the compiled hot path, in dist/.
dist: $(VENV)/.installed-dev
	$(BIN)/python -m build --outdir dist

# Pin the image's dependencies (requirements/image.lock, from pyproject.toml) and its
# build tools (requirements/build.lock), with hashes: two builds a month apart are the same.
lock:
	@test -x .build/lock-venv/bin/pip-compile || { $(PYTHON) -m venv .build/lock-venv \
		&& .build/lock-venv/bin/pip install --quiet pip-tools; }
	env -u PIP_FIND_LINKS PIP_CONFIG_FILE=/dev/null .build/lock-venv/bin/pip-compile --quiet \
		--generate-hashes --strip-extras --allow-unsafe --no-emit-index-url \
		--output-file requirements/image.lock pyproject.toml
	env -u PIP_FIND_LINKS PIP_CONFIG_FILE=/dev/null .build/lock-venv/bin/pip-compile --quiet \
		--generate-hashes --strip-extras --allow-unsafe --no-emit-index-url \
		--output-file requirements/build.lock requirements/build.in

# Every parser of untrusted bytes fuzzed for minutes (FUZZ_SECONDS each), growing the
# corpus under fuzz/corpus/ (see fuzz/README.md). `make test` runs the same targets
# with a bounded number of examples.
FUZZ_SECONDS ?= 120
fuzz: $(VENV)/.installed-dev $(VENV)/.extensions
	$(BIN)/python -m fuzz --seconds $(FUZZ_SECONDS) $(ARGS)

# A long run of everything at once, on loopback, with faults injected on a schedule;
# prints a table and a last `soak ...` line (see bench/README.md). SOAK_MINUTES to change.
SOAK_MINUTES ?= 30
soak: $(VENV)/.installed-dev $(VENV)/.extensions system-deps
	$(BIN)/python bench/soak.py --minutes $(SOAK_MINUTES) $(ARGS)

# Compare Pillion's reverse proxy with nginx and HAProxy on 127.0.0.1 (see bench/README.md).
# Pass options with ARGS, e.g. `make bench-proxy ARGS=--quick`.
BENCH_PACKAGES := nginx haproxy wrk hey
bench-proxy: $(VENV)/.installed
	@scripts/install-system-packages.sh $(BENCH_PACKAGES)
	$(BIN)/python bench/proxy_bench.py $(ARGS)

# HTTP/2 and gRPC through Pillion, against nginx, on 127.0.0.1 (see bench/README.md).
# h2load and nghttp come from nghttp2-client; wrk loads the HTTP/1.1-to-HTTP/2 subject;
# grpcio (a dev extra) runs the gRPC server and client.
bench-h2: $(VENV)/.installed-dev
	@scripts/install-system-packages.sh nginx nghttp2-client wrk
	$(BIN)/python bench/h2_bench.py $(ARGS)

# Compare Pillion's log shipping with rsyslog, file -> TCP syslog (see bench/README.md).
bench-logs: $(VENV)/.installed
	@scripts/install-system-packages.sh rsyslog
	$(BIN)/python bench/logs_bench.py $(ARGS)

# The injection webhook: AdmissionReview round trips over HTTPS at 200/s.
bench-webhook: $(VENV)/.installed
	$(BIN)/python bench/webhook_bench.py $(ARGS)

# Pillion's StatsD exporter: ingestion at saturation, RSS and /metrics render time with
# 10k series (see bench/README.md). No peer: Debian 12 has no prometheus-statsd-exporter.
# Needs root: network namespaces and iptables.
bench-capture: $(VENV)/.installed
	@scripts/install-system-packages.sh nginx wrk iptables
	$(BIN)/python bench/capture_bench.py $(ARGS)

bench-exporters: $(VENV)/.installed
	$(BIN)/python bench/exporters_bench.py $(ARGS)

# Start to /healthz/ready and idle RSS: the minimal config, and proxy + logs + exporters.
bench-start: $(VENV)/.installed
	$(BIN)/python bench/start_bench.py $(ARGS)

$(BIN)/python:
	@scripts/make-venv.sh $(PYTHON) $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[demo]'
	@touch $@ $(VENV)/.extensions

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $@ $(VENV)/.installed $(VENV)/.extensions

# The compiled hot path (setup.py's COMPILED, through mypyc), rebuilt in place when a
# source changed; until then a changed module runs from source (src/pillion/extensions.py).
HOT_SOURCES := $(wildcard src/pillion/http/*.py src/pillion/proxy/*.py src/pillion/exporters/statsd_*.py src/pillion/logs/*.py) \
	src/pillion/telemetry/tracecontext.py src/pillion/telemetry/per_turn.py src/pillion/telemetry/spans.py
extensions: $(VENV)/.extensions
$(VENV)/.extensions: setup.py $(HOT_SOURCES) | $(VENV)/.installed-dev
	@$(BIN)/python -c "from pillion import extensions as e; raise SystemExit(not e.compiled())" \
		|| $(BIN)/python setup.py --quiet build_ext --inplace
	@$(BIN)/python -c "from pillion import extensions as e; print('hot path:', e.describe())"
	@touch $@

clean:
	rm -rf build src/pillion/_compiled.json src/*.so $$(find src -name '*.so')
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis .import_linter_cache
