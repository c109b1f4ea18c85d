#!/usr/bin/env bash
# The device check: what a machine with a real GPU runs, in under 10 minutes, from binaries built
# elsewhere. Two halves, so the build never happens on the (scarce, often offline) GPU machine:
#
#   scripts/device-check.sh pack [BUNDLE]     here: build release tokbench and the kernel tests,
#                                             strip them, add the Vulkan loader; BUNDLE defaults to
#                                             target/device-bundle (under 64 MiB)
#   BUNDLE/device-check.sh run BUNDLE OUT     there: run every check, everything into OUT
#   scripts/device-check.sh dry-run [OUT]     pack, then run at small shapes on whatever adapter is
#                                             here (lavapipe in CI), so the script itself is tested
#
# `run` steps, in order: `devices --json`; the kernel tests on the real adapter; `tune` for
# llama3-8b-shape f16; `kernel matmul` at 4096³ and at llama3-8b's prefill and decode shapes;
# `run --preset llama3-8b-shape --dtype f16` prefill and decode with power (NVML where present)
# and telemetry; `serve` at a few concurrencies where the binary has it; then one screen of each
# figure as a share of the GPU's published peaks (scripts/device-peaks.json). Each step's exit
# code and time go to OUT/steps.tsv; a failed step does not stop the others, but the script exits
# 1 if any failed. Results are ordinary tokbench JSON: commit them under results/<node>/.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)

