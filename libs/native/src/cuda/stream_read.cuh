#pragma once
// The benches' plain streaming read (bench_decoder.cu, bench_w4_layout.cu, collective_cuda.cu's flushes): no math,
// n 16-byte words, 8 loads in flight per thread, grid-stride: what reading the same bytes can reach at this size; the
// xor keeps the loads.
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "cuda/device_utils.cuh"

namespace lmfleet {

// static: each bench defines its own copy (no relocatable device code)
static __global__ void stream_read_kernel(const uint4* __restrict__ p, size_t n, uint32_t* out) {
  uint32_t h = 0;
  const size_t stride = (size_t)gridDim.x * blockDim.x;
  size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
  for (; i + 7 * stride < n; i += 8 * stride) {
    uint4 v[8];
#pragma unroll
    for (int u = 0; u < 8; u++) v[u] = ld_stream_u4(p + i + u * stride);
#pragma unroll
    for (int u = 0; u < 8; u++) h ^= v[u].x ^ v[u].y ^ v[u].z ^ v[u].w;
  }
  for (; i < n; i += stride) {
    const uint4 v = ld_stream_u4(p + i);
    h ^= v.x ^ v.y ^ v.z ^ v.w;
  }
  if (h == 0x9e3779b9u) *out = h;
}

}  // namespace lmfleet
