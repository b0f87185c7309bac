#include <cstdlib>
#include <string>

#include <algorithm>

#include "cuda/check.cuh"
#include "cuda/gemm.h"
#include "ops/add.cuh"
#include "ops/linear.cuh"

#define LMF_CUBLAS_CHECK(expr)                                                                                 \
  do {                                                                                                         \
    cublasStatus_t lmf_s_ = (expr);                                                                            \
    if (lmf_s_ != CUBLAS_STATUS_SUCCESS)                                                                       \
      ::lmfleet::cuda_fail(#expr, cublasGetStatusString(lmf_s_), __FILE__, __LINE__);                          \
  } while (0)

namespace lmfleet {

namespace {
__global__ void add_bias_f32_kernel(float* y, int ld, const half* __restrict__ bias, int cols) {
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c < cols) y[(size_t)blockIdx.y * ld + c] += __half2float(bias[c]);
}
}  // namespace

CublasGemm::CublasGemm(cudaStream_t stream, size_t workspace_bytes) : stream_(stream) {
  LMF_CUBLAS_CHECK(cublasCreate(&handle_));
  LMF_CUBLAS_CHECK(cublasSetStream(handle_, stream));
  LMF_CUDA_CHECK(cudaMalloc(&workspace_, workspace_bytes));
  LMF_CUBLAS_CHECK(cublasSetWorkspace(handle_, workspace_, workspace_bytes));
  LMF_CUBLAS_CHECK(cublasSetMathMode(handle_, CUBLAS_DEFAULT_MATH));
  int dev = 0;
  LMF_CUDA_CHECK(cudaGetDevice(&dev));
  LMF_CUDA_CHECK(cudaDeviceGetAttribute(&sms_, cudaDevAttrMultiProcessorCount, dev));
}

CublasGemm::~CublasGemm() {
  if (handle_) cublasDestroy(handle_);
  if (workspace_) cudaFree(workspace_);
  if (partials_) cudaFree(partials_);
  if (dense_) cudaFree(dense_);
}

int w4a16_dense_min_rows() {
  static const int rows = [] {
    const char* e = std::getenv("LMFLEET_W4A16_DENSE_ROWS");
    return e ? std::max(1, std::atoi(e)) : 256;
  }();
  return rows;
}

namespace {
bool capturing(cudaStream_t s) {
  cudaStreamCaptureStatus st = cudaStreamCaptureStatusNone;
  LMF_CUDA_CHECK(cudaStreamIsCapturing(s, &st));
  return st != cudaStreamCaptureStatusNone;
}
}  // namespace

float* CublasGemm::w4_partials(size_t bytes) {
  if (bytes > partials_bytes_) {
    if (capturing(stream_)) fail(ErrorCode::Internal, "w4a16: workspace too small during graph capture (reserve_w4a16 first)");
    LMF_CUDA_CHECK(cudaStreamSynchronize(stream_));
    if (partials_) LMF_CUDA_CHECK(cudaFree(partials_));
    partials_ = nullptr;
    LMF_CUDA_CHECK(cudaMalloc(&partials_, bytes));
    LMF_CUDA_CHECK(cudaMemset(partials_, 0, bytes));  // the split-k arrival counters start (and stay) at zero
    partials_bytes_ = bytes;
  }
  return static_cast<float*>(partials_);
}

half* CublasGemm::w4_dense(size_t elems) {
  if (elems > dense_elems_) {
    if (capturing(stream_)) fail(ErrorCode::Internal, "w4a16: dense scratch too small during graph capture (reserve_w4a16 first)");
    LMF_CUDA_CHECK(cudaStreamSynchronize(stream_));
    if (dense_) LMF_CUDA_CHECK(cudaFree(dense_));
    dense_ = nullptr;
    LMF_CUDA_CHECK(cudaMalloc(&dense_, elems * sizeof(half)));
    dense_elems_ = elems;
  }
  return dense_;
}

// Decode rows through the W4A16 GEMV only when LMFLEET_W4A16_GEMV picks one (default 0 = off: the fused kernel, which
// no GEMV variant beat on the H100; 1 Fma, 2 Mma, 4 MmaAsync, 6 MmaQz: ops/w4a16_gemm.cuh), up to
// LMFLEET_W4A16_GEMV_ROWS rows (default 8), when the x tile fits in shared memory.
bool use_w4a16_gemv(int m, int k, int ldx) {
  return w4a16_gemv_mode() != 0 && m <= w4a16_gemv_max_rows() && ldx % 8 == 0 && w4a16_gemv_supported(m, k);
}

void CublasGemm::reserve_w4a16(int m, int n, int k) {
  if (m <= 0) return;
  // every row count up to m may come later (graph-captured decode after a large prefill): the split depends on it
  if (m >= w4a16_dense_min_rows()) w4_dense((size_t)n * k);
  size_t need = 0;
  for (int r = 1; r <= std::min(m, w4a16_dense_min_rows() - 1); r++)
    need = std::max(need, w4a16_fused_workspace_bytes(r, n, k, sms_));
  if (need) w4_partials(need);
}

void CublasGemm::linear_w4a16(const half* x, int ldx, const W4A16Dev& w, half* y, int ldy, int m) {
  if (m <= 0) return;
  if (m >= w4a16_dense_min_rows()) {
    half* wd = w4_dense((size_t)w.n * w.k);
    w4a16_dequant_cuda(w, wd, stream_);
    cublas_linear(x, ldx, wd, y, ldy, m, w.n, w.k);
    if (w.bias) add_bias_cuda(y, ldy, w.bias, m, w.n, stream_);
    return;
  }
  if (use_w4a16_gemv(m, w.k, ldx)) {
    w4a16_gemv_cuda(x, ldx, w, y, ldy, m, (W4GemvDot)w4a16_gemv_mode(), sms_, stream_);
    return;
  }
  const size_t ws = w4a16_fused_workspace_bytes(m, w.n, w.k, sms_);
  w4a16_gemm_fused_cuda(x, ldx, w, y, ldy, m, ws ? w4_partials(ws) : nullptr, sms_, stream_);
}

void CublasGemm::linear_w4a16_f32out(const half* x, int ldx, const W4A16Dev& w, float* y, int ldy, int m) {
  if (m <= 0) return;
  if (m >= w4a16_dense_min_rows()) {
    half* wd = w4_dense((size_t)w.n * w.k);
    w4a16_dequant_cuda(w, wd, stream_);
    const float alpha = 1.f, beta = 0.f;
    LMF_CUBLAS_CHECK(cublasGemmEx(handle_, CUBLAS_OP_T, CUBLAS_OP_N, w.n, m, w.k, &alpha, wd, CUDA_R_16F, w.k, x, CUDA_R_16F,
                                  ldx, &beta, y, CUDA_R_32F, ldy, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    if (w.bias) {
      add_bias_f32_kernel<<<dim3((w.n + 255) / 256, m), 256, 0, stream_>>>(y, ldy, w.bias, w.n);
      LMF_CUDA_LAUNCHED();
    }
    return;
  }
  if (use_w4a16_gemv(m, w.k, ldx)) {
    w4a16_gemv_f32out_cuda(x, ldx, w, y, ldy, m, (W4GemvDot)w4a16_gemv_mode(), sms_, stream_);
    return;
  }
  const size_t ws = w4a16_fused_workspace_bytes(m, w.n, w.k, sms_);
  w4a16_gemm_fused_f32out_cuda(x, ldx, w, y, ldy, m, ws ? w4_partials(ws) : nullptr, sms_, stream_);
}

void CublasGemm::cublas_linear(const half* x, int ldx, const half* w, half* y, int ldy, int m, int n, int k) {
  const float alpha = 1.f, beta = 0.f;
  // column-major view: y^T [n, m] = W [n, k] (stored as W^T col-major, ld k) x x^T [k, m] (ld ldx)
  LMF_CUBLAS_CHECK(cublasGemmEx(handle_, CUBLAS_OP_T, CUBLAS_OP_N, n, m, k, &alpha, w, CUDA_R_16F, k, x, CUDA_R_16F,
                                ldx, &beta, y, CUDA_R_16F, ldy, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

void CublasGemm::linear(const half* x, int ldx, const half* w, const half* bias, half* y, int ldy, int m, int n,
                        int k) {
  if (m <= 0) return;
  if (m <= kGemvMaxRows && k % 8 == 0 && ldx % 8 == 0) {
    gemv_cuda(x, ldx, w, bias, y, ldy, m, n, k, stream_);
    return;
  }
  cublas_linear(x, ldx, w, y, ldy, m, n, k);
  if (bias) add_bias_cuda(y, ldy, bias, m, n, stream_);
}

void CublasGemm::linear_f32out(const half* x, int ldx, const half* w, const half* bias, float* y, int ldy, int m,
                               int n, int k) {
  if (m <= 0) return;
  if (m <= kGemvMaxRows && k % 8 == 0 && ldx % 8 == 0) {
    gemv_f32out_cuda(x, ldx, w, bias, y, ldy, m, n, k, stream_);
    return;
  }
  const float alpha = 1.f, beta = 0.f;
  LMF_CUBLAS_CHECK(cublasGemmEx(handle_, CUBLAS_OP_T, CUBLAS_OP_N, n, m, k, &alpha, w, CUDA_R_16F, k, x, CUDA_R_16F,
                                ldx, &beta, y, CUDA_R_32F, ldy, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
  if (bias) {
    add_bias_f32_kernel<<<dim3((n + 255) / 256, m), 256, 0, stream_>>>(y, ldy, bias, n);
    LMF_CUDA_LAUNCHED();
  }
}

}  // namespace lmfleet
