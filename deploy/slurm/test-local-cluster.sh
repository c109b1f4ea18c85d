#!/usr/bin/env bash
# A real Slurm cluster of three logical nodes (n1, n2, n3) on this one machine, loopback only:
# submits deploy/slurm/tokbench.sbatch with the tiny preset and checks three valid results, one
# per node, and — when this tokbench has `compare` — its Markdown, CSV and HTML reports.
#
#   bash deploy/slurm/test-local-cluster.sh
#
# Needs root (munged runs as user munge; slurmd as root), Debian's slurmctld, slurmd,
# slurm-client and munge packages, python3, and a Vulkan driver (lavapipe will do). Everything it
# starts or writes lives under one temporary directory and ends with it, on success or failure.
#   TOKBENCH_BIN=PATH   the binary to test (default: this tree's target/release/tokbench, built
#                       with `cargo build --release` when needed)
#   TEST_TIMEOUT_S=N    how long the submitted job may run (default 600 s)
#   KEEP=1              keep the temporary directory (printed) for inspection
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
limit=${TEST_TIMEOUT_S:-600}
nodes=(n1 n2 n3)
# Unusual ports, so a real Slurm on this machine (6817/6818) is left alone.
ctld_port=16817
node_ports=(17001 17002 17003)
started=$(date +%s)

say() { echo "test-local-cluster: $*"; }
fail() { say "FAIL: $*" >&2; exit 1; }

((EUID == 0)) || fail "run as root (munged must switch to user munge, slurmd to the job's user)"
for cmd in slurmctld slurmd sbatch sinfo scontrol scancel munged munge setpriv python3; do
  command -v "$cmd" >/dev/null || fail "$cmd not found (apt-get install slurmctld slurmd slurm-client munge python3)"
done
id munge >/dev/null 2>&1 || fail "no user munge (the munge package creates it)"
for port in "$ctld_port" "${node_ports[@]}"; do
  # A listener there would be another cluster: refuse rather than talk to it.
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    fail "port $port on 127.0.0.1 is in use"
  fi
done

bin=${TOKBENCH_BIN:-}
if [[ -z $bin ]]; then
  (cd "$repo" && cargo build --release --quiet)
  bin=$repo/target/release/tokbench
fi
[[ -x $bin ]] || fail "no binary at $bin"

