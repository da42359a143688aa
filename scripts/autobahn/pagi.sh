#!/usr/bin/env bash
# Autobahn|Testsuite against pagi-server's echo example (examples/04-websocket-echo).
#
#   scripts/autobahn/pagi.sh fast       # sections 1-7 and 10 (seconds; CI runs this)
#   scripts/autobahn/pagi.sh full       # all 517 cases incl. 9 (limits/perf) and 12/13 (permessage-deflate)
#   scripts/autobahn/pagi.sh fast tls   # the same over wss:// (a throw-away self-signed certificate)
#
# Builds the release binary, starts it on a free loopback port, runs scripts/autobahn/run.sh in
# strict mode (NON-STRICT fails) requiring permessage-deflate to be negotiated, stops the server.
# Report: target/autobahn-<mode>[-tls]/index.html. Last line: "N passed, N failed".
set -euo pipefail
mode=${1:-fast}
tls=${2:-}
root=$(cd "$(dirname "$0")/../.." && pwd)
case "$mode" in
  fast) exclude=('9.*' '12.*' '13.*') ;;
  full) exclude=() ;;
  *) echo "usage: $0 fast|full" >&2; exit 2 ;;
esac
cargo build -q --release -p pagi-cli --manifest-path "$root/Cargo.toml"
bin="${CARGO_TARGET_DIR:-$root/target}/release/pagi-server"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
scheme=ws
tls_args=()
if [ "$tls" = tls ]; then
  command -v openssl >/dev/null || { apt-get install -y -qq openssl >/dev/null 2>&1 \
    || { apt-get update -qq && apt-get install -y -qq openssl >/dev/null; }; }
  certs=$(mktemp -d)
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj /CN=localhost -keyout "$certs/key.pem" -out "$certs/cert.pem" 2>/dev/null
  tls_args=(--ssl-cert "$certs/cert.pem" --ssl-key "$certs/key.pem")
  scheme=wss
  mode="$mode-tls"
fi
"$bin" --app examples/04-websocket-echo --host 127.0.0.1 --port "$port" --quiet ${tls_args[@]+"${tls_args[@]}"} &
server=$!
trap 'kill $server 2>/dev/null || true; [ -n "${certs:-}" ] && rm -rf "$certs"' EXIT
for _ in $(seq 50); do (echo > /dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
out="$root/target/autobahn-$mode"
rm -rf "$out"
AB_AGENT=pagi-server "$root/scripts/autobahn/run.sh" --strict --require-deflate \
  "$scheme://127.0.0.1:$port/" "$out" ${exclude[@]+"${exclude[@]}"}
