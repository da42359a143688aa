#!/usr/bin/env bash
# Browser test: headless Chromium (Debian package) runs the seed's session against pagi-server,
# over ws://, over wss:// (a throw-away certificate, trusted by its key's hash), over wss:// on an
# HTTP/2 connection (RFC 8441; the server's access log shows the extended CONNECT), and example
# 05's page, whose EventSource lists the events the server streams.
# Installs Chromium, openssl and playwright-core when missing. Loopback only, bounded in time.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
missing=()
command -v chromium >/dev/null || missing+=(chromium)
command -v openssl >/dev/null || missing+=(openssl)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing Debian's ${missing[*]}"
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if [ ! -d "$here/node_modules/playwright-core" ]; then
  (cd "$here" && npm install --no-audit --no-fund --silent)
fi
cargo build -q -p pagi-cli --manifest-path "$root/Cargo.toml"
bin="${CARGO_TARGET_DIR:-$root/target}/debug/pagi-server"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 50); do (echo > /dev/tcp/127.0.0.1/$1) 2>/dev/null && return; sleep 0.1; done; }
certs=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; rm -rf "$certs"' EXIT
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -subj /CN=localhost -addext subjectAltName=DNS:localhost \
  -keyout "$certs/key.pem" -out "$certs/cert.pem" 2>/dev/null
spki=$(openssl x509 -in "$certs/cert.pem" -pubkey -noout | openssl pkey -pubin -outform der \
  | openssl dgst -sha256 -binary | base64)
port=$(free_port)
"$bin" --app examples/18-bidirectional-websocket --host 127.0.0.1 --port "$port" -q &
pids+=($!)
tls_port=$(free_port)
"$bin" --app examples/18-bidirectional-websocket --host 127.0.0.1 --port "$tls_port" -q \
  --ssl-cert "$certs/cert.pem" --ssl-key "$certs/key.pem" &
pids+=($!)
h2_port=$(free_port)
"$bin" --app examples/18-bidirectional-websocket --host 127.0.0.1 --port "$h2_port" -q \
  --ssl-cert "$certs/cert.pem" --ssl-key "$certs/key.pem" \
  --access-log "$certs/h2-access.log" --access-log-format common 2>/dev/null &
pids+=($!)
sse_port=$(free_port)
"$bin" --app examples/05-sse-broadcaster --host 127.0.0.1 --port "$sse_port" -q --no-access-log &
pids+=($!)
wait_port "$port"; wait_port "$tls_port"; wait_port "$h2_port"; wait_port "$sse_port"
echo "== ws://"
CHROMIUM=$(command -v chromium) timeout 60 node "$here/seed_session.mjs" "ws://127.0.0.1:$port/"
echo "== wss://"
CHROMIUM=$(command -v chromium) timeout 60 node "$here/seed_session.mjs" "wss://localhost:$tls_port/" "$spki"
echo "== wss:// over HTTP/2 (RFC 8441)"
CHROMIUM=$(command -v chromium) timeout 60 node "$here/seed_session.mjs" "wss://localhost:$h2_port/" "$spki" h2
sleep 0.5 # the access log is written in batches
if grep -q '"CONNECT / HTTP/2.0" 200' "$certs/h2-access.log"; then
  echo "ok   the WebSocket went over HTTP/2: $(grep CONNECT "$certs/h2-access.log")"
else
  echo "FAIL the WebSocket did not go over HTTP/2; access log:"; cat "$certs/h2-access.log"; exit 1
fi
echo "== EventSource (example 05's page)"
CHROMIUM=$(command -v chromium) timeout 60 node "$here/sse_page.mjs" "http://127.0.0.1:$sse_port/"
