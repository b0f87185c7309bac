#include "cuda/check.cuh"
#include "ops/awq_fake_quant.cuh"
#include "ops/awq_fake_quant.h"

namespace lmfleet {

__device__ __forceinline__ float awq_load(const float* p) { return __ldg(p); }
__device__ __forceinline__ float awq_load(const half* p) { return __half2float(p[0]); }

// One warp per (row, group); lane l holds elements l, l + 32, ... of the group (coalesced along the row).
// Division and multiplication are written with the _rn intrinsics so no fast-math flag can change them.
template <typename T, int PER_LANE>
__global__ void awq_fake_quant_kernel(const T* __restrict__ w, const float* __restrict__ scale,
                                      const float* __restrict__ clip, float* __restrict__ out, uint8_t* __restrict__ codes,
                                      uint8_t* __restrict__ zeros, float* __restrict__ scales, int64_t rows, int64_t cols,
                                      int qmax) {
  constexpr int G = PER_LANE * 32;
  const int64_t groups = cols / G;
  const int64_t wid = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
  const int lane = threadIdx.x & 31;
  if (wid >= rows * groups) return;
  const int64_t r = wid / groups, g = wid - r * groups;
  const int64_t base = r * cols + g * G;
  const float c = clip ? clip[wid] : INFINITY;
  float v[PER_LANE], mn = INFINITY, mx = -INFINITY;
#pragma unroll
  for (int j = 0; j < PER_LANE; j++) {
    const int k = lane + 32 * j;
    float x = awq_load(w + base + k);
    if (scale) x = __fmul_rn(x, scale[g * G + k]);
    v[j] = awq_clamp(x, c);
    mn = fminf(mn, v[j]);
    mx = fmaxf(mx, v[j]);
  }
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    mn = fminf(mn, __shfl_xor_sync(0xffffffffu, mn, o));
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
  }
  float s;
  int z;
  awq_group_params(mn, mx, qmax, &s, &z);
  if (codes && lane == 0) {
    zeros[wid] = (uint8_t)z;
    scales[wid] = s;
  }
#pragma unroll
  for (int j = 0; j < PER_LANE; j++) {
    const int k = lane + 32 * j;
    const double q = awq_js_round(__ddiv_rn((double)v[j], (double)s)) + z;
    const int qi = (int)(q < 0 ? 0 : (q > qmax ? qmax : q));
    if (codes) codes[base + k] = (uint8_t)qi;
    const float d = __fmul_rn((float)(qi - z), s);
    out[base + k] = scale ? __fdiv_rn(d, scale[g * G + k]) : d;
  }
}

template <typename T>
static void launch(const T* w, const float* scale, const float* clip, float* out, uint8_t* codes, uint8_t* zeros,
                   float* scales, int64_t rows, int64_t cols, int bits, int group, cudaStream_t s) {
  const int64_t warps = rows * (cols / group);
  if (warps <= 0) return;
  const int threads = 256;
  const int64_t blocks = (warps * 32 + threads - 1) / threads;
  const int qmax = (1 << bits) - 1;
  switch (group) {
    case 32: awq_fake_quant_kernel<T, 1><<<blocks, threads, 0, s>>>(w, scale, clip, out, codes, zeros, scales, rows, cols, qmax); break;
    case 64: awq_fake_quant_kernel<T, 2><<<blocks, threads, 0, s>>>(w, scale, clip, out, codes, zeros, scales, rows, cols, qmax); break;
    case 128: awq_fake_quant_kernel<T, 4><<<blocks, threads, 0, s>>>(w, scale, clip, out, codes, zeros, scales, rows, cols, qmax); break;
    default: fail(ErrorCode::InvalidArgument, "awq_fake_quant: group must be 32, 64 or 128, got " + std::to_string(group));
  }
  LMF_CUDA_LAUNCHED();
}

void awq_fake_quant_cuda(const float* w, const float* scale, const float* clip, float* out, uint8_t* codes,
                         uint8_t* zeros, float* scales, int64_t rows, int64_t cols, int bits, int group, cudaStream_t s) {
  launch(w, scale, clip, out, codes, zeros, scales, rows, cols, bits, group, s);
}
void awq_fake_quant_cuda(const half* w, const float* scale, const float* clip, float* out, uint8_t* codes,
                         uint8_t* zeros, float* scales, int64_t rows, int64_t cols, int bits, int group, cudaStream_t s) {
  launch(w, scale, clip, out, codes, zeros, scales, rows, cols, bits, group, s);
}

}  // namespace lmfleet
