// Dense GEMM through cuBLAS (f16 in/out or f32 out, f32 accumulate) for linear layers: y[m, n] = x[m, k] W^T,
// W row-major [n, k] as stored in safetensors. Decode rows (m <= gemv_max_rows(), default kGemvMaxRows) go to our streaming GEMV
// (ops/linear.cu), which reads W at full bandwidth; larger m to cuBLAS. Graph-capturable: the handle gets a
// fixed workspace so cuBLAS allocates nothing during capture.
#pragma once
#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "ops/w4a16_gemm.cuh"

namespace lmfleet {

// W4A16 linears with m rows: the fused kernel (ops/w4a16_gemm.cu) below this many rows, else the weight is
// dequantized into a scratch f16 copy and cuBLAS runs the dense GEMM (prefill: the dense GEMM is faster than
// mma.sync there, and the dequantization costs one read of 4-bit + one write of f16 per linear). Set by
// LMFLEET_W4A16_DENSE_ROWS.
int w4a16_dense_min_rows();
// Whether linear_w4a16 sends these m rows to the W4A16 GEMV (LMFLEET_W4A16_GEMV=1|2|4|6|8, m <= LMFLEET_W4A16_GEMV_ROWS;
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
  // Always cuBLAS's default algorithm (for tests and the GEMM ceiling).
  void cublas_linear(const half* x, int ldx, const half* w, half* y, int ldy, int m, int n, int k);
  cudaStream_t stream() const { return stream_; }

  // Per-shape GEMM choice for m > kGemvMaxRows (the decode batches 16..256 where cuBLAS's default reads W at ~84% of
  // the bandwidth). While tuning is on (set_tuning(true); never during graph capture) the first call of a shape times
  // cuBLAS's default (cublasGemmEx) against up to 16 cuBLASLt heuristic candidates, with a 96 MB write before each
  // timed run so W comes from HBM as in a decode step, and keeps the fastest for (m, n, k, ldx, ldy, out type,
  // pointer alignments). Every later call of that shape, captured ones included, runs the kept choice; shapes
  // without one run cublasGemmEx's default. With LMFLEET_GEMM_TUNE=1 (tuning_allowed), CudaDecoder turns tuning on
  // for one eager step before it captures a decode graph of a new batch bucket. Off by default: measured on the H100
  // the kept choices gain 1-5% per shape (batch 16 decode -1.6%), but the choice depends on timings, so two processes
  // can run different algorithms (last-bit different logits: seeded sampling would not be reproducible across
  // processes), and each new bucket's first step costs tens of ms (test/bench/RESULTS.md).
  static bool tuning_allowed();
  void set_tuning(bool on);
  // One line per tuned shape (shape, default us, best us, which), for benchmarks.
  const std::vector<std::string>& tune_log() const { return tune_log_; }
  size_t plans() const { return plans_.size(); }

  // y (ldy) = x (ldx) W^T + bias for a W4A16 weight; f16 or f32 out. Graph-capturable once reserve_w4a16 has
  // sized the workspaces for the largest (m, n, k) that will be captured.
  void linear_w4a16(const half* x, int ldx, const W4A16Dev& w, half* y, int ldy, int m);
  void linear_w4a16_f32out(const half* x, int ldx, const W4A16Dev& w, float* y, int ldy, int m);
  void reserve_w4a16(int m, int n, int k);
  int sms() const { return sms_; }

 private:
  // y = x W^T in f16 or f32 (out_f32), bias not included; the plan (or cuBLAS's default) for this shape
  void dense(const half* x, int ldx, const half* w, void* y, bool out_f32, int ldy, int m, int n, int k);
  struct Plan {
    bool lt = false;  // false: cublasGemmEx default
    cublasLtMatmulDesc_t desc = nullptr;
    cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
    cublasLtMatmulAlgo_t algo{};
    size_t ws = 0;
  };
  using PlanKey = std::tuple<int, int, int, int, int, bool, int, int, int>;  // m n k ldx ldy f32 align(w) align(x) align(y)
  Plan* tune(const PlanKey& key, const half* x, int ldx, const half* w, void* y, bool out_f32, int ldy, int m, int n, int k);
  void run_plan(const Plan& p, const half* x, int ldx, const half* w, void* y, bool out_f32, int ldy, int m, int n, int k);
  std::map<PlanKey, Plan> plans_;
  std::vector<std::string> tune_log_;
  bool tuning_ = false;
  void* flush_ = nullptr;  // L2 eviction buffer while tuning
  cublasLtHandle_t lt_ = nullptr;
  size_t workspace_bytes_ = 0;
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
