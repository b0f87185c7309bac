#pragma once
#include <cuda_fp16.h>
#include <cuda_runtime.h>

namespace lmfleet {

// Rotary embedding (rotate_half layout: dims i and i + rot/2 form a pair) applied in place to the q and k heads
// of a fused qkv buffer [ntok, (nh + 2*nkv) * hd] with row stride ld (q heads, then k heads, then v heads).
// Angle = float(positions[t]) * inv_freq[i] (f32, like HF), cos/sin in f32; dims >= rot_dim are left as is.
// When k_cache is not null, the rotated k and the v of every token are also stored in the paged KV cache:
// token t goes to slot slots[t] (= block * block_size + offset), cache layout [num_blocks, block_size, nkv, hd].
// inv_freq_stride: 0 = one table for all tokens; rot_dim/2 = one table per token (dynamic NTK per sequence).
// Tokens with slots[t] < 0 are not stored.
// KV quantization (ops/kv_quant.h, the CPU kv_store's math): quant_policy 8 / 4 stores int8 / int4 rows (k_cache /
// v_cache are then byte buffers [slots, nkv, hd * bits / 8]) and the (scale, zero) of each row in k_param / v_param
// [slots, nkv, 2] f32: online from the row's min/max, or the calibrated k_static / v_static [nkv, 2] when not null.
struct KvQuantArgs {
  int policy = 0;
  float* k_param = nullptr;
  float* v_param = nullptr;
  const float* k_static = nullptr;
  const float* v_static = nullptr;
};
// Qwen3's q_norm / k_norm: when q_w is set, every q head (weight q_w [hd]) and k head (k_w [hd]) is first RMS-normed
// over its hd values (f32 sum of squares; x * rsqrt(mean + eps) rounded to f16, times the weight, rounded again, as
// transformers does in f16), then rotated; the normed tail past rot_dim is written back too.
struct QkNormArgs {
  const half* q_w = nullptr;
  const half* k_w = nullptr;
  float eps = 1e-6f;
};
void rope_kv_store_cuda(half* qkv, int ld, const int* positions, const float* inv_freq, int inv_freq_stride, int rot_dim, int ntok,
                        int nh, int nkv, int hd, half* k_cache, half* v_cache, const int* slots, int block_size,
                        cudaStream_t s, const KvQuantArgs& quant = KvQuantArgs(), const QkNormArgs& qk = QkNormArgs(),
                        float cs_scale = 1.f);  // cos and sin times cs_scale (ops/rope.h rope_cs_scale)

}  // namespace lmfleet
