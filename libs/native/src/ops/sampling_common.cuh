// Device helpers shared by argmax.cu and sample.cu: (value, index) block arg-max and log-sum-exp.
#pragma once
#include <cuda_runtime.h>

#include "cuda/device_utils.cuh"

namespace lmfleet {

struct ArgMaxPair {
  float v;
  int i;
};

__device__ __forceinline__ ArgMaxPair better(ArgMaxPair a, ArgMaxPair b) {
  // larger value wins; on a tie the smaller index (NaN never wins)
  if (b.v > a.v || (b.v == a.v && b.i < a.i)) return b;
  return a;
}

// Block arg-max; every thread receives the result. scratch: 32 pairs.
__device__ __forceinline__ ArgMaxPair block_argmax(ArgMaxPair p, ArgMaxPair* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = (blockDim.x + 31) >> 5;
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    ArgMaxPair q{__shfl_xor_sync(0xffffffffu, p.v, o), __shfl_xor_sync(0xffffffffu, p.i, o)};
    p = better(p, q);
  }
  __syncthreads();
  if (lane == 0) scratch[warp] = p;
  __syncthreads();
  p = lane < nwarps ? scratch[lane] : ArgMaxPair{-INFINITY, 0x7fffffff};
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    ArgMaxPair q{__shfl_xor_sync(0xffffffffu, p.v, o), __shfl_xor_sync(0xffffffffu, p.i, o)};
    p = better(p, q);
  }
  return p;
}

// log(sum(exp(x - mx))) over a row, every thread receives it.
__device__ __forceinline__ float block_log_sum_exp(const float* x, int n, float mx, float* scratch) {
  float s = 0.f;
  for (int i = threadIdx.x; i < n; i += blockDim.x) s += __expf(x[i] - mx);
  return logf(block_sum(s, scratch));
}

}  // namespace lmfleet
