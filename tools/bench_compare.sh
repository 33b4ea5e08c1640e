#!/usr/bin/env bash
# Two attrib binaries on the same benchmarks, interleaved (old, new, old,
# new, ...) so both see the same machine, and the median ms/image of each
# measurement with the ratio new/old:
#
#   bash tools/bench_compare.sh OLD_BINARY NEW_BINARY [REPEATS] [-- bench options]
#
# Default work: `bench --backend cpu --nets vgg16,mini --batch 1,8` (forward,
# gated, backward) and `bench --method scorecam|cdrp --nets mini`. Prints a
# markdown table (docs/bench.md keeps the results).
set -euo pipefail
old="${1:?usage: bench_compare.sh OLD NEW [REPEATS] [-- bench options]}"
new="${2:?usage: bench_compare.sh OLD NEW [REPEATS] [-- bench options]}"
repeats="${3:-3}"
shift $(($# >= 3 ? 3 : $#))
[ "${1:-}" = "--" ] && shift
extra=("$@")
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
runs=(
  "--backend cpu --nets vgg16,mini --batch 1,8 --min-time 1"
  "--backend cpu --nets mini --method scorecam --images 2"
  "--backend cpu --nets mini --method cdrp --images 4 --iterations 20"
)
for r in $(seq 1 "$repeats"); do
  for which in old new; do
    bin="$old"; [ "$which" = new ] && bin="$new"
    for i in "${!runs[@]}"; do
      # shellcheck disable=SC2086
      "$bin" bench --json ${runs[$i]} "${extra[@]}" 2>/dev/null >>"$tmp/$which.$i"
    done
  done
done
/usr/bin/env python3 - "$tmp" "${#runs[@]}" <<'EOF'
import json, statistics, sys, os
tmp, n = sys.argv[1], int(sys.argv[2])
def load(which):
    rows = {}
    for i in range(n):
        path = os.path.join(tmp, "%s.%d" % (which, i))
        for line in open(path) if os.path.exists(path) else []:
            line = line.strip()
            if not line.startswith("{"):
                continue
            r = json.loads(line)
            key = (r.get("net"), r.get("method") or r.get("pass"), r.get("batch", r.get("images")))
            val = r.get("ms_per_image") or (1e3 * r["s_per_image"] if "s_per_image" in r else None)
            if val is not None:
                rows.setdefault(key, []).append(val)
    return rows
old, new = load("old"), load("new")
print("| net | pass or method | batch | old ms/image (median) | new ms/image (median) | new/old |")
print("|---|---|---|---|---|---|")
for key in sorted(old, key=str):
    if key not in new:
        continue
    o, w = statistics.median(old[key]), statistics.median(new[key])
    print("| %s | %s | %s | %.3f (%d runs) | %.3f (%d runs) | %.3f |" % (key[0], key[1], key[2], o, len(old[key]), w,
                                                                    len(new[key]), w / o))
EOF