# Every file of the cluster lives here. 0755 so munged (user munge) can reach its socket.
tmp=$(mktemp -d /tmp/tokbench-slurm.XXXXXX)
chmod 755 "$tmp"
pids=()
jobid=
cleanup() {
  local rc=$?
  set +e
  [[ -n $jobid ]] && scancel "$jobid" 2>/dev/null
  # Daemons by the PIDs recorded at start, newest first, then wait for them to go.
  local i
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do kill "${pids[i]}" 2>/dev/null; done
  for pid in "${pids[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null
  done
  if ((rc != 0)); then
    say "logs from $tmp:" >&2
    # The job's own log whole (it says what failed), then the ends of the daemons' logs.
    for log in "$tmp"/job-*.out; do
      [[ -f $log ]] && { echo "--- $log" >&2; cat "$log" >&2; }
    done
    for log in "$tmp"/log/*.log "$tmp"/munge/munged.log; do
      [[ -f $log ]] && { echo "--- $log (end)" >&2; tail -n 15 "$log" >&2; }
    done
  fi
  if [[ ${KEEP:-} == 1 ]]; then say "kept $tmp"; else rm -rf "$tmp"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$tmp"/{munge,state,log,fleet} "${nodes[@]/#/$tmp/spool/}"

# munge: a private key and socket, so no system munged or /etc/munge key is needed or touched.
chown munge:munge "$tmp/munge"
dd if=/dev/urandom of="$tmp/munge/munge.key" bs=1024 count=1 status=none
chown munge:munge "$tmp/munge/munge.key"
chmod 400 "$tmp/munge/munge.key"
socket=$tmp/munge/munge.socket
setpriv --reuid=munge --regid=munge --init-groups \
  munged --foreground --socket="$socket" --key-file="$tmp/munge/munge.key" \
  --log-file="$tmp/munge/munged.log" --pid-file="$tmp/munge/munged.pid" \
  --seed-file="$tmp/munge/munged.seed" >"$tmp/log/munged.out" 2>&1 &
pids+=($!)
for _ in $(seq 50); do [[ -S $socket ]] && break; sleep 0.1; done
munge --socket="$socket" -n >/dev/null || fail "munged did not start"

# A private slurm.conf: nothing under /etc/slurm is read, and state, spool and logs stay in $tmp.
export SLURM_CONF=$tmp/slurm.conf
cat >"$SLURM_CONF" <<EOF
ClusterName=tokbench-test
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$socket
CredType=cred/munge
StateSaveLocation=$tmp/state
SlurmdSpoolDir=$tmp/spool/%n
SlurmctldPidFile=$tmp/slurmctld.pid
SlurmdPidFile=$tmp/slurmd-%n.pid
SlurmctldLogFile=$tmp/log/slurmctld.log
SlurmdLogFile=$tmp/log/slurmd-%n.log
# No cgroups and no systemd here: track processes through /proc.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
# A node that registers after a restart is usable at once.
ReturnToService=2
# Three logical nodes on this host, told apart by port (slurmd -N).
NodeName=n[1-3] NodeHostname=localhost NodeAddr=127.0.0.1 Port=${node_ports[0]}-${node_ports[2]} CPUs=1 State=UNKNOWN
PartitionName=test Nodes=n[1-3] Default=YES MaxTime=30 State=UP
EOF

slurmctld -D >"$tmp/log/slurmctld.out" 2>&1 &
pids+=($!)
for node in "${nodes[@]}"; do
  slurmd -D -N "$node" >"$tmp/log/slurmd-$node.out" 2>&1 &
  pids+=($!)
done

# Wait until all three nodes are idle.
idle=0
for _ in $(seq 60); do
  idle=$(sinfo -h -N -t idle -o '%N' 2>/dev/null | sort -u | wc -l)
  ((idle == ${#nodes[@]})) && break
  sleep 0.5
done
((idle == ${#nodes[@]})) || { sinfo -N >&2 || true; fail "only $idle of ${#nodes[@]} nodes came up idle"; }
say "cluster up: ${#nodes[@]} idle nodes after $(($(date +%s) - started)) s"

# Submit, then follow the job. sbatch 22.05 has no --immediate, so a job still pending after
# a minute (a request the cluster cannot grant waits forever) fails the test, and a deadline
# bounds the run itself. Parameters travel in the environment (sbatch's default --export=ALL).
compare_supported=0
"$bin" compare --help >/dev/null 2>&1 && compare_supported=1
jobid=$(
  TOKBENCH_MODE=run TOKBENCH_COMPARE=auto TOKBENCH_BIN=$bin TOKBENCH_SRC=$repo TOKBENCH_FLEET_DIR=$tmp/fleet \
    TOKBENCH_PRESET=tiny TOKBENCH_PHASE=prefill,decode TOKBENCH_PROMPT_LEN=16 TOKBENCH_DEPTH=16 \
    TOKBENCH_SAMPLES=2 TOKBENCH_MIN_TIME=0 TOKBENCH_MAX_WARMUP=0 XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp} \
    sbatch --parsable --nodes=${#nodes[@]} --time=10 --chdir="$tmp" --output="$tmp/job-%j.out" \
    "$repo/deploy/slurm/tokbench.sbatch"
)
jobid=${jobid%%;*}
say "submitted job $jobid"
pending_until=$((SECONDS + 60))
until=$((SECONDS + limit))
while :; do
  info=$(scontrol show job -o "$jobid")
  state=$(grep -o 'JobState=[A-Z_]*' <<<"$info" | cut -d= -f2)
  case $state in
    COMPLETED) break ;;
    PENDING) ((SECONDS < pending_until)) || fail "job $jobid still pending: $(grep -o 'Reason=[^ ]*' <<<"$info")" ;;
    RUNNING | CONFIGURING | COMPLETING) ;;
    *)
      fail "job $jobid ended $state, $(grep -o 'ExitCode=[^ ]*' <<<"$info")"
      ;;
  esac
  ((SECONDS < until)) || fail "job $jobid did not end within $limit s"
  sleep 1
done
say "job $jobid completed after $(($(date +%s) - started)) s"
cat "$tmp/job-$jobid.out"
jobid_done=$jobid
jobid= # finished: nothing to cancel

# The results: three documents, all workloads valid, placed by Slurm on three distinct nodes.
python3 - "$tmp/fleet/$jobid_done" "$jobid_done" "${nodes[@]}" <<'EOF'
import json, pathlib, sys

job_dir, job_id, nodes = pathlib.Path(sys.argv[1]), sys.argv[2], sys.argv[3:]
files = sorted(job_dir.glob("*.json"))
assert len(files) == len(nodes), f"{len(files)} results in {job_dir}, want {len(nodes)}"
seen_nodes, seen_tasks = set(), set()
for f in files:
    doc = json.loads(f.read_text())
    where = f.name
    assert doc["schema_version"] >= 1, where
    assert doc["finished_at"] and not doc["interrupted"], f"{where}: run did not finish"
    assert doc["plan"]["model"]["preset"] == "tiny", where
    kinds = {w["kind"] for w in doc["workloads"]}
    assert {"prefill", "decode"} <= kinds, f"{where}: workloads {kinds}"
    for w in doc["workloads"]:
        assert w["valid"] is True, f"{where}: {w['id']} is not valid: {w.get('correctness')}"
        if w["kind"] in ("prefill", "decode"):
            assert w["tokens_per_s"] > 0, f"{where}: {w['id']} tokens_per_s"
    p = doc["node"]["placement"]
    assert p and p["scheduler"] == "slurm", f"{where}: placement {p}"
    assert p["job_id"] == job_id, f"{where}: job id {p['job_id']}, want {job_id}"
    assert f.stem == p["node_name"], f"{where}: written by node {p['node_name']}"
    seen_nodes.add(p["node_name"])
    seen_tasks.add(p["task_id"])
assert seen_nodes == set(nodes), f"nodes {sorted(seen_nodes)}"
assert seen_tasks == {str(i) for i in range(len(nodes))}, f"task ids {sorted(seen_tasks)}"
print(f"test-local-cluster: {len(files)} valid results from nodes {', '.join(sorted(seen_nodes))}")
EOF

# The reports: only where compare exists; when it does, the job above already failed if it did.
if ((compare_supported)); then
  python3 - "$tmp/fleet/$jobid_done" <<'EOF'
import csv, pathlib, sys

base = pathlib.Path(sys.argv[1])
md, csv_path, html = (base.with_name(f"{base.name}.{ext}") for ext in ("md", "csv", "html"))
for path in (md, csv_path, html):
    assert path.is_file() and path.stat().st_size > 0, f"missing or empty report {path}"
assert "|" in md.read_text(), f"{md}: no Markdown table"
rows = list(csv.reader(csv_path.open()))
assert len(rows) >= 2, f"{csv_path}: {len(rows)} rows"
assert "<html" in html.read_text().lower(), f"{html}: not HTML"
print(f"test-local-cluster: reports {md.name}, {csv_path.name} ({len(rows) - 1} rows), {html.name}")
EOF
else
  grep -q "compare skipped" "$tmp/job-$jobid_done.out" || fail "compare neither ran nor was skipped"
  say "reports not checked: this tokbench has no 'compare' subcommand yet"
fi

say "passed in $(($(date +%s) - started)) s"
