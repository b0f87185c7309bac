#pragma once
// Device-side: one row of (residual add +) rms_norm by one block, shared by the rms_norm kernels (ops/rms_norm.cu) and
// the W4A16 GEMV's fused epilogue (ops/w4a16_gemm.cu), so that both give the same bits for the same block size.
#include <cuda_fp16.h>

#include "cuda/device_utils.cuh"

namespace lmfleet {

// Each thread keeps up to VPT half8 vectors of the row in registers (one read of the row); blockDim.x threads, with
// cols / 8 <= VPT * blockDim.x and cols % 8 == 0. ADD: residual_row = half(residual_row + x_row) first, and the norm is
// of that. COHERENT: x_row was written by other blocks of the running kernel, so it is read through L2 (ld.cg), not the
// read-only path. scratch: 32 floats of shared memory. x_row and y_row may alias when !ADD.
template <int VPT, bool ADD, bool COHERENT = false>
__device__ __forceinline__ void rms_norm_row(half* residual_row, const half* x_row, const half* __restrict__ w,
                                             half* y_row, int cols, float eps, float* scratch) {
  const int nvec = cols / 8;
  float v[VPT][8];
  float ss = 0.f;
#pragma unroll
  for (int j = 0; j < VPT; j++) {
    const int i = threadIdx.x + j * blockDim.x;
    if (i < nvec) {
      half8 a;
      if (COHERENT) {
        const uint4 u = __ldcg(reinterpret_cast<const uint4*>(x_row + i * 8));
        a = *reinterpret_cast<const half8*>(&u);
      } else {
        a = ldg_half8(x_row + i * 8);
      }
      if (ADD) {
        half8 r = *reinterpret_cast<const half8*>(residual_row + i * 8);
#pragma unroll
        for (int q = 0; q < 4; q++) r.h[q] = __hadd2(r.h[q], a.h[q]);  // rounded to half, as the model does
        *reinterpret_cast<half8*>(residual_row + i * 8) = r;
        half8_to_float(r, v[j]);
      } else {
        half8_to_float(a, v[j]);
      }
#pragma unroll
      for (int q = 0; q < 8; q++) ss += v[j][q] * v[j][q];
    }
  }
  ss = block_sum(ss, scratch);
  const float r = rsqrtf(ss / cols + eps);
#pragma unroll
  for (int j = 0; j < VPT; j++) {
    const int i = threadIdx.x + j * blockDim.x;
    if (i < nvec) {
      float wf[8], o[8];
      half8_to_float(ldg_half8(w + i * 8), wf);
#pragma unroll
      for (int q = 0; q < 8; q++) o[q] = v[j][q] * r * wf[q];
      *reinterpret_cast<half8*>(y_row + i * 8) = float_to_half8(o);
    }
  }
}

}  // namespace lmfleet
