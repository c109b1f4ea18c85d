#!/usr/bin/env python3
"""One screen of what scripts/device-check.sh measured: every workload of every result in a
folder, its figure and its share of the GPU's published peaks (scripts/device-peaks.json) beside
its share of tokbench's own probes.

Usage: device-summary.py OUT_DIR PEAKS_JSON
"""
import json
import pathlib
import sys


def published_peaks(adapter_name, peaks_file):
    """The first entry of the peaks file whose `match` is in the adapter's name, or None."""
    devices = json.loads(pathlib.Path(peaks_file).read_text())["devices"]
    name = adapter_name.lower()
    return next((d for d in devices if d["match"].lower() in name), None)


def share(value, peak):
    return f"{100.0 * value / peak:5.1f}%" if value and peak else "    -"


def main(out_dir, peaks_file):
    out = pathlib.Path(out_dir)
    docs = []
    for path in sorted(out.glob("*.json")):
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(doc, dict) and doc.get("schema_version") and doc.get("workloads") is not None:
            docs.append((path.name, doc))
    if not docs:
        print(f"device-summary: no tokbench results in {out}")
        return 1
    adapter = docs[0][1]["adapter"]
    peaks = published_peaks(adapter["name"], peaks_file)
    print(f"adapter: {adapter['name']} ({adapter['backend']}, {adapter['device_type']}), "
          f"driver {adapter.get('driver_info') or adapter.get('driver')}")
    if peaks:
        print(f"published peaks ({peaks['name']}): FP32 {peaks['fp32_tflops']} TFLOP/s, "
              f"FP16 tensor {peaks['fp16_tensor_tflops']} TFLOP/s (dense), "
              f"memory {peaks['hbm_tbps']} TB/s, {peaks['tdp_w']} W; {peaks['source']}")
    else:
        print("published peaks: none listed for this adapter in device-peaks.json "
              "(shares below are of tokbench's own probes only)")
    head = (f"{'workload':<52} {'math':<12} {'tok/s':>9} {'GFLOP/s':>10} {'GB/s':>8} "
            f"{'%FLOP pub':>9} {'%BW pub':>8} {'%probe F':>8} {'%probe B':>8} {'W':>6} {'tok/J':>7} ok")
    print(head)
    print("-" * len(head))
    for file, doc in docs:
        for w in doc["workloads"]:
            math = (w.get("math") or {}).get("tier") or "-"
            flop_peak = None
            if peaks:
                tensor = math.startswith("coopmat")
                flop_peak = 1000.0 * (peaks["fp16_tensor_tflops"] if tensor else peaks["fp32_tflops"])
            bw_peak = 1000.0 * peaks["hbm_tbps"] if peaks else None
            roof = w.get("roofline") or {}
            tps = w.get("tokens_per_s")
            watts = (w.get("power") or {}).get("avg_power_w")
            tpj = w.get("tokens_per_j")
            print(f"{w['id'][:52]:<52} {math:<12} "
                  f"{(f'{tps:9.1f}' if tps else '        -')} "
                  f"{w['achieved_gflops']:10.1f} {w['achieved_gbps']:8.1f} "
                  f"{share(w['achieved_gflops'], flop_peak):>9} {share(w['achieved_gbps'], bw_peak):>8} "
                  f"{share(roof.get('compute_share'), 1.0):>8} {share(roof.get('bandwidth_share'), 1.0):>8} "
                  f"{(f'{watts:6.0f}' if watts else '     -')} {(f'{tpj:7.2f}' if tpj else '      -')} "
                  f"{'yes' if w['valid'] else 'NO'}")
    print("%FLOP pub / %BW pub: of the published peaks (FP32 for SIMT math, FP16 tensor for "
          "coopmat); %probe: of tokbench's own probes in the same run.")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1], sys.argv[2]))
