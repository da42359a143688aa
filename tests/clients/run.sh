#!/usr/bin/env bash
# Independent HTTP and SSE clients against pagi-server's examples: curl (raw chunked bodies and
# trailers, ranges, HTTP/1.0, a refused transfer coding), Python httpx (bodies, streaming, SSE,
# UTF-8) and Node's `eventsource` package (SSE with ids and event types). Installs what it needs
# (Debian's curl; httpx from PyPI into a venv here; eventsource from npm). Loopback only; every
# server it starts is stopped at the end.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
if ! command -v curl >/dev/null; then
  echo "installing Debian's curl"
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get install -y -qq curl >/dev/null 2>&1 \
    || { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq curl >/dev/null; }
fi
venv="$here/.venv"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import httpx' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q -r "$here/requirements.txt"
fi
if [ ! -d "$here/node_modules/eventsource" ]; then
  (cd "$here" && npm install --no-audit --no-fund --silent)
fi
cargo build -q -p pagi-cli --manifest-path "$root/Cargo.toml"
bin="${CARGO_TARGET_DIR:-$root/target}/debug/pagi-server"
work=$(mktemp -d /tmp/pagi-clients.XXXXXX)
trap 'rm -rf "$work"' EXIT
timeout 300 "$venv/bin/python" "$here/check.py" "$bin" "$work" "$here"
