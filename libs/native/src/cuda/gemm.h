// Dense GEMM through cuBLAS (f16 in/out or f32 out, f32 accumulate) for linear layers: y[m, n] = x[m, k] W^T,
// W row-major [n, k] as stored in safetensors. Decode rows (m <= kGemvMaxRows) go to our streaming GEMV
// (ops/linear.cu), which reads W at full bandwidth; larger m to cuBLAS. Graph-capturable: the handle gets a
// fixed workspace so cuBLAS allocates nothing during capture.
#pragma once
#include <cublas_v2.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

namespace lmfleet {

class CublasGemm {
 public:
  explicit CublasGemm(cudaStream_t stream, size_t workspace_bytes = 32u << 20);
  ~CublasGemm();
  CublasGemm(const CublasGemm&) = delete;
  CublasGemm& operator=(const CublasGemm&) = delete;

  // y (ldy) = x (ldx) W^T + bias (bias nullable). f16 out.
  void linear(const half* x, int ldx, const half* w, const half* bias, half* y, int ldy, int m, int n, int k);
  // Same with f32 out (logits).
  void linear_f32out(const half* x, int ldx, const half* w, const half* bias, float* y, int ldy, int m, int n, int k);
  // Always cuBLAS (for tests and the GEMM ceiling).
  void cublas_linear(const half* x, int ldx, const half* w, half* y, int ldy, int m, int n, int k);
  cudaStream_t stream() const { return stream_; }

 private:
  cublasHandle_t handle_ = nullptr;
  cudaStream_t stream_;
  void* workspace_ = nullptr;
};

}  // namespace lmfleet
