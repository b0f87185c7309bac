#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "cuda/check.cuh"
#include "core/env.h"
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

CublasGemm::CublasGemm(cudaStream_t stream, size_t workspace_bytes) : stream_(stream), workspace_bytes_(workspace_bytes) {
  LMF_CUBLAS_CHECK(cublasCreate(&handle_));
  LMF_CUBLAS_CHECK(cublasLtCreate(&lt_));
  LMF_CUBLAS_CHECK(cublasSetStream(handle_, stream));
  LMF_CUDA_CHECK(cudaMalloc(&workspace_, workspace_bytes));
  LMF_CUBLAS_CHECK(cublasSetWorkspace(handle_, workspace_, workspace_bytes));
  LMF_CUBLAS_CHECK(cublasSetMathMode(handle_, CUBLAS_DEFAULT_MATH));
  int dev = 0;
  LMF_CUDA_CHECK(cudaGetDevice(&dev));
  LMF_CUDA_CHECK(cudaDeviceGetAttribute(&sms_, cudaDevAttrMultiProcessorCount, dev));
}

CublasGemm::~CublasGemm() {
  for (auto& [key, p] : plans_) {
    if (p.desc) cublasLtMatmulDescDestroy(p.desc);
    for (auto l : {p.a, p.b, p.c})
      if (l) cublasLtMatrixLayoutDestroy(l);
  }
  if (flush_) cudaFree(flush_);
  if (lt_) cublasLtDestroy(lt_);
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

// Decode rows through the W4A16 GEMV LMFLEET_W4A16_GEMV picks (default 8 MmaX, the fastest on the H100; 0 = the fused
// kernel; 1 Fma, 2 Mma, 4 MmaAsync, 6 MmaQz: ops/w4a16_gemm.cuh), up to
// LMFLEET_W4A16_GEMV_ROWS rows (default 8), when the x tile fits in shared memory.
bool use_w4a16_gemv(int m, int k, int ldx) {
  return w4a16_gemv_mode() != 0 && m <= w4a16_gemv_max_rows() && ldx % 8 == 0 && w4a16_gemv_supported(m, k, (W4GemvDot)w4a16_gemv_mode());
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

bool CublasGemm::tuning_allowed() { return env_switch("LMFLEET_GEMM_TUNE", false); }

void CublasGemm::set_tuning(bool on) {
  tuning_ = on;
  if (!tuning_ && flush_) {
    LMF_CUDA_CHECK(cudaStreamSynchronize(stream_));
    LMF_CUDA_CHECK(cudaFree(flush_));
    flush_ = nullptr;
  }
}

namespace {
constexpr size_t kFlushBytes = 96u << 20;  // > the H100's 50 MB L2

int alignment_of(const void* p) {  // the largest power of two <= 256 dividing the address
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  int al = 256;
  while (al > 1 && a % al) al >>= 1;
  return al;
}
}  // namespace

void CublasGemm::run_plan(const Plan& p, const half* x, int ldx, const half* w, void* y, bool out_f32, int ldy, int m,
                          int n, int k) {
  const float alpha = 1.f, beta = 0.f;
  if (!p.lt) {
    LMF_CUBLAS_CHECK(cublasGemmEx(handle_, CUBLAS_OP_T, CUBLAS_OP_N, n, m, k, &alpha, w, CUDA_R_16F, k, x, CUDA_R_16F,
                                  ldx, &beta, y, out_f32 ? CUDA_R_32F : CUDA_R_16F, ldy, CUBLAS_COMPUTE_32F,
                                  CUBLAS_GEMM_DEFAULT));
    return;
  }
  LMF_CUBLAS_CHECK(cublasLtMatmul(lt_, p.desc, &alpha, w, p.a, x, p.b, &beta, y, p.c, y, p.c, &p.algo, workspace_,
                                  workspace_bytes_, stream_));
}

CublasGemm::Plan* CublasGemm::tune(const PlanKey& key, const half* x, int ldx, const half* w, void* y, bool out_f32,
                                   int ldy, int m, int n, int k) {
  if (!flush_) LMF_CUDA_CHECK(cudaMalloc(&flush_, kFlushBytes));
  Plan lt;
  // same column-major view as cublasGemmEx: C [n, m] (ld ldy) = op(A) B, A = W stored [k, n] (ld k) transposed,
  // B = x stored [k, m] (ld ldx)
  LMF_CUBLAS_CHECK(cublasLtMatmulDescCreate(&lt.desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  const cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
  LMF_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(lt.desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof(ta)));
  LMF_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(lt.desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof(tb)));
  LMF_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&lt.a, CUDA_R_16F, k, n, k));
  LMF_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&lt.b, CUDA_R_16F, k, m, ldx));
  LMF_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&lt.c, out_f32 ? CUDA_R_32F : CUDA_R_16F, n, m, ldy));
  cublasLtMatmulPreference_t pref;
  LMF_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
  const uint64_t wsb = workspace_bytes_;
  LMF_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &wsb, sizeof(wsb)));
  const uint32_t aw = std::get<6>(key), ax = std::get<7>(key), ay = std::get<8>(key);
  LMF_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &aw, sizeof(aw)));
  LMF_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &ax, sizeof(ax)));
  LMF_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &ay, sizeof(ay)));
  LMF_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &ay, sizeof(ay)));
  cublasLtMatmulHeuristicResult_t res[16];
  int found = 0;
  if (cublasLtMatmulAlgoGetHeuristic(lt_, lt.desc, lt.a, lt.b, lt.c, lt.c, pref, 16, res, &found) != CUBLAS_STATUS_SUCCESS)
    found = 0;
  cublasLtMatmulPreferenceDestroy(pref);

  cudaEvent_t e0, e1;
  LMF_CUDA_CHECK(cudaEventCreate(&e0));
  LMF_CUDA_CHECK(cudaEventCreate(&e1));
  // candidate -1: cublasGemmEx's default; i >= 0: cuBLASLt heuristic result i. Median of 3 runs, W evicted from L2.
  auto time_one = [&](int cand) -> float {
    Plan p;
    if (cand >= 0) { p = lt; p.algo = res[cand].algo; p.lt = true; }
    float t[3];
    for (int rep = -1; rep < 3; rep++) {
      LMF_CUDA_CHECK(cudaMemsetAsync(flush_, rep & 0xff, kFlushBytes, stream_));
      LMF_CUDA_CHECK(cudaEventRecord(e0, stream_));
      const float alpha = 1.f, beta = 0.f;
      cublasStatus_t st;
      if (p.lt)
        st = cublasLtMatmul(lt_, p.desc, &alpha, w, p.a, x, p.b, &beta, y, p.c, y, p.c, &p.algo, workspace_,
                            workspace_bytes_, stream_);
      else
        st = cublasGemmEx(handle_, CUBLAS_OP_T, CUBLAS_OP_N, n, m, k, &alpha, w, CUDA_R_16F, k, x, CUDA_R_16F, ldx,
                          &beta, y, out_f32 ? CUDA_R_32F : CUDA_R_16F, ldy, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
      if (st != CUBLAS_STATUS_SUCCESS) return -1.f;
      LMF_CUDA_CHECK(cudaEventRecord(e1, stream_));
      LMF_CUDA_CHECK(cudaEventSynchronize(e1));
      if (rep >= 0) LMF_CUDA_CHECK(cudaEventElapsedTime(&t[rep], e0, e1));
    }
    std::sort(t, t + 3);
    return t[1];
  };
  const float t_default = time_one(-1);
  if (t_default < 0) fail(ErrorCode::Cuda, "cublasGemmEx failed while tuning");
  float best = t_default;
  int best_i = -1;
  for (int i = 0; i < found; i++) {
    if (res[i].state != CUBLAS_STATUS_SUCCESS || res[i].workspaceSize > workspace_bytes_) continue;
    const float t = time_one(i);
    if (t > 0 && t < best * 0.99f) { best = t; best_i = i; }  // a candidate must beat the default by 1%
  }
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  char line[200];
  std::snprintf(line, sizeof line, "gemm m=%d n=%d k=%d %s: default %.1f us, %s %.1f us (%d candidates)", m, n, k,
                out_f32 ? "f32out" : "f16out", t_default * 1e3f, best_i < 0 ? "kept default" : "cublasLt", best * 1e3f,
                found);
  tune_log_.push_back(line);
  if (std::getenv("LMFLEET_GEMM_TUNE_LOG")) std::fprintf(stderr, "[lmfleet] %s\n", line);
  Plan chosen;
  if (best_i >= 0) {
    chosen = lt;
    chosen.lt = true;
    chosen.algo = res[best_i].algo;
    chosen.ws = res[best_i].workspaceSize;
  } else {
    cublasLtMatmulDescDestroy(lt.desc);
    for (auto l : {lt.a, lt.b, lt.c}) cublasLtMatrixLayoutDestroy(l);
  }
  return &plans_.emplace(key, chosen).first->second;
}

