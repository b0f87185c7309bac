#include "cuda/check.cuh"
#include "cuda/device_utils.cuh"
#include "ops/embedding.cuh"

namespace lmfleet {

__global__ void embedding_kernel(const int* __restrict__ ids, const half* __restrict__ table, half* __restrict__ out,
                                 int hidden, int vocab, float scale) {
  const int row = blockIdx.x;
  const int id = ids[row];
  const bool ok = id >= 0 && id < vocab;
  half* dst = out + (size_t)row * hidden;
  if (scale != 1.f) {  // Gemma: the row times its scale in f32, rounded once
    const half* src = table + (size_t)(ok ? id : 0) * hidden;
    for (int i = threadIdx.x; i < hidden; i += blockDim.x) dst[i] = __float2half(ok ? __half2float(src[i]) * scale : 0.f);
  } else if (hidden % 8 == 0) {
    const uint4* src = reinterpret_cast<const uint4*>(table + (size_t)(ok ? id : 0) * hidden);
    uint4* d = reinterpret_cast<uint4*>(dst);
    for (int i = threadIdx.x; i < hidden / 8; i += blockDim.x) d[i] = ok ? __ldg(src + i) : make_uint4(0, 0, 0, 0);
  } else {
    const half* src = table + (size_t)(ok ? id : 0) * hidden;
    for (int i = threadIdx.x; i < hidden; i += blockDim.x) dst[i] = ok ? src[i] : __float2half(0.f);
  }
}

void embedding_cuda(const int* ids, const half* table, half* out, int n, int hidden, int vocab, cudaStream_t s, float scale) {
  if (n <= 0) return;
  embedding_kernel<<<n, 256, 0, s>>>(ids, table, out, hidden, vocab, scale);
  LMF_CUDA_LAUNCHED();
}

}  // namespace lmfleet
