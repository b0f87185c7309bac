#include "cuda/check.cuh"
#include "ops/channel_stats.cuh"
#include "ops/channel_stats.h"

namespace lmfleet {

// Thread c walks column c down the rows; a warp reads 32 adjacent floats of a row per step (coalesced).
// Parallelism is `cols` threads (4096-11008 for 7B shapes): enough to stream the taps at a good fraction
// of bandwidth; splitting rows would reorder the f64 sums and lose bit-exactness with the CPU.
__global__ void channel_stats_kernel(const float* __restrict__ x, int64_t rows, int64_t cols, float* absmax,
                                     double* abssum, float* mn, float* mx) {
  const int64_t c = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= cols) return;
  float am = absmax[c], lo = mn[c], hi = mx[c];
  double s = abssum[c];
  for (int64_t r = 0; r < rows; r++) {
    const float v = __ldg(x + r * cols + c), av = v < 0 ? -v : v;
    if (av > am) am = av;
    s = __dadd_rn(s, (double)av);
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  absmax[c] = am;
  abssum[c] = s;
  mn[c] = lo;
  mx[c] = hi;
}

void channel_stats_cuda(const float* x, int64_t rows, int64_t cols, float* absmax, double* abssum, float* min,
                        float* max, cudaStream_t s) {
  if (cols <= 0) return;
  channel_stats_kernel<<<(unsigned)((cols + 127) / 128), 128, 0, s>>>(x, rows, cols, absmax, abssum, min, max);
  LMF_CUDA_LAUNCHED();
}

}  // namespace lmfleet
