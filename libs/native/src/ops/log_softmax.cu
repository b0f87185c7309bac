#include "cuda/check.cuh"
#include "ops/log_softmax.cuh"
#include "ops/sampling_common.cuh"

namespace lmfleet {

__global__ void log_softmax_kernel(const float* __restrict__ x, float* __restrict__ y, int ld, int vocab) {
  __shared__ float scr[32];
  const float* xr = x + (size_t)blockIdx.x * ld;
  float* yr = y + (size_t)blockIdx.x * ld;
  float mx = -INFINITY;
  for (int i = threadIdx.x; i < vocab; i += blockDim.x) mx = fmaxf(mx, xr[i]);
  mx = block_max(mx, scr);
  const float lse = block_log_sum_exp(xr, vocab, mx, scr);
  for (int i = threadIdx.x; i < vocab; i += blockDim.x) yr[i] = xr[i] - mx - lse;
}

void log_softmax_cuda(const float* x, float* y, int ld, int rows, int vocab, cudaStream_t s) {
  if (rows <= 0) return;
  log_softmax_kernel<<<rows, 1024, 0, s>>>(x, y, ld, vocab);
  LMF_CUDA_LAUNCHED();
}

}  // namespace lmfleet
