#!/usr/bin/env python3
"""Summarise an Autobahn|Testsuite report (the index.json written by wstest or kosoku).

usage: summary.py REPORT/index.json [--require-deflate] [--strict]

Verdicts per case come from two fields: "behavior" (what the server did) and "behaviorClose"
(how the closing handshake went).  A case passes when both are acceptable:
  OK, INFORMATIONAL                 always acceptable
  NON-STRICT                        acceptable unless --strict
  UNIMPLEMENTED                     acceptable unless --require-deflate (12.x/13.x report it
                                    when the server declined permessage-deflate)
  anything else (FAILED, WRONG CODE, UNCLEAN, ...) is a failure.
Prints one row per section (1.x .. 13.x), the failing and the non-OK cases, and as the very last
line "N passed, N failed".  Exit status 1 when anything failed (or nothing was run).
"""
import json
import sys
from collections import defaultdict


def main(argv):
    args = [a for a in argv[1:] if not a.startswith("--")]
    flags = {a for a in argv[1:] if a.startswith("--")}
    unknown = flags - {"--require-deflate", "--strict"}
    if len(args) != 1 or unknown:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    strict = "--strict" in flags
    require_deflate = "--require-deflate" in flags
    good = {"OK", "INFORMATIONAL"}
    if not strict:
        good.add("NON-STRICT")
    if not require_deflate:
        good.add("UNIMPLEMENTED")

    with open(args[0]) as f:
        data = json.load(f)

    def key(cid):
        return [int(x) for x in cid.split(".")]

    passed = failed = 0
    for agent, cases in sorted(data.items()):
        sections = defaultdict(lambda: defaultdict(int))
        bad, notable = [], []
        for cid in sorted(cases, key=key):
            r = cases[cid]
            b, bc = r.get("behavior", "?"), r.get("behaviorClose", "?")
            ok = b in good and bc in good
            sec = sections[cid.split(".")[0]]
            sec["cases"] += 1
            sec[b] += 1
            sec["ms"] += r.get("duration", 0) or 0
            if ok:
                passed += 1
                sec["pass"] += 1
                if b != "OK" or bc != "OK":
                    notable.append((cid, b, bc, r.get("remoteCloseCode")))
            else:
                failed += 1
                sec["fail"] += 1
                bad.append((cid, b, bc, r.get("remoteCloseCode")))
        cols = ["OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED"]
        print(f"agent: {agent}")
        print(f"{'section':>8} {'cases':>6} {'pass':>5} {'fail':>5} "
              + " ".join(f"{c:>13}" for c in cols) + f" {'case ms':>9}")
        for s in sorted(sections, key=int):
            v = sections[s]
            print(f"{s + '.x':>8} {v['cases']:>6} {v['pass']:>5} {v['fail']:>5} "
                  + " ".join(f"{v[c]:>13}" for c in cols) + f" {v['ms']:>9}")
        for cid, b, bc, code in notable:
            print(f"  note {cid}: behavior={b} close={bc} remoteCloseCode={code}")
        for cid, b, bc, code in bad:
            print(f"  FAIL {cid}: behavior={b} close={bc} remoteCloseCode={code}")
    if passed + failed == 0:
        failed = 1
        print("no cases in report")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
