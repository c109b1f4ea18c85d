#!/usr/bin/env bash
# Checks the Kubernetes manifests without a cluster or a network:
#   1. schema: kubernetes-validate (PyPI; it ships the Kubernetes JSON schemas) in strict mode,
#      against the oldest and the newest Kubernetes version it knows, run inside a network
#      namespace with no network at all when this machine allows one (root), so nothing is fetched;
#   2. what the schema cannot see: Indexed, one pod per node, GPU requests, the downward-API
#      variables tokbench records, `--jsonl`;
#   3. the pods' command and collection: the manifest's own args and env (preset swapped for
#      `tiny`, sampling shortened) run here through the real binary, as three "pods", and
#      collect.sh gathers their logs through a stand-in kubectl into fleet.jsonl; each line must
#      be a valid result placed by Kubernetes, and `tokbench compare fleet.jsonl` must succeed
#      where this tokbench has compare.
#
#   bash deploy/k8s/test-offline.sh
#   K8S_VALIDATE_VENV=DIR   where kubernetes-validate is installed (default target/k8s-validate-venv;
#                           created with `python3 -m venv` and pip on first use)
#   TOKBENCH_BIN=PATH       the binary for step 3 (default: target/release/tokbench, built if needed)
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
k8s=$repo/deploy/k8s
manifests=("$k8s"/tokbench-job-*.yaml)
venv=${K8S_VALIDATE_VENV:-$repo/target/k8s-validate-venv}
validator_version=1.37.0
started=$(date +%s)

say() { echo "test-k8s: $*"; }
fail() { say "FAIL: $*" >&2; exit 1; }

if [[ ! -x $venv/bin/kubernetes-validate ]]; then
  say "installing kubernetes-validate $validator_version into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "kubernetes-validate==$validator_version"
fi
py=$venv/bin/python

# 1. Schemas, offline. `unshare -n` gives the validator a network namespace with only a downed
# loopback: a validator that tried to download a schema would fail here.
offline=()
if unshare -n true 2>/dev/null; then offline=(unshare -n); fi
for k in 1.25.0 1.37.0; do
  "${offline[@]}" "$venv/bin/kubernetes-validate" --strict --quiet -k "$k" "${manifests[@]}" ||
    fail "schema validation against Kubernetes $k"
done
say "schemas: ${#manifests[@]} manifests valid (strict) for Kubernetes 1.25 and 1.37${offline:+, without network}"

# 2. The properties a fleet run depends on.
"$py" - "${manifests[@]}" <<'EOF'
import sys, yaml

