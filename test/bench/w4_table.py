#!/usr/bin/env python3
"""fp16 vs W4A16 through the addon engine on the same 7B-shaped random model (two engine-bench.js logs of one run),
with the copy bandwidth measured here (torch, device-to-device, counted read + write as everywhere in this repo).

    python3 test/bench/w4_table.py FP16_LOG W4_LOG [--card NAME] [--commit SHA]

Limit of a decode step = (weights read per step + KV cache read) / copy bandwidth: for W4A16 the weights are the
4-bit codes + (scale, zero) pairs of every decoder linear and the f16 lm_head; for fp16 every f16 linear.
"""
import argparse, json
import torch

ap = argparse.ArgumentParser()
ap.add_argument("fp16_log")
ap.add_argument("w4_log")
ap.add_argument("--card", default="")
ap.add_argument("--commit", default="")
a = ap.parse_args()

def addon_json(path):
    for line in open(path):
        if line.startswith("ADDON_JSON "):
            return json.loads(line[len("ADDON_JSON "):])
    raise SystemExit("no ADDON_JSON line in " + path)

f16, w4 = addon_json(a.fp16_log), addon_json(a.w4_log)
n = 1 << 30
src = torch.empty(n, dtype=torch.uint8, device="cuda")
dst = torch.empty_like(src)
for _ in range(3):
    dst.copy_(src)
times = []
for _ in range(20):
    s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    s.record(); dst.copy_(src); e.record(); torch.cuda.synchronize()
    times.append(s.elapsed_time(e))
times.sort()
bw = 2 * n / (times[len(times) // 2] * 1e-3) / 1e9  # GB/s, read + write

print(f"card: {a.card}  commit: {a.commit}  copy bandwidth {bw:.0f} GB/s (read+write)")
print(f"weights read per step: fp16 {f16['step_bytes']/1e9:.2f} GB, W4A16 g{(w4.get('quant') or {}).get('groupSize')} {w4['step_bytes']/1e9:.2f} GB")
print()
print("| 7B-shaped, random weights, 128-token prompts, 128 new | fp16 ms/step | W4A16 ms/step | W4A16 speedup | W4A16 limit ms | W4A16 % of 4-bit limit | fp16 % of its limit | W4A16 tok/s |")
print("|---|---|---|---|---|---|---|---|")
for b in sorted(f16["decode"], key=int):
    if b not in w4["decode"]:
        continue
    d16, d4 = f16["decode"][b], w4["decode"][b]
    lim4 = (w4["step_bytes"] + d4["kv_bytes"]) / (bw * 1e9) * 1e3
    lim16 = (f16["step_bytes"] + d16["kv_bytes"]) / (bw * 1e9) * 1e3
    print(f"| decode batch {b} | {d16['ms_per_step']:.3f} | {d4['ms_per_step']:.3f} | {d16['ms_per_step']/d4['ms_per_step']:.2f}x | "
          f"{lim4:.3f} | {100*lim4/d4['ms_per_step']:.0f}% | {100*lim16/d16['ms_per_step']:.0f}% | {d4['tok_s']:.0f} |")
for p in sorted(f16["prefill"], key=int):
    if p not in w4["prefill"]:
        continue
    p16, p4 = f16["prefill"][p], w4["prefill"][p]
    print(f"| prefill {p} | {p16['ms']:.1f} ms | {p4['ms']:.1f} ms | W4A16 throughput {100*p4['tok_s']/p16['tok_s']:.0f}% of fp16 | | | | {p4['tok_s']:.0f} tok/s |")
