// Dense GEMM through cuBLAS (f16 in/out or f32 out, f32 accumulate) for linear layers: y[m, n] = x[m, k] W^T,
// W row-major [n, k] as stored in safetensors. Decode rows (m <= kGemvMaxRows) go to our streaming GEMV
// (ops/linear.cu), which reads W at full bandwidth; larger m to cuBLAS. Graph-capturable: the handle gets a
// fixed workspace so cuBLAS allocates nothing during capture.
#pragma once
#include <cublas_v2.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "ops/w4a16_gemm.cuh"

namespace lmfleet {

// W4A16 linears with m rows: the fused kernel (ops/w4a16_gemm.cu) below this many rows, else the weight is
// dequantized into a scratch f16 copy and cuBLAS runs the dense GEMM (prefill: the dense GEMM is faster than
// mma.sync there, and the dequantization costs one read of 4-bit + one write of f16 per linear). Set by
// LMFLEET_W4A16_DENSE_ROWS.
int w4a16_dense_min_rows();
// Whether linear_w4a16 sends these m rows to the W4A16 GEMV (LMFLEET_W4A16_GEMV=1|2|4|6, m <= LMFLEET_W4A16_GEMV_ROWS;
// default off: the fused kernel).
bool use_w4a16_gemv(int m, int k, int ldx);

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

  // y (ldy) = x (ldx) W^T + bias for a W4A16 weight; f16 or f32 out. Graph-capturable once reserve_w4a16 has
  // sized the workspaces for the largest (m, n, k) that will be captured.
  void linear_w4a16(const half* x, int ldx, const W4A16Dev& w, half* y, int ldy, int m);
  void linear_w4a16_f32out(const half* x, int ldx, const W4A16Dev& w, float* y, int ldy, int m);
  void reserve_w4a16(int m, int n, int k);
  int sms() const { return sms_; }

 private:
  float* w4_partials(size_t bytes);
  half* w4_dense(size_t elems);
  int sms_ = 0;
  void* partials_ = nullptr;
  size_t partials_bytes_ = 0;
  half* dense_ = nullptr;
  size_t dense_elems_ = 0;
  cublasHandle_t handle_ = nullptr;
  cudaStream_t stream_;
  void* workspace_ = nullptr;
};

}  // namespace lmfleet
