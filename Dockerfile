# The Pillion image: `make image` builds it (podman, or docker where there is one).
#
# The first stage installs the locked dependencies into a virtualenv and builds
# Pillion with its compiled hot path (mypyc, with a C compiler); the image itself
# is `scratch` with only what runs: that virtualenv, Python, tini (PID 1: signals,
# reaping), a POSIX sh for notify commands, the CA certificates and the shared
# libraries they link (scripts/image-rootfs.sh). No compiler, package manager,
# wheel or package index is left in it.
#
# BUILD_BASE and RUN_BASE default to Debian 12's Python 3.11 images; `make image`
# makes them locally from Debian's packages where no registry is reachable. The two
# must carry the same Python (the virtualenv and the extensions are built for it).
ARG BUILD_BASE=docker.io/library/python:3.11-slim-bookworm
ARG RUN_BASE=docker.io/library/python:3.11-slim-bookworm

FROM ${BUILD_BASE} AS build
# A CA bundle for pip where the network intercepts TLS (given for this stage only).
ARG PIP_CERT=
RUN command -v gcc >/dev/null || (apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev python3-dev \
    && rm -rf /var/lib/apt/lists/*)
RUN python3 -m venv /opt/pillion && python3 -m venv /opt/build
WORKDIR /src
COPY requirements/ ./requirements/
RUN /opt/build/bin/pip install --no-cache-dir --disable-pip-version-check ${PIP_CERT:+--cert "$PIP_CERT"} \
        --require-hashes --only-binary :all: -r requirements/build.lock \
    && /opt/pillion/bin/pip install --no-cache-dir --disable-pip-version-check ${PIP_CERT:+--cert "$PIP_CERT"} \
        --require-hashes --only-binary :all: -r requirements/image.lock
COPY pyproject.toml setup.py README.md LICENSE ./
COPY src ./src
# Built with the locked build tools, installed without its dependencies (locked above).
RUN /opt/build/bin/pip wheel --no-cache-dir --no-deps --no-build-isolation --wheel-dir /wheel . \
    && /opt/pillion/bin/pip install --no-cache-dir --no-deps /wheel/*.whl \
    && /opt/pillion/bin/pip uninstall --yes --quiet pip setuptools \
    && /opt/pillion/bin/pillion version

# The run base, then only what Pillion runs with, copied into /rootfs.
FROM ${RUN_BASE} AS rootfs
RUN (command -v tini && command -v iptables-restore) >/dev/null || (apt-get update \
    && apt-get install -y --no-install-recommends tini iptables \
    && rm -rf /var/lib/apt/lists/*)
RUN echo "pillion:x:1337:1337::/nonexistent:/usr/sbin/nologin" >> /etc/passwd \
    && echo "pillion:x:1337:" >> /etc/group
COPY --from=build /opt/pillion /opt/pillion
COPY scripts/image-rootfs.sh /usr/local/bin/image-rootfs
RUN sh /usr/local/bin/image-rootfs /rootfs && /rootfs/opt/pillion/bin/python3 -c "import ssl"

FROM scratch
ARG VERSION=unknown
ARG REVISION=unknown
LABEL org.opencontainers.image.title="pillion" \
      org.opencontainers.image.description="A Kubernetes sidecar: reverse proxy, log shipper, secret renderer and metrics exporter in one container." \
      org.opencontainers.image.source="https://github.com/pillion/pillion" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
COPY --from=rootfs /rootfs /
ENV PATH=/opt/pillion/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONDONTWRITEBYTECODE=1 \
    PILLION_IMAGE_REVISION=${REVISION}
USER 1337:1337
EXPOSE 15000 15001 15006 15020 8443
# tini is PID 1: it passes the stop signals on and reaps what the notify commands leave.
ENTRYPOINT ["/usr/bin/tini", "--", "pillion"]
CMD ["--help"]
