#!/usr/bin/env bash
# Autobahn|Testsuite runner for pagi-rs.
#
#   scripts/autobahn/run.sh [--require-deflate] [--strict] URL OUTDIR [EXCLUDE_GLOB ...]
#   e.g. scripts/autobahn/run.sh --require-deflate ws://127.0.0.1:9001/ /tmp/ab '12.*' '13.*'
#
# Runs the fuzzingclient of the real `wstest` (PyPI autobahntestsuite, Python 2.7) against a
# WebSocket echo endpoint on loopback, then prints a per-section table and, as its last line,
# exactly "N passed, N failed" (exit 1 on any failure).
#
# Installs what it needs when missing:
#   * wstest: a Python 2.7 interpreter (pyenv's ~/.pyenv/versions/2.7*, or $PY2) is turned into a
#     virtualenv by "virtualenv<20.22" (the last release that can still create 2.7 environments),
#     itself installed into a throw-away Python 3 venv; then autobahntestsuite==25.10.1.
#   * fallback when no Python 2.7 exists (or AB_RUNNER=kosoku): kosoku==0.1.0, a Python 3 runner
#     driving Autobahn's own case files. It is more lenient than wstest; prefer wstest as the gate.
#
# Options (passed on to summary.py):
#   --require-deflate  UNIMPLEMENTED (the server did not negotiate permessage-deflate) is a FAIL
#   --strict           NON-STRICT is a FAIL
# Env: AB_VENV (default ~/.cache/pagi-autobahn/wstest), KOSOKU_VENV (~/.cache/pagi-autobahn/kosoku),
#      AB_TIMEOUT seconds (default 1800), AB_AGENT report name (default "pagi"),
#      AB_RUNNER=wstest|kosoku, PY2 (path of python2.7), PY3 (default python3).
set -euo pipefail

summary_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --require-deflate|--strict) summary_args+=("$1"); shift ;;
    -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
    --) shift; break ;;
    -*) echo "unknown option $1" >&2; exit 2 ;;
    *) break ;;
  esac
done
[ $# -ge 2 ] || { echo "usage: $0 [--require-deflate] [--strict] URL OUTDIR [EXCLUDE_GLOB ...]" >&2; exit 2; }
URL=$1; OUT=$2; shift 2

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/pagi-autobahn
AB_VENV=${AB_VENV:-$CACHE/wstest}
KOSOKU_VENV=${KOSOKU_VENV:-$CACHE/kosoku}
AB_TIMEOUT=${AB_TIMEOUT:-1800}
AGENT=${AB_AGENT:-pagi}
PY3=${PY3:-python3}

# Only ever talk to this machine.
case "$URL" in ws://*|wss://*) ;; *) echo "refusing $URL: only ws:// and wss:// URLs are supported" >&2; exit 2 ;; esac
host=$(sed -E 's#^wss?://(\[[^]]+\]|[^:/]+).*#\1#' <<<"$URL")
case "$host" in
  127.*|localhost|"[::1]") ;;
  *) echo "refusing non-loopback target '$host' (only 127.0.0.0/8, localhost, [::1])" >&2; exit 2 ;;
esac

PY2=${PY2:-$(ls "$HOME"/.pyenv/versions/2.7*/bin/python2.7 2>/dev/null | sort -V | tail -1 || true)}
if [ -n "${AB_RUNNER:-}" ]; then RUNNER=$AB_RUNNER
elif [ -x "$AB_VENV/bin/wstest" ] || { [ -n "$PY2" ] && [ -x "$PY2" ]; }; then RUNNER=wstest
else RUNNER=kosoku; fi

install_wstest() {
  [ -x "$AB_VENV/bin/wstest" ] && return 0
  [ -n "$PY2" ] && [ -x "$PY2" ] || { echo "no python2.7 found (set PY2)" >&2; return 1; }
  echo "installing autobahntestsuite==25.10.1 into $AB_VENV (python: $PY2)" >&2
  local mk; mk=$(mktemp -d)
  "$PY3" -m venv "$mk/venv" && "$mk/venv/bin/pip" -q install "virtualenv<20.22" \
    && rm -rf "$AB_VENV" && mkdir -p "$(dirname "$AB_VENV")" \
    && "$mk/venv/bin/virtualenv" -q -p "$PY2" "$AB_VENV" \
    && "$AB_VENV/bin/pip" -q install "autobahntestsuite==25.10.1"
  local rc=$?; rm -rf "$mk"; return $rc
}
install_kosoku() {
  [ -x "$KOSOKU_VENV/bin/kosoku" ] && return 0
  echo "installing kosoku==0.1.0 into $KOSOKU_VENV" >&2
  mkdir -p "$(dirname "$KOSOKU_VENV")"
  "$PY3" -m venv "$KOSOKU_VENV" && "$KOSOKU_VENV/bin/pip" -q install "kosoku==0.1.0"
}

if [ "$RUNNER" = wstest ] && ! install_wstest; then
  echo "wstest install failed; falling back to kosoku" >&2; RUNNER=kosoku
fi
[ "$RUNNER" = kosoku ] && install_kosoku

mkdir -p "$OUT"; OUT=$(cd "$OUT" && pwd)
rm -f "$OUT/index.json"
start=$(date +%s.%N)
if [ "$RUNNER" = wstest ]; then
  excl=""; for x in "$@"; do excl="$excl\"$x\","; done; excl="[${excl%,}]"
  cat > "$OUT/fuzzingclient.json" <<JSON
{"outdir": "$OUT", "servers": [{"agent": "$AGENT", "url": "$URL"}],
 "cases": ["*"], "exclude-cases": $excl, "exclude-agent-cases": {}}
JSON
  ( cd "$OUT" && timeout "$AB_TIMEOUT" "$AB_VENV/bin/wstest" -m fuzzingclient -s fuzzingclient.json \
      > wstest.log 2>&1 ) \
    || { rc=$?; echo "wstest exited $rc (124 = timeout); tail of $OUT/wstest.log:" >&2; tail -5 "$OUT/wstest.log" >&2; }
  # wstest writes OUT/index.json next to the per-case reports.
else
  args=(); for x in "$@"; do args+=(-x "$x"); done
  timeout "$AB_TIMEOUT" "$KOSOKU_VENV/bin/kosoku" "$URL" "${args[@]}" -o "$OUT" > "$OUT/kosoku.log" 2>&1 || true
fi
end=$(date +%s.%N)
wall=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }')
echo "runner: $RUNNER  wall: ${wall} s  report: $OUT/index.html"
if [ ! -f "$OUT/index.json" ]; then
  echo "no index.json produced in $OUT" >&2
  echo "0 passed, 1 failed"
  exit 1
fi
exec "$PY3" "$HERE/summary.py" "$OUT/index.json" "${summary_args[@]}"