for path in sys.argv[1:]:
    docs = [d for d in yaml.safe_load_all(open(path)) if d]
    assert len(docs) == 1, f"{path}: {len(docs)} documents"
    job = docs[0]
    where = f"{path.rsplit('/', 1)[-1]}"
    spec = job["spec"]
    assert job["kind"] == "Job", where
    assert spec["completionMode"] == "Indexed", f"{where}: not an Indexed Job"
    assert spec["parallelism"] == spec["completions"], f"{where}: parallelism != completions"
    pod = spec["template"]["spec"]
    labels = spec["template"]["metadata"]["labels"]
    terms = pod["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert any(
        t["topologyKey"] == "kubernetes.io/hostname"
        and t["labelSelector"]["matchLabels"].items() <= labels.items()
        for t in terms
    ), f"{where}: no required anti-affinity on the pods' own labels per hostname"
    (c,) = pod["containers"]
    assert c["command"] == ["tokbench"] and c["args"][:2] == ["run", "--jsonl"], f"{where}: {c['args']}"
    gpus = {k: v for k, v in c["resources"]["limits"].items() if k.endswith("/gpu")}
    assert gpus and gpus.items() <= c["resources"]["requests"].items(), f"{where}: GPU request/limit"
    env = {e["name"]: e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") for e in c["env"]}
    for name, field in [("TOKBENCH_NODE_NAME", "spec.nodeName"),
                        ("TOKBENCH_POD_NAME", "metadata.name"),
                        ("TOKBENCH_POD_NAMESPACE", "metadata.namespace")]:
        assert env.get(name) == field, f"{where}: {name} must come from {field}"
    if "nodepool" in where:
        assert pod.get("nodeSelector"), f"{where}: no nodeSelector"
print(f"test-k8s: fleet properties hold in {len(sys.argv) - 1} manifests")
EOF

# 3. Three stand-in pods running the NVIDIA manifest's command here, then collect.sh.
bin=${TOKBENCH_BIN:-}
if [[ -z $bin ]]; then
  (cd "$repo" && cargo build --release --quiet)
  bin=$repo/target/release/tokbench
fi
tmp=$(mktemp -d /tmp/tokbench-k8s.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/bin" "$tmp/logs"

# The pod's argv and plain env values from the manifest, with test-sized settings.
mapfile -t pod_args < <("$py" - "$k8s/tokbench-job-nvidia.yaml" <<'EOF'
import sys, yaml

c = yaml.safe_load(open(sys.argv[1]))["spec"]["template"]["spec"]["containers"][0]
quick = {"--preset": "tiny", "--prompt-len": "16", "--depth": "16"}
args = []
for a in c["args"]:
    flag = a.split("=", 1)[0]
    args.append(f"{flag}={quick[flag]}" if flag in quick else a)
args += ["--samples=2", "--min-time=0", "--max-warmup=0"]
print("\n".join(args))
EOF
)
for i in 0 1 2; do
  # What the kubelet would set: the downward API, the Indexed Job's index, the manifest's values
  # (results go to a scratch directory instead of the pod's /results).
  (
    cd "$tmp"
    unset SLURM_JOB_ID # a Slurm placement would win over the Kubernetes one
    export TOKBENCH_NODE_NAME=gpu-node-$i TOKBENCH_POD_NAME=tokbench-$i-abcde
    export TOKBENCH_POD_NAMESPACE=bench JOB_COMPLETION_INDEX=$i KUBERNETES_SERVICE_HOST=10.0.0.1
    export TOKBENCH_RESULTS_DIR=$tmp/results XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp}
    # A container log holds stdout and stderr together, as `kubectl logs` returns it.
    "$bin" "${pod_args[@]}" >"$tmp/logs/tokbench-$i-abcde.log" 2>&1
  ) || { cat "$tmp/logs/tokbench-$i-abcde.log" >&2; fail "pod $i: tokbench ${pod_args[*]}"; }
done

# A stand-in kubectl answering exactly the calls collect.sh makes, from the logs above.
cat >"$tmp/bin/kubectl" <<EOF
#!/usr/bin/env bash
set -euo pipefail
[[ \$1 == --namespace ]] && shift 2
case "\$1 \$2" in
  "get job") case "\$*" in *conditions*) echo Complete ;; *completions*) echo 3 ;; esac ;;
  "get pods") for f in "$tmp"/logs/*.log; do basename "\$f" .log; done ;;
  logs*) cat "$tmp/logs/\$2.log" ;;
  *) echo "kubectl stand-in: unexpected call: \$*" >&2; exit 2 ;;
esac
EOF
chmod +x "$tmp/bin/kubectl"
PATH=$tmp/bin:$PATH NAMESPACE=bench bash "$k8s/collect.sh" tokbench "$tmp/fleet.jsonl"

"$py" - "$tmp/fleet.jsonl" <<'EOF'
import json, sys

lines = open(sys.argv[1]).read().splitlines()
assert len(lines) == 3, f"{len(lines)} lines in fleet.jsonl"
nodes = set()
for line in lines:
    doc = json.loads(line)
    p = doc["node"]["placement"]
    assert p["scheduler"] == "kubernetes" and p["namespace"] == "bench", p
    assert p["pod_name"].startswith("tokbench-") and p["task_id"] in {"0", "1", "2"}, p
    assert all(w["valid"] for w in doc["workloads"]), "invalid workload"
    nodes.add(p["node_name"])
assert nodes == {"gpu-node-0", "gpu-node-1", "gpu-node-2"}, nodes
print(f"test-k8s: fleet.jsonl holds 3 valid results from {', '.join(sorted(nodes))}")
EOF

if "$bin" compare --help >/dev/null 2>&1; then
  "$bin" compare "$tmp/fleet.jsonl" --format md >"$tmp/fleet.md" || fail "tokbench compare fleet.jsonl"
  [[ -s $tmp/fleet.md ]] || fail "tokbench compare fleet.jsonl printed nothing"
  say "tokbench compare fleet.jsonl: ok"
else
  say "tokbench compare not checked: this tokbench has no 'compare' subcommand yet"
fi
say "passed in $(($(date +%s) - started)) s"
