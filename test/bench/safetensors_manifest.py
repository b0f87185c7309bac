#!/usr/bin/env python3
"""Writes the tensor manifest that src/cuda/engine_bench.cu loads: the model's config and, for every tensor,
its canonical name (the native surface's names, see libs/native/src/types.ts), dtype, shape, file and byte
offset, read from the safetensors headers (what libs/engine does in TypeScript).

    python3 test/bench/safetensors_manifest.py MODEL_DIR > manifest.txt
"""
import json, os, re, struct, sys

d = sys.argv[1]
cfg = json.load(open(os.path.join(d, "config.json")))
heads = cfg["num_attention_heads"]
hd = cfg.get("head_dim") or cfg["hidden_size"] // heads
print("config", cfg["vocab_size"], cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"], heads,
      cfg.get("num_key_value_heads", heads), hd, cfg.get("rms_norm_eps", 1e-6), cfg.get("rope_theta", 10000.0),
      int(bool(cfg.get("tie_word_embeddings", False))), cfg.get("max_position_embeddings", 2048))
names = {
    r"model\.embed_tokens\.weight": "embed_tokens.weight",
    r"lm_head\.weight": "lm_head.weight",
    r"model\.norm\.weight": "norm.weight",
    r"model\.layers\.(\d+)\.input_layernorm\.weight": r"layers.\1.input_norm.weight",
    r"model\.layers\.(\d+)\.post_attention_layernorm\.weight": r"layers.\1.post_norm.weight",
    r"model\.layers\.(\d+)\.self_attn\.(q|k|v|o)_proj\.(weight|bias)": r"layers.\1.\2.\3",
    r"model\.layers\.(\d+)\.mlp\.(gate|up|down)_proj\.weight": r"layers.\1.\2.weight",
}
dtypes = {"F16": "f16", "BF16": "bf16", "F32": "f32"}
files = sorted(f for f in os.listdir(d) if f.endswith(".safetensors"))
for f in files:
    path = os.path.join(d, f)
    with open(path, "rb") as fh:
        n = struct.unpack("<Q", fh.read(8))[0]
        hdr = json.loads(fh.read(n))
    for k, v in hdr.items():
        if k == "__metadata__":
            continue
        canon = None
        for pat, rep in names.items():
            if re.fullmatch(pat, k):
                canon = re.sub(pat, rep, k)
                break
        if canon is None:
            continue
        print("tensor", canon, dtypes[v["dtype"]], len(v["shape"]), *v["shape"], path, 8 + n + v["data_offsets"][0])
