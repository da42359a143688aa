#!/usr/bin/env bash
# Real clients against pagi-server's transports: TLS (Python websockets over wss, curl,
# openssl s_client), Unix sockets (curl --unix-socket, websockets), and nginx as a reverse proxy
# in front. Installs what it needs (Debian's nginx, curl, openssl; websockets and trustme from
# PyPI into a venv here). Loopback only; every process it starts is stopped at the end.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
missing=()
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx)
command -v curl >/dev/null || missing+=(curl)
command -v openssl >/dev/null || missing+=(openssl)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing Debian's ${missing[*]}"
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null 2>&1 \
    || { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null; }
fi
venv="$here/.venv"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import websockets, trustme' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q -r "$here/requirements.txt"
fi
cargo build -q -p pagi-cli --manifest-path "$root/Cargo.toml"
bin="${CARGO_TARGET_DIR:-$root/target}/debug/pagi-server"
work=$(mktemp -d /tmp/pagi-transports.XXXXXX)
trap 'rm -rf "$work"' EXIT
timeout 300 "$venv/bin/python" "$here/check.py" "$bin" "$work"
