#!/usr/bin/env bash
# Measures tokbench's regression gate on this machine: how often `tokbench check` calls a
# regression between two honest runs of the same build (false alarms), and whether it catches a
# slowdown: the honest current result with every time scaled by a factor (`check
# --scale-current`), and, with --slow-bin, a real slower build run beside the honest ones.
#
#   benches/calibrate-gate.sh [-k PAIRS] [-r REPEAT] [-t THRESHOLD] [-s FACTOR] [-b BIN]
#                             [--slow-bin BIN] [-o DIR] [-- RUN FLAGS...]
#
# Defaults: 10 pairs, --repeat 10, --threshold 10, factor 1.25, target/release/tokbench, the
# run flags of deploy/ci/github-actions.yml. Each pair runs the slow build first (when given),
# then the baseline, then the current, so a load that grows during a pair works against
# catching the slowdown rather than for it. Every result and verdict stays in DIR. Exit 0 when
# no honest pair was flagged and every slowdown was caught, 1 otherwise, 2 on bad usage.
set -euo pipefail

pairs=10 repeat=10 threshold=10 factor=1.25 bin=target/release/tokbench slow_bin= out=
run_flags=(--preset tiny --phase prefill,decode --prompt-len 128 --depth 512 --samples 3
  --min-time 0.2 --max-warmup 0.5 --no-tune --power-source none --idle-s 0)
usage() { sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
while [[ $# -gt 0 ]]; do
  case "$1" in
    -k) pairs=$2; shift 2 ;;
    -r) repeat=$2; shift 2 ;;
    -t) threshold=$2; shift 2 ;;
    -s) factor=$2; shift 2 ;;
    -b) bin=$2; shift 2 ;;
    --slow-bin) slow_bin=$2; shift 2 ;;
    -o) out=$2; shift 2 ;;
    --) shift; run_flags=("$@"); break ;;
    *) usage ;;
  esac
done
command -v jq >/dev/null || { echo "calibrate-gate: needs jq (apt-get install jq)" >&2; exit 2; }
[[ -x "$bin" ]] || { echo "calibrate-gate: no tokbench binary at $bin (cargo build --release)" >&2; exit 2; }
[[ -z "$slow_bin" || -x "$slow_bin" ]] || { echo "calibrate-gate: --slow-bin $slow_bin is not executable" >&2; exit 2; }
out=${out:-$(mktemp -d -t tokbench-gate.XXXXXX)}
mkdir -p "$out"
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp}

# Runs one measurement into $out/$1.json; prints its wall seconds.
measure() {
  local name=$1 binary=$2 start end
  start=$(date +%s.%N)
  "$binary" run "${run_flags[@]}" --repeat "$repeat" --out "$out/$name.json" \
    >"$out/$name.log" 2>&1 || { echo "calibrate-gate: $name failed, see $out/$name.log" >&2; exit 1; }
  end=$(date +%s.%N)
  awk -v a="$end" -v b="$start" 'BEGIN { printf "%.2f\n", a - b }'
}

# Checks $2 against $1 (extra flags after); prints "exit regressions inconclusive".
judge() {
  local base=$1 cur=$2 name=$3 code=0
  shift 3
  "$bin" check --baseline "$out/$base.json" --current "$out/$cur.json" --threshold "$threshold" \
    --format json --out "$out/$name.check.json" "$@" 2>/dev/null || code=$?
  [[ $code -le 1 ]] || { echo "calibrate-gate: check $name failed with exit $code" >&2; exit 1; }
  echo "$code $(jq -r '"\(.regressions) \(.inconclusive)"' "$out/$name.check.json")"
}

false_alarms=0 honest_inconclusive=0 scaled_caught=0 slow_caught=0 run_s=0
printf '%-5s %-9s %-22s %-22s %s\n' pair "run s" "honest: exit reg inc" "x$factor: exit reg inc" \
  "${slow_bin:+slow build: exit reg inc}"
for i in $(seq 1 "$pairs"); do
  [[ -z "$slow_bin" ]] || measure "slow-$i" "$slow_bin" >/dev/null
  a_s=$(measure "base-$i" "$bin")
  b_s=$(measure "cur-$i" "$bin")
  run_s=$(awk -v s="$run_s" -v a="$a_s" -v b="$b_s" 'BEGIN { print s + a + b }')
  # Assigned first, so a failing check stops the script (set -e).
  honest=$(judge "base-$i" "cur-$i" "honest-$i")
  scaled=$(judge "base-$i" "cur-$i" "scaled-$i" --scale-current "$factor")
  read -r h_code h_reg h_inc <<<"$honest"
  read -r s_code s_reg s_inc <<<"$scaled"
  [[ $h_code -eq 0 ]] || false_alarms=$((false_alarms + 1))
  [[ $h_inc -eq 0 ]] || honest_inconclusive=$((honest_inconclusive + 1))
  [[ $s_code -eq 0 ]] || scaled_caught=$((scaled_caught + 1))
  slow=""
  if [[ -n "$slow_bin" ]]; then
    slow=$(judge "base-$i" "slow-$i" "slow-$i")
    read -r w_code w_reg w_inc <<<"$slow"
    [[ $w_code -eq 0 ]] || slow_caught=$((slow_caught + 1))
  fi
  printf '%-5s %-9.1f %-22s %-22s %s\n' "$i" "$b_s" "$h_code $h_reg $h_inc" \
    "$s_code $s_reg $s_inc" "$slow"
done

mean_s=$(awk -v s="$run_s" -v k="$pairs" 'BEGIN { printf "%.1f", s / (2 * k) }')
echo
echo "settings: --repeat $repeat --threshold $threshold; run flags: ${run_flags[*]}"
echo "honest pairs flagged as regressions: $false_alarms of $pairs (inconclusive: $honest_inconclusive)"
echo "synthetic slowdown x$factor caught: $scaled_caught of $pairs"
[[ -z "$slow_bin" ]] || echo "slow build caught: $slow_caught of $pairs"
echo "one measured run: $mean_s s on average (a CI job runs one, against a committed baseline)"
echo "results and verdicts: $out"
ok=$(( false_alarms == 0 && scaled_caught == pairs ))
[[ -z "$slow_bin" ]] || ok=$(( ok && slow_caught == pairs ))
[[ $ok -eq 1 ]]
