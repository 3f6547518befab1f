#!/usr/bin/env bash
# Install Debian packages when missing: those the tests use (`make test`) or the
# benchmarks compare with (`make bench-proxy`). As root this runs apt-get,
# updating the package lists only when something is missing; otherwise it names
# what is missing and fails, rather than letting a test skip later.
set -euo pipefail
missing=()
for package in "$@"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
        || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
    echo "error: missing Debian packages: ${missing[*]} (run as root, or apt-get install them)" >&2
    exit 1
fi
echo "installing Debian packages: ${missing[*]}"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
