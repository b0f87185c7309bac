#!/usr/bin/env python3
"""The peer measured in the same run as our engine: transformers' generate (eager, fp16) on the same model dir,
plus the two ceilings (device-to-device copy bandwidth, cuBLAS bf16 matmul rate). Prints JSON on the last line.

    python3 test/bench/hf_baseline.py MODEL_DIR [--batches 1,16,64] [--prompt 128] [--new 128] [--prefill 2048]
"""
import argparse, json, statistics, time
import torch
from transformers import AutoModelForCausalLM

ap = argparse.ArgumentParser()
ap.add_argument("model")
ap.add_argument("--batches", default="1,16,64")
ap.add_argument("--prompt", type=int, default=128)
ap.add_argument("--new", type=int, default=128)
ap.add_argument("--prefill", type=int, default=2048)
ap.add_argument("--reps", type=int, default=3)
a = ap.parse_args()
dev = torch.device("cuda")

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

model = AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.float16).to(dev).eval()
vocab = model.config.vocab_size
res = {"copy_bw_GBs": copy_bw / 1e9, "bf16_mm_TFLOPs": mm_flops / 1e12, "decode": {}, "prefill": {}}
torch.manual_seed(0)
with torch.no_grad():
    for b in [int(x) for x in a.batches.split(",")]:
        ids = torch.randint(3, vocab, (b, a.prompt), device=dev)
        def gen(new):
            torch.cuda.synchronize(); t = time.perf_counter()
            model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=new, min_new_tokens=new,
                           do_sample=False, pad_token_id=0)
            torch.cuda.synchronize(); return time.perf_counter() - t
        gen(4)
        t_full = statistics.median(gen(a.new) for _ in range(a.reps))
        t_one = statistics.median(gen(1) for _ in range(a.reps))
        ms_step = (t_full - t_one) / (a.new - 1) * 1e3
        res["decode"][b] = {"ms_per_step": ms_step, "tok_s": b * 1e3 / ms_step}
        print(f"transformers decode batch {b}: {ms_step:.2f} ms/step, {b*1e3/ms_step:.0f} tok/s", flush=True)
    ids = torch.randint(3, vocab, (1, a.prefill), device=dev)
    ms = ev_time(lambda: model(ids), reps=5, warm=2)
    res["prefill"][a.prefill] = {"ms": ms, "tok_s": a.prefill / (ms / 1e3)}
    print(f"transformers prefill {a.prefill}: {ms:.1f} ms, {a.prefill/(ms/1e3):.0f} tok/s", flush=True)
print(json.dumps(res))
