#!/usr/bin/env python3
"""Writes a Hugging Face model directory with random fp16 weights (default: Llama-2-7B's shape).

    python3 test/bench/make_random_model.py OUT_DIR [--layers 32] [--hidden 4096] [--inter 11008] [--heads 32]
        [--kv-heads 32] [--vocab 32000] [--awq-group 128] [--arch llama|qwen3] [--head-dim D]

Weights ~ N(0, 0.02) (norms 1), generated on the GPU when there is one, saved as sharded safetensors with an
index, exactly as `save_pretrained` lays them out. No tokenizer: benchmarks feed token ids.
--awq-group G: an AutoAWQ GEMM checkpoint instead (W4, group G, asymmetric): every decoder linear as qweight I32
[in, out/8] (random codes), qzeros I32 [in/G, out/8] (zero points 6..9) and scales F16 [in/G, out] (so the weights
are ~0.02 in size), packed in AutoAWQ's nibble order; quantization_config in config.json. Embeddings, norms and
lm_head stay fp16.
--arch qwen3: Qwen3ForCausalLM (per-head q_norm / k_norm, weights 1), with --head-dim (Qwen3-8B: --hidden 4096
--inter 12288 --layers 36 --heads 32 --kv-heads 8 --head-dim 128 --vocab 151936).
--arch qwen3_moe: Qwen3MoeForCausalLM, every layer sparse: --experts E experts of width --moe-inter, --experts-per-tok K
each (norm_topk_prob true), the router fp16 (Qwen3-30B-A3B: --hidden 2048 --layers 48 --heads 32 --kv-heads 4 --head-dim
128 --experts 128 --experts-per-tok 8 --moe-inter 768 --vocab 151936). Router rows ~ N(0, 0.02) like every weight, so
random tokens spread over the experts.
--arch gemma3: Gemma3ForCausalLM (GeGLU, four norms per layer and q / k norms, stored as w = 0 for Gemma's 1 + w,
tied embeddings; five sliding layers of --sliding-window to each global one). Gemma-3-4B: --hidden 2560 --inter 10240
--layers 34 --heads 8 --kv-heads 4 --head-dim 256 --vocab 262208.
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
ap.add_argument("--awq-group", type=int, default=0)
ap.add_argument("--arch", choices=["llama", "qwen3", "qwen3_moe", "gemma3"], default="llama")
ap.add_argument("--sliding-window", type=int, default=1024)
ap.add_argument("--experts", type=int, default=128)
ap.add_argument("--experts-per-tok", type=int, default=8)
ap.add_argument("--moe-inter", type=int, default=768)
ap.add_argument("--head-dim", type=int, default=0)
a = ap.parse_args()
os.makedirs(a.out, exist_ok=True)
dev = "cuda" if torch.cuda.is_available() else "cpu"
g = torch.Generator(device=dev).manual_seed(a.seed)
hd = a.head_dim or a.hidden // a.heads

def rnd(*shape):
    return (torch.randn(*shape, generator=g, device=dev, dtype=torch.float32) * 0.02).half().cpu()

def ones(n):  # a norm's weight: 1, or Gemma's w = 0 (applied as 1 + w)
    return torch.zeros(n, dtype=torch.float16) if a.arch == "gemma3" else torch.ones(n, dtype=torch.float16)

AWQ_ORDER = [0, 2, 4, 6, 1, 3, 5, 7]
def pack_awq(codes):  # int [rows, cols] -> int32 [rows, cols/8], nibble j = column 8c + AWQ_ORDER[j]
    r, c = codes.shape
    v = codes.to(torch.int64).view(r, c // 8, 8)[:, :, AWQ_ORDER]
    w = torch.zeros(r, c // 8, dtype=torch.int64, device=codes.device)
    for j in range(8):
        w |= v[:, :, j] << (4 * j)
    return torch.where(w >= 2**31, w - 2**32, w).to(torch.int32)

def awq_linear(name, out_f, in_f):
    G = a.awq_group
    q = torch.randint(0, 16, (in_f, out_f), generator=g, device=dev, dtype=torch.int32)
    z = torch.randint(6, 10, (in_f // G, out_f), generator=g, device=dev, dtype=torch.int32)
    s = (torch.rand(in_f // G, out_f, generator=g, device=dev) * 0.003 + 0.003).half()
    p = name[: -len(".weight")]
    put(p + ".qweight", pack_awq(q).cpu())
    put(p + ".qzeros", pack_awq(z).cpu())
    put(p + ".scales", s.cpu())

shards, cur, cur_bytes, weight_map = [], {}, 0, {}
def put(name, t):
    global cur, cur_bytes
    cur[name] = t.contiguous(); cur_bytes += t.numel() * t.element_size()
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
    if a.arch == "gemma3":
        put(p + "pre_feedforward_layernorm.weight", ones(a.hidden))
        put(p + "post_feedforward_layernorm.weight", ones(a.hidden))
    lin = awq_linear if a.awq_group else (lambda name, o, i: put(name, rnd(o, i)))
    lin(p + "self_attn.q_proj.weight", a.heads * hd, a.hidden)
    lin(p + "self_attn.k_proj.weight", a.kv_heads * hd, a.hidden)
    lin(p + "self_attn.v_proj.weight", a.kv_heads * hd, a.hidden)
    lin(p + "self_attn.o_proj.weight", a.hidden, a.heads * hd)
    if a.arch in ("qwen3", "qwen3_moe", "gemma3"):
        put(p + "self_attn.q_norm.weight", ones(hd))
        put(p + "self_attn.k_norm.weight", ones(hd))
    if a.arch == "qwen3_moe":
        put(p + "mlp.gate.weight", rnd(a.experts, a.hidden))
        for e in range(a.experts):
            lin(p + f"mlp.experts.{e}.gate_proj.weight", a.moe_inter, a.hidden)
            lin(p + f"mlp.experts.{e}.up_proj.weight", a.moe_inter, a.hidden)
            lin(p + f"mlp.experts.{e}.down_proj.weight", a.hidden, a.moe_inter)
        continue
    lin(p + "mlp.gate_proj.weight", a.inter, a.hidden)
    lin(p + "mlp.up_proj.weight", a.inter, a.hidden)
    lin(p + "mlp.down_proj.weight", a.hidden, a.inter)
put("model.norm.weight", ones(a.hidden))
if a.arch != "gemma3":  # (Gemma ties lm_head to the embedding)
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
extra = {"quantization_config": {"quant_method": "awq", "bits": 4, "group_size": a.awq_group, "zero_point": True,
                                 "version": "gemm"}} if a.awq_group else {}
json.dump({**extra, 
    "architectures": [{"qwen3": "Qwen3ForCausalLM", "qwen3_moe": "Qwen3MoeForCausalLM"}.get(a.arch, "LlamaForCausalLM")],
    "model_type": a.arch, "hidden_size": a.hidden,
    "head_dim": hd, **({"attention_bias": False, "use_sliding_window": False} if a.arch != "llama" else {}),
    **({"num_experts": a.experts, "num_experts_per_tok": a.experts_per_tok, "moe_intermediate_size": a.moe_inter,
        "norm_topk_prob": True, "decoder_sparse_step": 1, "mlp_only_layers": []} if a.arch == "qwen3_moe" else {}),
    "intermediate_size": a.inter, "num_hidden_layers": a.layers, "num_attention_heads": a.heads,
    "num_key_value_heads": a.kv_heads, "vocab_size": a.vocab, "max_position_embeddings": 4096,
    "rms_norm_eps": 1e-5, "rope_theta": 1000000.0 if a.arch != "llama" else 10000.0, "hidden_act": "silu", "tie_word_embeddings": False,
    "torch_dtype": "float16", "bos_token_id": 1, "eos_token_id": 2,
    **({"architectures": ["Gemma3ForCausalLM"], "model_type": "gemma3_text", "hidden_act": None,
        "hidden_activation": "gelu_pytorch_tanh", "tie_word_embeddings": True, "query_pre_attn_scalar": hd,
        "sliding_window": a.sliding_window, "rope_local_base_freq": 10000.0, "rope_scaling": None,
        "layer_types": ["full_attention" if (i + 1) % 6 == 0 else "sliding_attention" for i in range(a.layers)],
        "final_logit_softcapping": None, "attn_logit_softcapping": None, "max_position_embeddings": 32768}
       if a.arch == "gemma3" else {}),
}, open(os.path.join(a.out, "config.json"), "w"), indent=1)
print(f"wrote {a.out}: {n} shards, {total/2**30:.2f} GiB")
