#!/usr/bin/env bash
# Install what the browser tests (pytest -m browser) need: Debian's chromium and the playwright Python package.
# Idempotent: each part is installed only when missing. Never runs `playwright install` (no browser downloads;
# the tests launch /usr/bin/chromium through playwright's executable_path).
#
# Usage: .ci/install-browser.sh [PYTHON]   (PYTHON defaults to .venv/bin/python of this repository)
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${1:-${repo_root}/.venv/bin/python}"

if [ -x /usr/bin/chromium ]; then
    echo "chromium: already installed ($(/usr/bin/chromium --version 2>/dev/null || echo 'version unknown'))"
else
    echo "chromium: installing with apt-get"
    sudo_cmd=""
    if [ "$(id -u)" -ne 0 ]; then sudo_cmd="sudo"; fi
    export DEBIAN_FRONTEND=noninteractive
    ${sudo_cmd} apt-get update
    ${sudo_cmd} apt-get install -y --no-install-recommends chromium fonts-dejavu-core
fi

if "${python}" -c "import playwright" >/dev/null 2>&1; then
    echo "playwright: already importable by ${python}"
else
    echo "playwright: installing into ${python}'s environment with pip"
    "${python}" -m pip install playwright
fi
