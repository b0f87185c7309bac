#include "cuda/check.cuh"
#include "cuda/device_utils.cuh"
#include "ops/linear.cuh"

namespace lmfleet {

namespace {
constexpr int kRowsPerBlock = 8;  // one warp per output feature
constexpr int kUnroll = 4;        // 16-byte weight loads in flight per lane

__device__ __forceinline__ void store_out(half* p, float v) { *p = __float2half(v); }
__device__ __forceinline__ void store_out(float* p, float v) { *p = v; }
}  // namespace

template <int M, typename OutT>
__global__ void __launch_bounds__(kRowsPerBlock * 32)
gemv_kernel(const half* __restrict__ x, int ldx, const half* __restrict__ w, const half* __restrict__ bias,
            OutT* __restrict__ y, int ldy, int n, int k) {
  const int row = blockIdx.x * kRowsPerBlock + (threadIdx.x >> 5);
  const int lane = threadIdx.x & 31;
  if (row >= n) return;
  const half* wr = w + (size_t)row * k;
  float acc[M];
#pragma unroll
  for (int i = 0; i < M; i++) acc[i] = 0.f;
  const int nchunks = k / 8;  // 16-byte chunks in the row
  int c = lane;
  for (; c + 32 * (kUnroll - 1) < nchunks; c += 32 * kUnroll) {
    uint4 wv[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; u++) wv[u] = ld_stream_u4(wr + (size_t)(c + 32 * u) * 8);
#pragma unroll
    for (int u = 0; u < kUnroll; u++) {
      float wf[8];
      half8_to_float(*reinterpret_cast<half8*>(&wv[u]), wf);
#pragma unroll
      for (int i = 0; i < M; i++) {
        float xf[8];
        half8_to_float(ldg_half8(x + (size_t)i * ldx + (c + 32 * u) * 8), xf);
#pragma unroll
        for (int q = 0; q < 8; q++) acc[i] += wf[q] * xf[q];
      }
    }
  }
  for (; c < nchunks; c += 32) {
    uint4 wv = ld_stream_u4(wr + (size_t)c * 8);
    float wf[8];
    half8_to_float(*reinterpret_cast<half8*>(&wv), wf);
#pragma unroll
    for (int i = 0; i < M; i++) {
      float xf[8];
      half8_to_float(ldg_half8(x + (size_t)i * ldx + c * 8), xf);
#pragma unroll
      for (int q = 0; q < 8; q++) acc[i] += wf[q] * xf[q];
    }
  }
#pragma unroll
  for (int i = 0; i < M; i++) acc[i] = warp_sum(acc[i]);
  if (lane == 0) {
    const float b = bias ? __half2float(bias[row]) : 0.f;
#pragma unroll
    for (int i = 0; i < M; i++) store_out(y + (size_t)i * ldy + row, acc[i] + b);
  }
}

template <typename OutT>
static void launch(const half* x, int ldx, const half* w, const half* bias, OutT* y, int ldy, int m, int n, int k,
                   cudaStream_t s) {
  if (m <= 0 || n <= 0) return;
  if (m > kGemvMaxRows) fail(ErrorCode::InvalidArgument, "gemv: more rows than kGemvMaxRows");
  if (k % 8 || ldx % 8) fail(ErrorCode::InvalidArgument, "gemv: k and ldx must be multiples of 8");
  const dim3 grid((n + kRowsPerBlock - 1) / kRowsPerBlock), block(kRowsPerBlock * 32);
  switch (m) {
#define LMF_GEMV_CASE(M) \
  case M: gemv_kernel<M, OutT><<<grid, block, 0, s>>>(x, ldx, w, bias, y, ldy, n, k); break;
    LMF_GEMV_CASE(1) LMF_GEMV_CASE(2) LMF_GEMV_CASE(3) LMF_GEMV_CASE(4)
    LMF_GEMV_CASE(5) LMF_GEMV_CASE(6) LMF_GEMV_CASE(7) LMF_GEMV_CASE(8)
#undef LMF_GEMV_CASE
  }
  LMF_CUDA_LAUNCHED();
}

void gemv_cuda(const half* x, int ldx, const half* w, const half* bias, half* y, int ldy, int m, int n, int k,
               cudaStream_t s) {
  launch<half>(x, ldx, w, bias, y, ldy, m, n, k, s);
}
void gemv_f32out_cuda(const half* x, int ldx, const half* w, const half* bias, float* y, int ldy, int m, int n, int k,
                      cudaStream_t s) {
  launch<float>(x, ldx, w, bias, y, ldy, m, n, k, s);
}

}  // namespace lmfleet
