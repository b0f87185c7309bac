#!/usr/bin/env python3
"""Joins engine_bench's ENGINE_JSON line and hf_baseline.py's JSON (last line) into one markdown table.

    python3 test/bench/bench_table.py ENGINE_LOG HF_LOG [--card NAME] [--commit SHA]
"""
import argparse, json

ap = argparse.ArgumentParser()
ap.add_argument("engine_log")
ap.add_argument("hf_log")
ap.add_argument("--card", default="")
ap.add_argument("--commit", default="")
a = ap.parse_args()
eng = None
for line in open(a.engine_log):
    if line.startswith("ENGINE_JSON "):
        eng = json.loads(line[len("ENGINE_JSON "):])
hf = None
for line in open(a.hf_log):
    line = line.strip()
    if line.startswith("{"):
        try:
            hf = json.loads(line)
        except ValueError:
            pass
if eng is None:
    raise SystemExit("no ENGINE_JSON line in " + a.engine_log)
print(f"card: {a.card}  commit: {a.commit}")
print(f"copy bandwidth (ours, same run) {eng['copy_bw_GBs']:.0f} GB/s; decode step reads {eng['step_bytes']/1e9:.2f} GB of weights"
      + (f"; transformers' run: copy {hf['copy_bw_GBs']:.0f} GB/s, bf16 matmul {hf['bf16_mm_TFLOPs']:.0f} TFLOP/s" if hf else ""))
print()
print("| decode, 128-token prompts, 128 new | ours ms/step | ours tok/s | bandwidth limit ms | % of limit | transformers ms/step | transformers tok/s | ours / transformers |")
print("|---|---|---|---|---|---|---|---|")
for b, r in eng["decode"].items():
    h = hf["decode"].get(str(b)) if hf else None
    hs = f"{h['ms_per_step']:.2f} | {h['tok_s']:.0f} | {h['ms_per_step']/r['ms_per_step']:.1f}x" if h else "- | - | -"
    print(f"| batch {b} | {r['ms_per_step']:.2f} | {r['tok_s']:.0f} | {r['limit_ms']:.2f} | {100*r['limit_ms']/r['ms_per_step']:.0f}% | {hs} |")
for n, r in eng.get("prefill", {}).items():
    flops = 2 * eng["step_bytes"] / 2 * int(n)  # 2 flops per weight per token (linears only)
    h = hf["prefill"].get(str(n)) if hf else None
    rate = flops / (r["ms"] * 1e-3) / 1e12
    extra = f" ({100*rate/hf['bf16_mm_TFLOPs']:.0f}% of the bf16 matmul rate)" if hf else ""
    hs = f"{h['ms']:.1f} ms, {h['tok_s']:.0f} tok/s | {r['tok_s']/h['tok_s']:.2f}x" if h else "- | -"
    print(f"\n| prefill {n} tokens | ours | transformers | ours / transformers |\n|---|---|---|---|\n"
          f"| 1 sequence | {r['ms']:.1f} ms, {r['tok_s']:.0f} tok/s, linears at {rate:.0f} TFLOP/s{extra} | {hs} |")
