#!/usr/bin/env bash
# Browser test: headless Chromium (Debian package) runs the seed's session against pagi-server.
# Installs Chromium and playwright-core when missing. Loopback only, bounded in time.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
if ! command -v chromium >/dev/null; then
  echo "installing Debian's chromium"
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq chromium >/dev/null
fi
if [ ! -d "$here/node_modules/playwright-core" ]; then
  (cd "$here" && npm install --no-audit --no-fund --silent)
fi
cargo build -q -p pagi-server --manifest-path "$root/Cargo.toml"
bin="${CARGO_TARGET_DIR:-$root/target}/debug/pagi-server"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$bin" --app examples/18-bidirectional-websocket --host 127.0.0.1 --port "$port" -q &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 50); do (echo > /dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
CHROMIUM=$(command -v chromium) timeout 60 node "$here/seed_session.mjs" "ws://127.0.0.1:$port/"
