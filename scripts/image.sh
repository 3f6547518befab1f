#!/usr/bin/env bash
# `make image`: build the Pillion image from the Dockerfile, with docker where a
# daemon answers, else podman. The last line printed is the image reference built.
#
# Where no registry is reachable, the bases (Debian 12's Python 3.11, with a C
# compiler for the build stage) are made locally from Debian's packages with
# mmdebstrap and `podman import` (root needed), once; the Dockerfile's FROM lines
# then resolve with --pull=never. podman's settings for this kind of machine (runc,
# ulimits within the hard limits) are in .build/containers.conf: nothing under /etc
# changes. IMAGE=<reference> names the image (default localhost/pillion:<version>).
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "make image: $*" >&2; exit 2; }

version=$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' src/pillion/__init__.py)
revision=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
image=${IMAGE:-localhost/pillion:${version}}
run_packages=usr-is-merged,python3,tini,iptables,ca-certificates
# the run base without what only installing needs: Perl (usrmerge's), apt
run_remove="usrmerge libfile-find-rule-perl libnumber-compare-perl libtext-glob-perl perl libperl5.36 perl-modules-5.36 apt libapt-pkg6.0 debian-archive-keyring gpgv"
build_packages=python3,python3-venv,python3-dev,gcc,libc6-dev
digest() { printf '%s' "$*" | sha256sum | cut -c1-12; }  # a base is made again when its recipe changes
base_build=localhost/pillion-base:build-bookworm-$(digest "$build_packages")
base_run=localhost/pillion-base:run-bookworm-$(digest "$run_packages" "$run_remove")
official=docker.io/library/python:3.11-slim-bookworm

if command -v docker >/dev/null && docker info >/dev/null 2>&1; then
    engine=docker
elif command -v podman >/dev/null; then
    engine=podman
else
    die "needs podman or docker: neither is installed (Debian: apt-get install podman)"
fi

build_args=(--build-arg "VERSION=${version}" --build-arg "REVISION=${revision}")
# Also on the command line: podman 4.3's layer cache ignores a build argument that
# only LABEL and ENV use, so an image rebuilt from unchanged sources kept the
# previous revision; these are applied to the final image even on a cache hit.
build_args+=(--label "org.opencontainers.image.version=${version}"
             --label "org.opencontainers.image.revision=${revision}")

if [ "$engine" = podman ]; then
    mkdir -p .build
    limits() {  # the highest ulimits runc may set here: the hard limits, or below them
        local n p
        for p in "$(ulimit -Hu)" 32768 16384 4096; do
            for n in "$(ulimit -Hn)" 16384 4096; do
                printf '[engine]\nruntime = "runc"\n[containers]\ndefault_ulimits = ["nofile=%s:%s", "nproc=%s:%s"]\n' \
                    "$n" "$n" "$p" "$p" > .build/containers.conf
                if CONTAINERS_CONF=.build/containers.conf podman run --rm --network none \
                    "$1" true >/dev/null 2>&1; then
                    return 0
                fi
            done
        done
        die "podman cannot start a container here (see: podman run --rm $1 true)"
    }
    export CONTAINERS_CONF=$PWD/.build/containers.conf
    [ -f "$CONTAINERS_CONF" ] || printf '[engine]\nruntime = "runc"\n' > "$CONTAINERS_CONF"
fi

registry_reachable() {
    curl -sS -o /dev/null -m 10 https://registry-1.docker.io/v2/ 2>/dev/null
}

make_base() {  # reference, Debian packages[, packages to remove after]
    local reference=$1 packages=$2 remove=${3:-} tarball hooks=()
    if $engine image exists "$reference" 2>/dev/null; then return 0; fi
    command -v mmdebstrap >/dev/null \
        || die "no registry reachable, and no mmdebstrap to make the base (apt-get install mmdebstrap)"
    [ "$(id -u)" = 0 ] || die "making the base with mmdebstrap needs root"
    tarball=$(mktemp --suffix=.tar)
    echo "making ${reference} from Debian's packages: ${packages}"
    if [ -n "$remove" ]; then
        hooks=(--customize-hook="chroot \"\$1\" dpkg --purge ${remove}"
               --customize-hook='rm -rf "$1"/var/cache/* "$1"/var/lib/apt/lists/*')
    fi
    mmdebstrap --quiet --variant=minbase --include="$packages" "${hooks[@]}" \
        --aptopt='APT::Install-Recommends "false"' \
        --dpkgopt='path-exclude=/usr/lib/x86_64-linux-gnu/gconv/*' \
        --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
        --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/info/*' \
        bookworm "$tarball" || { rm -f "$tarball"; die "mmdebstrap failed (is deb.debian.org reachable?)"; }
    $engine import --quiet --change 'CMD ["python3"]' "$tarball" "$reference" >/dev/null
    rm -f "$tarball"
}

pull=()
if registry_reachable; then
    echo "bases: ${official}"
else
    [ "$engine" = podman ] || die "no registry reachable: make the bases with podman (apt-get install podman mmdebstrap)"
    make_base "$base_run" "$run_packages" "$run_remove"
    make_base "$base_build" "$build_packages"
    build_args+=(--build-arg "BUILD_BASE=${base_build}" --build-arg "RUN_BASE=${base_run}")
    pull=(--pull=never)
    echo "bases: ${base_build}, ${base_run} (made from Debian's packages)"
fi

if [ "$engine" = podman ]; then
    limits "$($engine image exists "$base_run" && echo "$base_run" || echo "$official")"
    # where TLS is intercepted, pip in the build stage needs this machine's CA bundle
    if [ -n "${PIP_CERT:-}" ] && [ -f "$PIP_CERT" ]; then
        build_args+=(-v "${PIP_CERT}:/etc/pillion-build/ca.crt:ro" --build-arg PIP_CERT=/etc/pillion-build/ca.crt)
    fi
    podman build --network host "${pull[@]}" "${build_args[@]}" \
        --env "PILLION_IMAGE_REVISION=${revision}" --tag "$image" . \
        || die "the build failed (above): no network to PyPI? see the pip error"
else
    docker build "${build_args[@]}" --tag "$image" . || die "the build failed (above)"
fi
echo "$image"
