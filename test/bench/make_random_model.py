#!/usr/bin/env python3
"""Writes a Hugging Face model directory with random fp16 weights (default: Llama-2-7B's shape).

    python3 test/bench/make_random_model.py OUT_DIR [--layers 32] [--hidden 4096] [--inter 11008] [--heads 32]
        [--kv-heads 32] [--vocab 32000]

Weights ~ N(0, 0.02) (norms 1), generated on the GPU when there is one, saved as sharded safetensors with an
index, exactly as `save_pretrained` lays them out. No tokenizer: benchmarks feed token ids.
"""
import argparse, json, os
import torch
from safetensors.torch import save_file

ap = argparse.ArgumentParser()
ap.add_argument("out")
ap.add_argument("--layers", type=int, default=32)
ap.add_argument("--hidden", type=int, default=4096)
ap.add_argument("--inter", type=int, default=11008)
ap.add_argument("--heads", type=int, default=32)
ap.add_argument("--kv-heads", type=int, default=32)
ap.add_argument("--vocab", type=int, default=32000)
ap.add_argument("--seed", type=int, default=0)
a = ap.parse_args()
os.makedirs(a.out, exist_ok=True)
dev = "cuda" if torch.cuda.is_available() else "cpu"
g = torch.Generator(device=dev).manual_seed(a.seed)
hd = a.hidden // a.heads

def rnd(*shape):
    return (torch.randn(*shape, generator=g, device=dev, dtype=torch.float32) * 0.02).half().cpu()

def ones(n):
    return torch.ones(n, dtype=torch.float16)

shards, cur, cur_bytes, weight_map = [], {}, 0, {}
def put(name, t):
    global cur, cur_bytes
    cur[name] = t.contiguous(); cur_bytes += t.numel() * 2
    if cur_bytes > 4 * 2**30:
        flush()
def flush():
    global cur, cur_bytes
    if cur:
        shards.append(cur); cur, cur_bytes = {}, 0
        fname = f"model-{len(shards):05d}.safetensors"
        for k in shards[-1]: weight_map[k] = fname
        save_file(shards[-1], os.path.join(a.out, fname), metadata={"format": "pt"})
        shards[-1] = None

put("model.embed_tokens.weight", rnd(a.vocab, a.hidden))
for i in range(a.layers):
    p = f"model.layers.{i}."
    put(p + "input_layernorm.weight", ones(a.hidden))
    put(p + "post_attention_layernorm.weight", ones(a.hidden))
    put(p + "self_attn.q_proj.weight", rnd(a.heads * hd, a.hidden))
    put(p + "self_attn.k_proj.weight", rnd(a.kv_heads * hd, a.hidden))
    put(p + "self_attn.v_proj.weight", rnd(a.kv_heads * hd, a.hidden))
    put(p + "self_attn.o_proj.weight", rnd(a.hidden, a.heads * hd))
    put(p + "mlp.gate_proj.weight", rnd(a.inter, a.hidden))
    put(p + "mlp.up_proj.weight", rnd(a.inter, a.hidden))
    put(p + "mlp.down_proj.weight", rnd(a.hidden, a.inter))
put("model.norm.weight", ones(a.hidden))
put("lm_head.weight", rnd(a.vocab, a.hidden))
flush()
# rename to the -of-N form transformers writes
n = len(shards); final = {}
for k, f in weight_map.items():
    idx = int(f.split("-")[1].split(".")[0]); nf = f"model-{idx:05d}-of-{n:05d}.safetensors"
    final[k] = nf
for idx in range(1, n + 1):
    os.rename(os.path.join(a.out, f"model-{idx:05d}.safetensors"), os.path.join(a.out, f"model-{idx:05d}-of-{n:05d}.safetensors"))
total = sum(os.path.getsize(os.path.join(a.out, f)) for f in set(final.values()))
json.dump({"metadata": {"total_size": total}, "weight_map": final}, open(os.path.join(a.out, "model.safetensors.index.json"), "w"), indent=1)
json.dump({
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": a.hidden,
    "intermediate_size": a.inter, "num_hidden_layers": a.layers, "num_attention_heads": a.heads,
    "num_key_value_heads": a.kv_heads, "vocab_size": a.vocab, "max_position_embeddings": 4096,
    "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "hidden_act": "silu", "tie_word_embeddings": False,
    "torch_dtype": "float16", "bos_token_id": 1, "eos_token_id": 2,
}, open(os.path.join(a.out, "config.json"), "w"), indent=1)
print(f"wrote {a.out}: {n} shards, {total/2**30:.2f} GiB")
