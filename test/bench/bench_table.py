#!/usr/bin/env python3
"""Joins our results (engine-bench.js's ADDON_JSON line, the addon engine; and/or engine_bench.cu's ENGINE_JSON
line, the C++ step loop) and hf_baseline.py's JSON (last line; or its HF_ROW lines when it was cut short) into one
markdown table, with one peer column group per attention implementation hf_baseline measured.

    python3 test/bench/bench_table.py ENGINE_LOG HF_LOG [--card NAME] [--commit SHA] [--alt ENGINE_LOG2 --alt-label TEXT]

--alt: a second addon run of the same benchmark (e.g. LMFLEET_GEMM_TUNE=0) shown as extra columns.
"""
import argparse, json

ap = argparse.ArgumentParser()
ap.add_argument("engine_log")
ap.add_argument("hf_log")
ap.add_argument("--card", default="")
ap.add_argument("--commit", default="")
ap.add_argument("--alt", default="")
ap.add_argument("--alt-label", default="alt")
a = ap.parse_args()
eng = None
addon = None
for line in open(a.engine_log):
    if line.startswith("ENGINE_JSON "):
        eng = json.loads(line[len("ENGINE_JSON "):])
    if line.startswith("ADDON_JSON "):
        addon = json.loads(line[len("ADDON_JSON "):])
hf = None
rows = []
for line in open(a.hf_log):
    line = line.strip()
    if line.startswith("HF_ROW "):
        rows.append(json.loads(line[len("HF_ROW "):]))
    if line.startswith("{"):
        try:
            hf = json.loads(line)
        except ValueError:
            pass
if hf is None and rows:  # cut short: rebuild what it measured from its rows (no ceilings)
    attns = []
    for r in rows:
        if r["attn"] not in attns:
            attns.append(r["attn"])
    hf = {"copy_bw_GBs": None, "decode": {}, "prefill": {}, "attn": attns, "by_attn": {x: {"decode": {}, "prefill": {}} for x in attns}}
    for r in rows:
        v = {k: r[k] for k in r if k not in ("kind", "attn", "key")}
        hf["by_attn"][r["attn"]][r["kind"]][r["key"]] = v
        if r["attn"] == attns[0]:
            hf[r["kind"]][r["key"]] = v
    for line in open(a.hf_log):
        if line.startswith("copy ") and " GB/s" in line:
            hf["copy_bw_GBs"] = float(line.split()[1])
alt = None
if a.alt:
    for line in open(a.alt):
        if line.startswith("ADDON_JSON "):
            alt = json.loads(line[len("ADDON_JSON "):])
elif addon is not None and addon.get("ab"):  # engine-bench --ab: the variant's runs, alternating with the default's in one process
    alt = addon["ab"]
    if a.alt_label == "alt":
        a.alt_label = " ".join(f"{k}={v}" for k, v in alt["env"].items())
peers = (hf.get("by_attn") or {"transformers": {"decode": hf["decode"], "prefill": hf["prefill"]}}) if hf else {}
if eng is None and addon is None:
    raise SystemExit("no ENGINE_JSON / ADDON_JSON line in " + a.engine_log)
if addon is not None:
    # the addon engine: scheduler + batch thread + CudaDecoder; limits from the copy bandwidth hf_baseline measured
    bw = hf["copy_bw_GBs"] if hf else None
    print(f"card: {a.card}  commit: {a.commit}")
    print()
    if bw:
        print(f"limits: {addon['step_bytes']/1e9:.2f} GB of weights + KV per step over {bw:.0f} GB/s (copy, measured in transformers' run)")
    head = "| addon engine, 128-token prompts, 128 new | ms/step | tok/s | bandwidth limit ms | % of limit | first token ms |"
    sep = "|---|---|---|---|---|---|"
    if alt:
        head += f" {a.alt_label} ms/step |"
        sep += "---|"
    for name in peers:
        head += f" transformers {name} ms/step | transformers {name} tok/s | ours / {name} |"
        sep += "---|---|---|"
    print(head)
    print(sep)
    for b, r in addon["decode"].items():
        lim = (addon["step_bytes"] + r.get("kv_bytes", 0)) / (bw * 1e9) * 1e3 if bw else float("nan")
        line = f"| batch {b} | {r['ms_per_step']:.2f} | {r['tok_s']:.0f} | {lim:.2f} | {100*lim/r['ms_per_step']:.0f}% | {r['ttft_ms']:.1f} |"
        if alt:
            ar = alt["decode"].get(str(b))
            line += f" {ar['ms_per_step']:.2f} |" if ar else " - |"
        for name, pr in peers.items():
            h = pr["decode"].get(str(b))
            line += f" {h['ms_per_step']:.2f} | {h['tok_s']:.0f} | {h['ms_per_step']/r['ms_per_step']:.2f}x |" if h else " - | - | - |"
        print(line)
    for n, r in addon.get("prefill", {}).items():
        print(f"\n| addon engine prefill {n} tokens | ours |" + "".join(f" transformers {x} | ours / {x} |" for x in peers))
        print("|---|---|" + "---|---|" * len(peers))
        line = f"| 1 sequence | {r['ms']:.1f} ms, {r['tok_s']:.0f} tok/s |"
        for name, pr in peers.items():
            h = pr["prefill"].get(str(n))
            line += f" {h['ms']:.1f} ms, {h['tok_s']:.0f} tok/s | {r['tok_s']/h['tok_s']:.2f}x |" if h else " - | - |"
        print(line)
    print()
    if eng is None:
        raise SystemExit(0)
    print("C++ step loop (src/cuda/engine_bench.cu, same run):")
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
