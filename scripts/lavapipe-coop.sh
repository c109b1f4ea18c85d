#!/usr/bin/env bash
# The cooperative-matrix tier without a GPU: Mesa 26.1's lavapipe (VK_KHR_cooperative_matrix,
# 8×8×8 f16) in a Debian trixie chroot, since Debian 12's Mesa 22.3 has no cooperative matrices
# and the 26.x packages need a newer glibc than the host's. A binary built here on bookworm runs
# inside it unchanged. Runs the cooperative-matrix tests and a `tokbench run --math coopmat`.
#
# Usage (as root): scripts/lavapipe-coop.sh [--build-only]
#   LVP26_ROOT   where the chroot lives (default /var/tmp/lvp26; reused when it exists)
# The README's "Math tiers" section says what it checks and why.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
root=${LVP26_ROOT:-/var/tmp/lvp26}
started=$(date +%s)

if [ "$(id -u)" != 0 ]; then
  echo "lavapipe-coop: needs root (mmdebstrap, chroot, mount)" >&2
  exit 2
fi

# 1. The chroot, once (about 50 s and 430 MB): trixie with mesa-vulkan-drivers 26.1 from
#    trixie-backports, from the archive this machine already uses.
if [ ! -x "$root/usr/bin/vulkaninfo" ]; then
  if [ -e "$root" ]; then
    echo "lavapipe-coop: $root exists but is not the chroot this script builds; remove it or set LVP26_ROOT" >&2
    exit 2
  fi
  command -v mmdebstrap >/dev/null || {
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq mmdebstrap >/dev/null
  }
  uri=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  uri=${uri:-http://deb.debian.org/debian}
  rm -rf "$root.partial"
  echo "lavapipe-coop: building the trixie chroot in $root from $uri"
  mmdebstrap --quiet --variant=apt --components=main \
    --include='mesa-vulkan-drivers/trixie-backports,libvulkan1,vulkan-tools' \
    trixie "$root.partial" "deb $uri trixie main" "deb $uri trixie-backports main"
  mv "$root.partial" "$root"
fi
[ "${1:-}" = --build-only ] && exit 0

# 2. The binaries: the release tokbench, the root crate's unit tests, and the CLI tests (which
#    run the tokbench binary at its build path, so it is copied there too).
command -v python3 >/dev/null || {
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq python3 >/dev/null
}
cargo build --release --quiet
tests=$(cargo test --release --lib --test cli --no-run --message-format=json 2>/dev/null |
  python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["profile"]["test"]:
        print(m["target"]["name"], m["executable"])')
lib_test=$(awk '$1 == "tokbench" {print $2}' <<<"$tests")
cli_test=$(awk '$1 == "cli" {print $2}' <<<"$tests")
[ -n "$lib_test" ] && [ -n "$cli_test" ] || { echo "lavapipe-coop: test binaries not found" >&2; exit 1; }

# Everything the tests read from the checkout (the shaders, by CARGO_MANIFEST_DIR; the binary, by
# CARGO_BIN_EXE_tokbench) is copied to the same path inside the chroot; the rest goes to /opt/t.
mkdir -p "$root/opt/t" "$root$repo/target/release"
cp target/release/tokbench "$root/opt/t/tokbench"
cp target/release/tokbench "$root$repo/target/release/tokbench"
cp "$lib_test" "$root/opt/t/unit-tests"
cp "$cli_test" "$root/opt/t/cli-tests"
rm -rf "$root$repo/shaders" && cp -r shaders "$root$repo/shaders"

# sysinfo reads /proc/meminfo to plan memory: without /proc every model is refused.
cleanup() { umount "$root/proc" 2>/dev/null || true; }
trap cleanup EXIT
mountpoint -q "$root/proc" || mount -t proc proc "$root/proc"

in_chroot() { chroot "$root" /usr/bin/env XDG_RUNTIME_DIR=/tmp HOME=/tmp "$@"; }

in_chroot /opt/t/tokbench devices
# 3. The cooperative-matrix tests: here they must run, never skip. lavapipe lists 8x8 only; the
#    16x16 variant's test runs on it unlisted (evidence for the shader, not used by runs).
in_chroot env TOKBENCH_REQUIRE_COOP=1 TOKBENCH_TRY_UNLISTED_COOP=1 /opt/t/unit-tests coop --test-threads 1
in_chroot /opt/t/cli-tests math_ --test-threads 1

# 4. A model run on the tier: valid, every product workload (prefill and decode) on coopmat-f16.
rm -f "$root/tmp/coop-run.json"
in_chroot sh -c 'cd /tmp && /opt/t/tokbench run --preset tiny --dtype f16 --math coopmat \
  --samples 3 --min-time 0.2 --idle-s 0 --power-source none --out /tmp/coop-run.json'
python3 - "$root/tmp/coop-run.json" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
bad = [w["id"] for w in doc["workloads"] if not w["valid"]]
assert not bad, f"invalid workloads: {bad}"
products = [w for w in doc["workloads"] if w.get("phase")]
assert {w["phase"] for w in products} == {"prefill", "decode"}, [w["id"] for w in products]
matrix = (doc["probes"] or {}).get("matrix_gflops")
assert matrix, "no matrix probe peak"
for w in products:
    assert w["math"]["tier"] == "coopmat-f16", (w["id"], w["math"])
    # Compared with the matrix peak, not the FMA one.
    assert w["math"]["peak_gflops"] == matrix == w["roofline"]["peak_gflops"], w["math"]
print("lavapipe-coop: run valid;", ", ".join(f'{w["id"]}: {w["math"]["tier"]}' for w in doc["workloads"] if w.get("math")))
PY
echo "lavapipe-coop: passed in $(($(date +%s) - started)) s"
