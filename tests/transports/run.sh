#!/usr/bin/env bash
# Real clients against pagi-server's transports: TLS (Python websockets over wss, curl,
# openssl s_client), Unix sockets (curl --unix-socket, websockets), and nginx as a reverse proxy
# in front. Installs what it needs (Debian's nginx, curl, openssl; websockets and trustme from
# PyPI into a venv here). Loopback only; every process it starts is stopped at the end.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib.sh"
need nginx:nginx curl:curl openssl:openssl
python_venv "$here" "websockets, trustme"
venv="$here/.venv"
build_server
work=$(mktemp -d /tmp/pagi-transports.XXXXXX)
trap 'rm -rf "$work"' EXIT
timeout 300 "$venv/bin/python" "$here/check.py" "$bin" "$work"
