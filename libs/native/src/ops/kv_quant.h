// KV-cache quantization (LMDeploy's quant_policy): the math shared by the CPU reference (kv_store.cpu.cc,
// attention.cpu.cc) and the CUDA kernels (rope.cu, attention.cu), so both backends store and read the same bytes.
//
// quant_policy 0: float cache (f32 on cpu, f16 on cuda). 8: int8, 4: int4 (two values per byte, element d in byte
// d/2, low nibble for even d). Asymmetric, per (token, kv head): every stored K or V row of head_dim values keeps a
// (scale, zero) pair, x ~= q * scale + zero, q in [0, 2^bits - 1].
//   online (LMDeploy's default): zero = min(row), scale = (max(row) - min(row)) / (2^bits - 1), computed when the
//     row is stored;
//   calibrated (LMDeploy's kv_qparams idea): one fixed (scale, zero) per layer and kv head from `calibrate`'s K/V
//     min/max (zero = min, scale = (max - min) / (2^bits - 1)); values outside the range clamp. The pair is still
//     written per row, so attention reads one format whichever mode wrote it.
//
// Cache memory per layer, K and V alike: data [num_slots, kv_heads, head_dim * bits / 8] bytes, params
// [num_slots, kv_heads, 2] f32 (slot = block * block_size + offset).
#pragma once
#include <cstdint>

#ifdef __CUDACC__
#define LMF_HD __host__ __device__ __forceinline__
#else
#define LMF_HD inline
#endif

namespace lmfleet {

LMF_HD bool kv_quant_policy_valid(int policy) { return policy == 0 || policy == 4 || policy == 8; }
LMF_HD int kv_quant_qmax(int policy) { return policy == 8 ? 255 : 15; }
// bytes of one stored row of `n` values
LMF_HD int64_t kv_quant_row_bytes(int policy, int64_t n) { return policy == 8 ? n : n / 2; }

// (scale, zero) from a row's range
LMF_HD void kv_quant_params(float mn, float mx, int policy, float* scale, float* zero) {
  *scale = (mx - mn) / (float)kv_quant_qmax(policy);
  *zero = mn;
}

LMF_HD int kv_quant_one(float x, float inv_scale, float zero, int qmax) {
  float q = (x - zero) * inv_scale + 0.5f;
  q = q < 0.f ? 0.f : (q > (float)qmax ? (float)qmax : q);
  return (int)q;  // floor of a non-negative value: round half up
}

LMF_HD float kv_quant_inv_scale(float scale) { return scale > 0.f ? 1.f / scale : 0.f; }

LMF_HD float kv_dequant_one(int q, float scale, float zero) { return (float)q * scale + zero; }

}  // namespace lmfleet

#undef LMF_HD
