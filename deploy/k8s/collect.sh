#!/usr/bin/env bash
# Collects a tokbench Job's results from its pods' logs into one JSON-lines file, for
# `tokbench compare FILE`. Waits for the Job to end first (complete or failed).
#
#   deploy/k8s/collect.sh [JOB [OUT]]        defaults: tokbench, fleet.jsonl
#   NAMESPACE=bench deploy/k8s/collect.sh    the Job's namespace (default: kubectl's current one)
#   WAIT_S=7200                              how long to wait for the Job (default 7200 s)
#
# The one-line equivalent, once the Job has ended:
#   kubectl logs -l job-name=tokbench --tail=-1 | grep '^{"schema_version"' > fleet.jsonl
# This script asks pod by pod instead, so it can say which pod gave no result.
set -euo pipefail

job=${1:-tokbench}
out=${2:-fleet.jsonl}
kubectl=(kubectl)
[[ -n ${NAMESPACE:-} ]] && kubectl+=(--namespace "$NAMESPACE")
wait_until=$((SECONDS + ${WAIT_S:-7200}))

say() { echo "collect: $*" >&2; }

# Complete, or Failed (some pods gave up or the deadline passed): collect what there is.
while :; do
  conditions=$("${kubectl[@]}" get job "$job" -o jsonpath='{.status.conditions[?(@.status=="True")].type}')
  case " $conditions " in
    *" Complete "* | *" Failed "*) break ;;
  esac
  ((SECONDS < wait_until)) || { say "job $job has not ended after ${WAIT_S:-7200} s"; exit 1; }
  sleep 10
done
say "job $job: ${conditions}"

completions=$("${kubectl[@]}" get job "$job" -o jsonpath='{.spec.completions}')
pods=$("${kubectl[@]}" get pods -l "job-name=$job" -o jsonpath='{range .items[*]}{.metadata.name}{"\n"}{end}')

# Build the file aside and move it into place: a half-collected file is never left as OUT.
partial=$(mktemp "$out.XXXXXX")
trap 'rm -f "$partial"' EXIT
found=0
for pod in $pods; do
  # The result is the only stdout line that starts a JSON document; the rest is stderr's table.
  if "${kubectl[@]}" logs "$pod" -c tokbench --tail=-1 | grep '^{"schema_version"' >>"$partial"; then
    found=$((found + 1))
  else
    say "no result in the log of pod $pod (kubectl logs $pod)"
  fi
done
mv "$partial" "$out"
trap - EXIT
say "$found result(s) from $(wc -w <<<"$pods") pod(s), $completions wanted: $out"
((found > 0)) || exit 1
