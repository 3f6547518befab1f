#!/usr/bin/env bash
# Create the project's virtualenv. Debian's python3 ships without `venv`
# (package python3-venv); install it when we are root and it is missing.
set -euo pipefail
python=${1:-python3}
venv=${2:-.venv}

if ! "$python" -m venv --help >/dev/null 2>&1 || ! "$python" -c 'import ensurepip' 2>/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        version=$("$python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "python${version}-venv" python3-venv
    else
        echo "error: $python cannot create a virtualenv; install python3-venv" >&2
        exit 1
    fi
fi
"$python" -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check --upgrade pip
