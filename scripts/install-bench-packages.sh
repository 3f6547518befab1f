#!/usr/bin/env bash
# Install the Debian packages `make bench-proxy` uses, when missing: the
# reverse proxies it compares Pillion with (nginx, haproxy) and the load
# generators (wrk for throughput, hey for latency at a fixed rate). As root this
# runs apt-get (updating the package lists first, only when something is
# missing); otherwise it names what is missing and fails.
set -euo pipefail
packages=("$@")
[ ${#packages[@]} -gt 0 ] || packages=(nginx haproxy wrk hey)
missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
        || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
    echo "error: missing Debian packages: ${missing[*]} (run 'make bench-proxy' as root, or apt-get install them)" >&2
    exit 1
fi
echo "installing Debian packages: ${missing[*]}"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
