#!/usr/bin/env bash
# Bootstrap: system packages, the project venv, then hand over to the `spice` CLI.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$ROOT"

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

# (a) Debian packages, only what is missing; apt-get update only when something must be installed.
pkgs=()
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || pkgs+=(postgresql)
command -v redis-server >/dev/null || pkgs+=(redis-server)
command -v java >/dev/null || pkgs+=(default-jdk-headless)
command -v mvn >/dev/null || pkgs+=(maven)
command -v unzip >/dev/null || pkgs+=(unzip)  # unpacks the Elasticsearch zip
command -v chromium >/dev/null || pkgs+=(chromium)  # headless browser for tests/test_page.py
if [ ! -x .venv/bin/python ]; then
  command -v python3.11 >/dev/null || pkgs+=(python3.11)
  python3.11 -c 'import ensurepip' 2>/dev/null || pkgs+=(python3.11-venv)
fi
if [ "${#pkgs[@]}" -gt 0 ]; then
  echo "spice.sh: installing ${pkgs[*]}" >&2
  $SUDO apt-get update -q
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${pkgs[@]}"
fi

# (b) The venv, reinstalled when pyproject.toml is newer than the stamp.
export PIP_CACHE_DIR="$ROOT/.cache/pip"
if [ ! -x .venv/bin/python ]; then
  echo "spice.sh: creating .venv" >&2
  python3.11 -m venv .venv
fi
if [ ! -f .venv/.installed ] || [ pyproject.toml -nt .venv/.installed ]; then
  echo "spice.sh: installing the project into .venv" >&2
  .venv/bin/pip install -q -e '.[dev]'
  touch .venv/.installed
fi

# (c) The CLI.
exec .venv/bin/spice "$@"
