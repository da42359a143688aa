#!/usr/bin/env bash
# Run every cargo-fuzz target of fuzz/ for a bounded time, starting from the seed corpus in
# fuzz/corpus/<target>/ (copied into a scratch directory, so the repository's corpus is never
# written to).
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     (default: 60 s, all targets)
#
# Works on a stable toolchain: cargo-fuzz needs nightly-only flags (-Z sanitizer, sanitizer
# coverage), which RUSTC_BOOTSTRAP=1 unlocks. AddressSanitizer is used when it links, else the
# targets are built without a sanitizer (FUZZ_SANITIZER=none forces that).
#
# Environment: CARGO_TARGET_DIR (default <repo>/target-fuzz), FUZZ_SANITIZER (address|none),
# FUZZ_KEEP_CORPUS=1 (keep the scratch corpus of earlier runs instead of starting from the
# seeds), FUZZ_ARGS (extra libFuzzer flags).
#
# Prints one line per target, then "N passed, N failed"; exits 1 if any target found a crash
# (the reproducing input's path is printed) or could not be built.
set -uo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
SECS="${1:-60}"
shift || true
ALL_TARGETS=(frame_decoder handshake deflate)
if [ "$#" -gt 0 ]; then TARGETS=("$@"); else TARGETS=("${ALL_TARGETS[@]}"); fi

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target-fuzz}"
export RUSTC_BOOTSTRAP=1
export CARGO_TERM_COLOR=never
SCRATCH="$CARGO_TARGET_DIR/fuzz-corpus"
LOGS="$CARGO_TARGET_DIR/fuzz-logs"
ARTIFACTS="$ROOT/fuzz/artifacts"
mkdir -p "$SCRATCH" "$LOGS"

case "$SECS" in
  '' | *[!0-9]*) echo "usage: $0 [SECONDS_PER_TARGET] [TARGET...]" >&2; exit 2 ;;
esac

if ! command -v cargo-fuzz >/dev/null 2>&1 && [ ! -x "$HOME/.cargo/bin/cargo-fuzz" ]; then
  echo "== installing cargo-fuzz"
  cargo install cargo-fuzz --version 0.13.2 --locked || exit 1
fi
export PATH="$HOME/.cargo/bin:$PATH"

cd "$ROOT/fuzz" || exit 1

# -a: debug assertions (and overflow checks) on in the fuzzed code.
build_all() {
  local san=$1 t
  for t in "${TARGETS[@]}"; do
    cargo fuzz build -a --sanitizer "$san" "$t" >>"$LOGS/build.log" 2>&1 || return 1
  done
}

: >"$LOGS/build.log"
SAN="${FUZZ_SANITIZER:-address}"
echo "== building ${TARGETS[*]} (sanitizer: $SAN; log: $LOGS/build.log)"
if ! build_all "$SAN"; then
  if [ "$SAN" = address ]; then
    echo "   AddressSanitizer build failed; retrying without a sanitizer"
    SAN=none
    build_all none || { tail -30 "$LOGS/build.log"; echo "0 passed, ${#TARGETS[@]} failed"; exit 1; }
  else
    tail -30 "$LOGS/build.log"
    echo "0 passed, ${#TARGETS[@]} failed"
    exit 1
  fi
fi

passed=0
failed=0
for t in "${TARGETS[@]}"; do
  seeds="$ROOT/fuzz/corpus/$t"
  work="$SCRATCH/$t"
  log="$LOGS/$t.log"
  if [ "${FUZZ_KEEP_CORPUS:-0}" != 1 ]; then rm -rf "$work"; fi
  mkdir -p "$work" "$ARTIFACTS/$t"
  if [ -d "$seeds" ]; then cp -n "$seeds"/* "$work"/ 2>/dev/null || true; fi
  start=$(date +%s)
  # shellcheck disable=SC2086
  cargo fuzz run -a --sanitizer "$SAN" "$t" "$work" -- \
    -max_total_time="$SECS" -timeout=30 -rss_limit_mb=2048 -print_final_stats=1 \
    ${FUZZ_ARGS:-} >"$log" 2>&1
  rc=$?
  secs=$(($(date +%s) - start))
  runs=$(sed -n 's/^Done \([0-9]*\) runs.*/\1/p' "$log" | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
  units=$(find "$work" -type f | wc -l)
  if [ "$rc" -eq 0 ] && [ -n "$runs" ]; then
    rate=$((runs / (SECS > 0 ? SECS : 1)))
    echo "PASS $t: $runs runs in ${SECS}s (~$rate exec/s), coverage ${cov:-?}, corpus $units inputs"
    passed=$((passed + 1))
  else
    artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -1)
    echo "FAIL $t: exit $rc after ${secs}s; log $log"
    grep -m1 -E "panicked at|ERROR: (AddressSanitizer|libFuzzer)" "$log" | sed 's/^/     /'
    grep -m1 -A3 "panicked at" "$log" | tail -n +2 | sed 's/^/     /'
    if [ -n "$artifact" ]; then
      case "$artifact" in /*) ;; *) artifact="$ROOT/fuzz/${artifact#./}" ;; esac
      echo "     artifact: $artifact"
      echo "     reproduce: (cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run -a --sanitizer $SAN $t $artifact)"
    fi
    failed=$((failed + 1))
  fi
done

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
