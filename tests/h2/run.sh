#!/usr/bin/env bash
# HTTP/2 with real clients: curl (--http2 over TLS with ALPN, --http2-prior-knowledge over
# cleartext), nghttp and h2load (Debian's nghttp2-client), Python httpx with http2=True, an
# RFC 8441 client on Python h2 running the seed's session over an h2 stream (and two WebSocket
# streams plus a request on one connection), and frame-level checks in the spirit of h2spec.
# Installs what it needs; loopback only; every server it starts is stopped at the end.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib.sh"
need curl:curl openssl:openssl nghttp:nghttp2-client h2load:nghttp2-client
python_venv "$here" "h2, httpx"
py="$here/.venv/bin/python"
build_server
work=$(mktemp -d /tmp/pagi-h2.XXXXXX)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; rm -rf "$work"' EXIT
start() { # start PORT ARGS...: a pagi-server in the background
  local port=$1; shift
  "$bin" --host 127.0.0.1 --port "$port" -q --no-access-log "$@" & pids+=($!)
  wait_port "$port"
}
failed=0
# check "WHAT" CMD...: run CMD (a failure is counted, not fatal: set -e is off inside `if`).
check() {
  local what=$1; shift
  if "$@"; then echo "ok   $what"; else echo "FAIL $what"; failed=$((failed + 1)); fi
}
has() { grep -q -- "$1" <<<"$2"; } # has PATTERN TEXT

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
  -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null

hello=$(free_port); start "$hello" --app 01
tls=$(free_port); start "$tls" --app 01 --ssl-cert "$work/cert.pem" --ssl-key "$work/key.pem"
stream=$(free_port); start "$stream" --app 02
seed=$(free_port); start "$seed" --app 18
sse=$(free_port); start "$sse" --app 05

out=$(curl -s --http2-prior-knowledge -w '%{http_version} %{http_code}' "http://127.0.0.1:$hello/" || true)
check "curl --http2-prior-knowledge (h2c): $out" [ "$out" = $'Hello from PAGI!\n2 200' ]
out=$(curl -s --http2 --cacert "$work/cert.pem" -w '%{http_version} %{http_code}' "https://localhost:$tls/" || true)
check "curl --http2 over TLS (ALPN h2): $out" [ "$out" = $'Hello from PAGI!\n2 200' ]
out=$(curl -s --http1.1 --cacert "$work/cert.pem" -w '%{http_version}' -o /dev/null "https://localhost:$tls/" || true)
check "the same TLS port still speaks HTTP/1.1 to a client that asks ($out)" [ "$out" = "1.1" ]
out=$(curl -s -w '%{http_version}' -o /dev/null "http://127.0.0.1:$hello/" || true)
check "the same cleartext port still speaks HTTP/1.1 ($out)" [ "$out" = "1.1" ]
out=$(nghttp -v "http://127.0.0.1:$stream/?delay_ms=20" 2>&1 || true)
check "nghttp: the trailer arrives after the streamed body over h2" has 'x-chunks: 3' "$out"
check "nghttp: the server advertises extended CONNECT" has 'SETTINGS_ENABLE_CONNECT_PROTOCOL(0x08):1' "$out"
out=$(h2load -n 2000 -c 10 -m 10 "http://127.0.0.1:$hello/" 2>&1 || true)
check "h2load: 2000 requests over 10 connections, 10 streams each" \
  has '2000 succeeded, 0 failed, 0 errored' "$out"
httpx_check() {
  "$py" - "$hello" "$sse" <<'PY'
import sys, httpx
hello, sse = sys.argv[1:]
with httpx.Client(http2=True, http1=False, timeout=10) as c:
    r = c.get(f"http://127.0.0.1:{hello}/")
    assert r.http_version == "HTTP/2" and r.text == "Hello from PAGI!\n", (r.http_version, r.text)
    with c.stream("GET", f"http://127.0.0.1:{sse}/events?n=2",
                  headers={"accept": "text/event-stream"}) as s:
        text = s.read().decode()
    assert text.count("event: update") == 2 and "event: done" in text, text
PY
}
check "httpx with http2=True: HTTP/2 responses, and an event stream" httpx_check
timeout 60 "$py" "$here/ws_over_h2.py" 127.0.0.1 "$seed" || failed=$((failed + 1))
timeout 120 "$py" "$here/frames.py" 127.0.0.1 "$hello" || failed=$((failed + 1))
if [ "$failed" -gt 0 ]; then echo "h2: $failed failed"; exit 1; fi
echo "h2: all checks passed"
