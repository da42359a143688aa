#!/usr/bin/env bash
# Browser test: headless Chromium (Debian package) runs the seed's session against pagi-server,
# over ws://, over wss:// (a throw-away certificate, trusted by its key's hash), over wss:// on an
# HTTP/2 connection (RFC 8441; the server's access log shows the extended CONNECT), and example
# 05's page, whose EventSource lists the events the server streams.
# Installs Chromium, openssl and playwright-core when missing. Loopback only, bounded in time.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib.sh"
need chromium:chromium openssl:openssl
node_modules "$here" playwright-core
build_server
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
