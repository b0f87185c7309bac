#include <string>

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
}

CublasGemm::~CublasGemm() {
  if (handle_) cublasDestroy(handle_);
  if (workspace_) cudaFree(workspace_);
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