pack() {
  local bundle=${1:-target/device-bundle}
  set -e
  cd "$here/.."
  cargo build --release --quiet
  local tests
  tests=$(cargo test --release --lib --no-run --message-format=json 2>/dev/null |
    python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["profile"]["test"]:
        print(m["executable"])' | tail -1)
  [ -n "$tests" ] || { echo "device-check: the kernel test binary was not built" >&2; exit 1; }
  rm -rf "$bundle" && mkdir -p "$bundle/lib"
  strip -o "$bundle/tokbench" target/release/tokbench
  strip -o "$bundle/kernel-tests" "$tests"
  cp scripts/device-check.sh scripts/device-summary.py scripts/device-peaks.json "$bundle/"
  # The Vulkan loader, for GPU machines whose image has the driver but not libvulkan.
  local loader
  loader=$(ldconfig -p | awk '/libvulkan\.so\.1 / {print $NF; exit}')
  [ -n "$loader" ] && cp -L "$loader" "$bundle/lib/libvulkan.so.1"
  local size
  size=$(du -sm "$bundle" | cut -f1)
  echo "device-check: bundle $bundle, ${size} MiB"
  [ "$size" -lt 64 ] || { echo "device-check: bundle over 64 MiB" >&2; exit 1; }
  set +e
}

# Makes a Vulkan loader and an NVIDIA ICD visible where the image lacks them.
vulkan_setup() {
  local bundle=$1 out=$2
  if ! ldconfig -p | grep -q 'libvulkan\.so\.1 ' && [ -e "$bundle/lib/libvulkan.so.1" ]; then
    echo "device-check: no system Vulkan loader; using the bundle's"
    export LD_LIBRARY_PATH="$bundle/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  fi
  local icds
  icds=$(ls /usr/share/vulkan/icd.d/*.json /etc/vulkan/icd.d/*.json 2>/dev/null | grep -i nvidia || true)
  if [ -z "$icds" ] && ldconfig -p | grep -q 'libGLX_nvidia\.so\.0'; then
    echo "device-check: NVIDIA driver without a Vulkan ICD file; writing one"
    cat >"$out/nvidia_icd.json" <<'JSON'
{"file_format_version": "1.0.0", "ICD": {"library_path": "libGLX_nvidia.so.0", "api_version": "1.3.0"}}
JSON
    export VK_ICD_FILENAMES="$out/nvidia_icd.json" VK_DRIVER_FILES="$out/nvidia_icd.json"
  fi
}

failed=0
# step NAME TIMEOUT_S COMMAND...: runs it with its output in OUT/NAME.log, records code and time.
step() {
  local name=$1 limit=$2
  shift 2
  local t0 code
  t0=$(date +%s)
  echo "device-check: [$name] $*"
  timeout "$limit" "$@" >"$out/$name.log" 2>&1
  code=$?
  printf '%s\t%s\t%s\n' "$name" "$code" "$(($(date +%s) - t0))" >>"$out/steps.tsv"
  if [ "$code" != 0 ]; then
    failed=1
    echo "device-check: [$name] exit $code; last lines of $out/$name.log:"
    tail -5 "$out/$name.log"
  fi
}

run_checks() {
  local bundle=$1 small=$2
  bundle=$(cd "$bundle" && pwd)
  mkdir -p "$out"
  out=$(cd "$out" && pwd)
  : >"$out/steps.tsv"
  export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp}" TOKBENCH_TUNE_CACHE="$out/tune.json"
  vulkan_setup "$bundle" "$out"
  local tb="$bundle/tokbench"
  # On the GPU machine landing on a CPU adapter means a driver is missing: refuse. The dry run is
  # on lavapipe by design.
  local gpu=(--require-gpu) preset=llama3-8b-shape big=4096 ff=14336 prompt=512
  if [ "$small" = 1 ]; then
    gpu=() preset=tiny big=256 ff=384 prompt=64
  fi
  local quick=(--idle-s 0 --power-source auto)
  "$tb" --version >"$out/version.txt" 2>&1

  step devices 60 "$tb" devices --json
  cp "$out/devices.log" "$out/devices.txt"
  # The kernel tests on this adapter (the shader-folder test needs the source tree: skipped).
  step kernel-tests 240 "$bundle/kernel-tests" kernels --test-threads 1 \
    --skip every_file_in_shaders_is_registered
  step tune 240 "$tb" tune --preset "$preset" --dtype f16 --quick --prompt-len "$prompt" \
    --depth "$prompt" "${gpu[@]}"
  local mm=(kernel matmul --dtype f16 "${gpu[@]}" "${quick[@]}")
  step matmul-cube-f32 120 "$tb" kernel matmul --m "$big" --n "$big" --k "$big" "${gpu[@]}" \
    "${quick[@]}" --out "$out/matmul-cube-f32.json"
  step matmul-cube-f16 120 "$tb" "${mm[@]}" --m "$big" --n "$big" --k "$big" \
    --out "$out/matmul-cube-f16.json"
  step matmul-prefill-ffn 120 "$tb" "${mm[@]}" --m "$prompt" --n "$ff" --k "$big" \
    --out "$out/matmul-prefill-ffn.json"
  step matmul-decode-qkvo 120 "$tb" "${mm[@]}" --m 1 --n "$big" --k "$big" \
    --out "$out/matmul-decode-qkvo.json"
  step matmul-decode-down 120 "$tb" "${mm[@]}" --m 1 --n "$big" --k "$ff" \
    --out "$out/matmul-decode-down.json"
  step run-f16 300 "$tb" run --preset "$preset" --dtype f16 --phase prefill,decode \
    --prompt-len "$prompt" --depth "$prompt" "${gpu[@]}" --power-source auto --idle-s 2 \
    --min-energy-s "$([ "$small" = 1 ] && echo 0 || echo 2)" --out "$out/run-f16.json"
  if "$tb" serve --help >/dev/null 2>&1; then
    step serve 240 "$tb" serve --preset "$preset" --dtype f16 --isl "$prompt" --osl 32 \
      --concurrency 1,4,16 "${gpu[@]}" --power-source auto --out "$out/serve-f16.json"
  else
    echo "device-check: this tokbench has no serve command; skipped"
  fi
  python3 "$bundle/device-summary.py" "$out" "$bundle/device-peaks.json" | tee "$out/summary.txt"
  echo "device-check: steps (name, exit code, seconds):"
  cat "$out/steps.tsv"
  return "$failed"
}

case "${1:-}" in
  pack)
    pack "${2:-}"
    ;;
  run)
    [ $# = 3 ] || { echo "usage: device-check.sh run BUNDLE OUT" >&2; exit 2; }
    out=$(realpath -m "$3")
    run_checks "$2" 0
    ;;
  dry-run)
    out=$(realpath -m "${2:-target/device-check-dry-run}")
    rm -rf "$out"
    pack target/device-bundle || exit 1
    run_checks target/device-bundle 1
    ;;
  *)
    sed -n '2,18p' "$0" >&2
    exit 2
    ;;
esac
