#include "cuda/check.cuh"
#include "cuda/device_utils.cuh"
#include "ops/add.cuh"

namespace lmfleet {

__global__ void add_kernel(const half* a, const half* b, half* out, long long n) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
    out[i] = __float2half(__half2float(a[i]) + __half2float(b[i]));
}

__global__ void add_bias_kernel(half* y, int ld, const half* __restrict__ bias, int cols) {
  const int row = blockIdx.y;
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c < cols) {
    half* p = y + (size_t)row * ld + c;
    *p = __float2half(__half2float(*p) + __half2float(bias[c]));
  }
}

void add_cuda(const half* a, const half* b, half* out, long long n, cudaStream_t s) {
  if (n <= 0) return;
  long long blocks = (n + 255) / 256;
  if (blocks > 65535LL * 8) blocks = 65535LL * 8;
  add_kernel<<<(unsigned)blocks, 256, 0, s>>>(a, b, out, n);
  LMF_CUDA_LAUNCHED();
}

void add_bias_cuda(half* y, int ld, const half* bias, int rows, int cols, cudaStream_t s) {
  if (rows <= 0 || cols <= 0) return;
  dim3 grid((cols + 255) / 256, rows);
  add_bias_kernel<<<grid, 256, 0, s>>>(y, ld, bias, cols);
  LMF_CUDA_LAUNCHED();
}

}  // namespace lmfleet
