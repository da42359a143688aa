#!/usr/bin/env bash
# Independent HTTP and SSE clients against pagi-server's examples: curl (raw chunked bodies and
# trailers, ranges, HTTP/1.0, a refused transfer coding), Python httpx (bodies, streaming, SSE,
# UTF-8) and Node's `eventsource` package (SSE with ids and event types). Installs what it needs
# (Debian's curl; httpx from PyPI into a venv here; eventsource from npm). Loopback only; every
# server it starts is stopped at the end.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib.sh"
need curl:curl
python_venv "$here" httpx
venv="$here/.venv"
node_modules "$here" eventsource
build_server
work=$(mktemp -d /tmp/pagi-clients.XXXXXX)
trap 'rm -rf "$work"' EXIT
timeout 300 "$venv/bin/python" "$here/check.py" "$bin" "$work" "$here"
