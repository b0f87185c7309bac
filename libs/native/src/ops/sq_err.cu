#include "cuda/check.cuh"
#include "ops/sq_err.cuh"

namespace lmfleet {

// Thread c walks column c down the rows (coalesced across a warp); f64 sums in row order, as the CPU reference.
__global__ void sq_err_kernel(const float* __restrict__ a, const float* __restrict__ b, int64_t rows, int64_t cols,
                              double* out) {
  const int64_t c = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= cols) return;
  double s = out[c];
  for (int64_t r = 0; r < rows; r++) {
    const double d = __dsub_rn((double)__ldg(a + r * cols + c), (double)__ldg(b + r * cols + c));
    s = __dadd_rn(s, __dmul_rn(d, d));
  }
  out[c] = s;
}

void sq_err_cuda(const float* a, const float* b, int64_t rows, int64_t cols, double* out, cudaStream_t s) {
  if (cols <= 0) return;
  sq_err_kernel<<<(unsigned)((cols + 127) / 128), 128, 0, s>>>(a, b, rows, cols, out);
  LMF_CUDA_LAUNCHED();
}

}  // namespace lmfleet