void CublasGemm::dense(const half* x, int ldx, const half* w, void* y, bool out_f32, int ldy, int m, int n, int k) {
  const PlanKey key{m, n, k, ldx, ldy, out_f32, alignment_of(w), alignment_of(x), alignment_of(y)};
  auto it = plans_.find(key);
  const Plan* p = it != plans_.end() ? &it->second : nullptr;
  if (!p && tuning_ && !capturing(stream_)) p = tune(key, x, ldx, w, y, out_f32, ldy, m, n, k);
  if (p) {
    run_plan(*p, x, ldx, w, y, out_f32, ldy, m, n, k);
    return;
  }
  run_plan(Plan{}, x, ldx, w, y, out_f32, ldy, m, n, k);
}

void CublasGemm::linear(const half* x, int ldx, const half* w, const half* bias, half* y, int ldy, int m, int n,
                        int k) {
  if (m <= 0) return;
  if (m <= gemv_max_rows() && k % 8 == 0 && ldx % 8 == 0) {
    gemv_cuda(x, ldx, w, bias, y, ldy, m, n, k, stream_);
    return;
  }
  dense(x, ldx, w, y, false, ldy, m, n, k);
  if (bias) add_bias_cuda(y, ldy, bias, m, n, stream_);
}

void CublasGemm::linear_f32out(const half* x, int ldx, const half* w, const half* bias, float* y, int ldy, int m,
                               int n, int k) {
  if (m <= 0) return;
  if (m <= gemv_max_rows() && k % 8 == 0 && ldx % 8 == 0) {
    gemv_f32out_cuda(x, ldx, w, bias, y, ldy, m, n, k, stream_);
    return;
  }
  dense(x, ldx, w, y, true, ldy, m, n, k);
  if (bias) {
    add_bias_f32_kernel<<<dim3((n + 255) / 256, m), 256, 0, stream_>>>(y, ldy, bias, n);
    LMF_CUDA_LAUNCHED();
  }
}

}  // namespace lmfleet
