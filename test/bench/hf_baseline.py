#!/usr/bin/env python3
"""The peer measured in the same run as our engine: transformers' generate (fp16) on the same model dir, with each
attention implementation asked for, plus the two ceilings (device-to-device copy bandwidth, cuBLAS bf16 matmul rate).
Prints one `HF_ROW {...}` line per measurement as it goes (a timed-out run keeps what it measured) and JSON on the
last line.

    python3 test/bench/hf_baseline.py MODEL_DIR [--batches 64,1,16] [--attn sdpa,eager] [--prompt 128] [--new 128]
        [--prefill 2048] [--reps 3] [--device-map]

--attn: transformers' `attn_implementation` values, measured on one loaded model (switched with
set_attn_implementation between runs). `sdpa` is what from_pretrained picks by default for Llama in transformers
5.x (torch's scaled_dot_product_attention); `eager` is the plain matmul-softmax-matmul attention. Earlier versions of
this script passed no attn_implementation, so their "transformers" numbers were sdpa.
The JSON's "decode" / "prefill" hold the first --attn value's results (what bench_table.py reads as the peer);
"by_attn" holds each one's.
"""
import argparse, json, statistics, time
import torch
from transformers import AutoModelForCausalLM

ap = argparse.ArgumentParser()
ap.add_argument("model")
ap.add_argument("--batches", default="64,1,16")
ap.add_argument("--attn", default="sdpa")
ap.add_argument("--prompt", type=int, default=128)
ap.add_argument("--new", type=int, default=128)
ap.add_argument("--prefill", type=int, default=2048)
ap.add_argument("--reps", type=int, default=3)
ap.add_argument("--device-map", action="store_true", help="load with device_map='cuda' (accelerate hooks) instead of .to(cuda)")
a = ap.parse_args()
dev = torch.device("cuda")
attns = [x for x in a.attn.split(",") if x]

def ev_time(fn, reps=10, warm=3):
    for _ in range(warm): fn()
    ts = []
    for _ in range(reps):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record(); fn(); e.record(); torch.cuda.synchronize(); ts.append(s.elapsed_time(e))
    return statistics.median(ts)

# ceilings
n = 1 << 30
src = torch.randn(n // 2, device=dev, dtype=torch.float16); dst = torch.empty_like(src)
ms = ev_time(lambda: dst.copy_(src))
copy_bw = 2 * n / (ms / 1e3)  # bytes read + written per second
del src, dst
A = torch.randn(8192, 8192, device=dev, dtype=torch.bfloat16); B = torch.randn(8192, 8192, device=dev, dtype=torch.bfloat16)
ms = ev_time(lambda: A @ B)
mm_flops = 2 * 8192**3 / (ms / 1e3)
del A, B
torch.cuda.empty_cache()
print(f"copy {copy_bw/1e9:.0f} GB/s, bf16 matmul {mm_flops/1e12:.0f} TFLOP/s", flush=True)

t0 = time.perf_counter()
# Plain .to(cuda) by default, as the runs before 484a6e3 did: device_map="cuda" is faster to load but may wrap the
# modules in accelerate's dispatch hooks, and the one run with it (f3237a7) measured sdpa 49 -> 75 ms per step.
if a.device_map:
    model = AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.float16, device_map="cuda").eval()
else:
    model = AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.float16).to(dev).eval()
default_attn = getattr(model.config, "_attn_implementation", None)
print(f"loaded {type(model).__name__} in {time.perf_counter() - t0:.1f} s; default attn_implementation: {default_attn}",
      flush=True)
vocab = model.config.vocab_size
res = {"copy_bw_GBs": copy_bw / 1e9, "bf16_mm_TFLOPs": mm_flops / 1e12, "decode": {}, "prefill": {},
       "attn": attns, "default_attn": default_attn, "by_attn": {x: {"decode": {}, "prefill": {}} for x in attns}}

def use_attn(impl):
    if hasattr(model, "set_attn_implementation"):
        model.set_attn_implementation(impl)
    else:  # older transformers: the attention modules read the config's field at each forward
        model.config._attn_implementation = impl
    got = getattr(model.config, "_attn_implementation", None)
    if got != impl:
        raise SystemExit(f"asked for attn_implementation={impl}, model reports {got}")

def row(kind, impl, key, r):
    res["by_attn"][impl][kind][key] = r
    if impl == attns[0]:
        res[kind][key] = r
    print("HF_ROW " + json.dumps({"kind": kind, "attn": impl, "key": key, **r}), flush=True)

torch.manual_seed(0)
with torch.no_grad():
    for b in [int(x) for x in a.batches.split(",") if x]:
        ids = torch.randint(3, vocab, (b, a.prompt), device=dev)
        def gen(new):
            torch.cuda.synchronize(); t = time.perf_counter()
            model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=new, min_new_tokens=new,
                           do_sample=False, pad_token_id=0)
            torch.cuda.synchronize(); return time.perf_counter() - t
        for impl in attns:
            use_attn(impl)
            gen(a.new)  # warm-up at full length (kernels, allocator growth, caches) before any timed run of this impl
            t_full = statistics.median(gen(a.new) for _ in range(a.reps))
            t_one = statistics.median(gen(1) for _ in range(a.reps))
            ms_step = (t_full - t_one) / (a.new - 1) * 1e3
            row("decode", impl, str(b), {"ms_per_step": ms_step, "tok_s": b * 1e3 / ms_step})
            print(f"transformers ({impl}) decode batch {b}: {ms_step:.2f} ms/step, {b*1e3/ms_step:.0f} tok/s", flush=True)
    if a.prefill > 0:
        ids = torch.randint(3, vocab, (1, a.prefill), device=dev)
        for impl in attns:
            use_attn(impl)
            ms = ev_time(lambda: model(ids), reps=5, warm=2)
            row("prefill", impl, str(a.prefill), {"ms": ms, "tok_s": a.prefill / (ms / 1e3)})
            print(f"transformers ({impl}) prefill {a.prefill}: {ms:.1f} ms, {a.prefill/(ms/1e3):.0f} tok/s", flush=True)
print(json.dumps(res))
