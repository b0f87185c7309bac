#pragma once
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

namespace lmfleet {

// A W4A16 weight on the device, in the layout of ops/w4a16_gemm.h.
struct W4A16Dev {
  const uint32_t* qweight = nullptr;  // [n/8][kp/128][32][4]
  const half2* sz = nullptr;          // [kp/group][n] (scale, zero)
  const half* bias = nullptr;         // [n] or null
  int n = 0, k = 0, kp = 0, group = 0;
};

// Fused path (any m; meant for m up to a few hundred): 4 warps per block, block tile (16 * MI rows) x 128 columns,
// x tiles by cp.async into swizzled shared memory (ldmatrix), the weight streamed from global memory straight
// into registers (16 bytes per lane per 8 x 128 tile), dequantized there into mma.sync.m16n8k16 B fragments;
// k split over blocks when the (n, m) grid alone would not fill the GPU: each split writes partial sums and the last
// block of a tile to arrive (a counter per tile) adds them up in split order (deterministic, one launch).
// `ws`: w4a16_fused_workspace_bytes(m, n, k, sms) bytes (0 when no split is needed), ZEROED once when allocated (the
// kernel leaves its counters at zero again).
size_t w4a16_fused_workspace_bytes(int m, int n, int k, int sms);
// ldx % 8 == 0 and x 16-byte aligned.
void w4a16_gemm_fused_cuda(const half* x, int ldx, const W4A16Dev& w, half* y, int ldy, int m, float* ws, int sms,
                           cudaStream_t s);
void w4a16_gemm_fused_f32out_cuda(const half* x, int ldx, const W4A16Dev& w, float* y, int ldy, int m, float* ws,
                                  int sms, cudaStream_t s);
// The whole weight dequantized to f16 [n, k] row-major (for large m: then a dense GEMM).
void w4a16_dequant_cuda(const W4A16Dev& w, half* out, cudaStream_t s);

}  // namespace lmfleet
