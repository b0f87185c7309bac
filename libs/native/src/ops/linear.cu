#include <algorithm>
#include <cstdlib>
#include <string>
#include <type_traits>

#include "cuda/check.cuh"
#include "core/env.h"
#include "cuda/device_utils.cuh"
#include "ops/linear.cuh"

namespace lmfleet {

namespace {
constexpr int kRowsPerBlock = 8;  // one warp per output feature
constexpr int kUnroll = 4;        // 16-byte weight loads in flight per lane

__device__ __forceinline__ void store_out(half* p, float v) { *p = __float2half(v); }
__device__ __forceinline__ void store_out(float* p, float v) { *p = v; }
}  // namespace

// kSilu (gemv_silu_cuda; OutT half): W is the fused gate_up weight [2n, k] (n = inter), y is [m, n] (ldy): block b's
// warps 0..3 compute gate rows b*4 + w, warps 4..7 the matching up rows n + b*4 + w - 4 (the same per-row arithmetic),
// and the block writes silu(g) * u for its 4 columns (the silu_mul_cuda arithmetic on the f16-rounded g and u).
template <int M, typename OutT, bool kSilu = false>
__global__ void __launch_bounds__(kRowsPerBlock * 32)
gemv_kernel(const half* __restrict__ x, int ldx, const half* __restrict__ w, const half* __restrict__ bias,
            OutT* __restrict__ y, int ldy, int n, int k, int l2pf, int early) {
  static_assert(!kSilu || (std::is_same_v<OutT, half> && kRowsPerBlock == 8), "gemv_kernel: silu mode is f16 out, 8 warps");
  constexpr int kCols = kRowsPerBlock / 2;  // silu mode: output columns per block
  int row;
  if constexpr (kSilu) {
    const int wi = threadIdx.x >> 5;
    row = wi < kCols ? blockIdx.x * kCols + wi : n + blockIdx.x * kCols + wi - kCols;  // n % kCols == 0: all valid
  } else {
    row = blockIdx.x * kRowsPerBlock + (threadIdx.x >> 5);
  }
  const int lane = threadIdx.x & 31;
  if (early) pdl_trigger();  // pdl_early_trigger: before the early return below, so every block runs it
  if constexpr (!kSilu) {  // silu mode has no partial blocks (and a __syncthreads below)
    if (row >= n) return;
  }
  const half* wr = w + (size_t)row * k;
  float acc[M];
#pragma unroll
  for (int i = 0; i < M; i++) acc[i] = 0.f;
  const int nchunks = k / 8;  // 16-byte chunks in the row
  int c = lane;
  // the first kUnroll weight loads go out before pdl_wait: launched as a programmatic dependent (launch_pdl), this
  // block may run while the kernel that writes x is finishing; W is not written by it
  uint4 wv[kUnroll];
  bool full = c + 32 * (kUnroll - 1) < nchunks;
  if (full) {
#pragma unroll
    for (int u = 0; u < kUnroll; u++) wv[u] = ld_stream_u4(wr + (size_t)(c + 32 * u) * 8);
  }
  if (l2pf && lane == 0 && nchunks > 32 * kUnroll)  // the rest of the row into L2 while we wait (l2_prefetch_kb)
    prefetch_l2(wr + 32 * kUnroll * 8, (uint32_t)(nchunks - 32 * kUnroll) * 16);
  pdl_wait();
  if (!early) pdl_trigger();  // the kernel after this one may launch once every block runs (it waits for this one to finish)
  while (full) {
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
    c += 32 * kUnroll;
    full = c + 32 * (kUnroll - 1) < nchunks;
    if (full) {
#pragma unroll
      for (int u = 0; u < kUnroll; u++) wv[u] = ld_stream_u4(wr + (size_t)(c + 32 * u) * 8);
    }
  }
  for (; c < nchunks; c += 32) {
    uint4 wt = ld_stream_u4(wr + (size_t)c * 8);
    float wf[8];
    half8_to_float(*reinterpret_cast<half8*>(&wt), wf);
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
  if constexpr (kSilu) {
    __shared__ half gu[kRowsPerBlock][M];  // [warp][m]: the f16 values gemv_cuda would store
    if (lane == 0) {
      const float b = bias ? __half2float(bias[row]) : 0.f;
#pragma unroll
      for (int i = 0; i < M; i++) gu[threadIdx.x >> 5][i] = __float2half(acc[i] + b);
    }
    __syncthreads();
    if (threadIdx.x < kCols * M) {
      const int i = threadIdx.x / kCols, cc = threadIdx.x % kCols;
      y[(size_t)i * ldy + blockIdx.x * kCols + cc] =
          __float2half(silu_mul_f32(__half2float(gu[cc][i]), __half2float(gu[kCols + cc][i])));
    }
  } else {
    if (lane == 0) {
      const float b = bias ? __half2float(bias[row]) : 0.f;
#pragma unroll
      for (int i = 0; i < M; i++) store_out(y + (size_t)i * ldy + row, acc[i] + b);
    }
  }
}

bool pdl_enabled() {
  static const bool sm90 = [] {
    int dev = 0, major = 0;
    if (cudaGetDevice(&dev) != cudaSuccess || cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess)
      return false;
    return major >= 9;
  }();
  const char* e = std::getenv("LMFLEET_PDL");  // read at each launch: a benchmark may switch it between engines
  return sm90 && !(e && std::string(e) == "0");
}

bool pdl_early_trigger() { return env_switch("LMFLEET_PDL_EARLY", false); }

// default on since session 6 (W4 batch 1 2.285 -> 2.224 ms/step in one process); =0: off
bool pdl_preload() { return env_switch("LMFLEET_PDL_PRELOAD", true); }

int gemv_max_rows() {
  const char* e = std::getenv("LMFLEET_GEMV_ROWS");
  if (!e || !*e) return kGemvDefaultRows;
  return std::max(0, std::min(kGemvMaxRows, std::atoi(e)));
}

int l2_prefetch_kb() {
  if (!pdl_enabled()) return 0;  // the prefetch goes out before griddepcontrol.wait: without PDL nothing runs meanwhile
  const char* e = std::getenv("LMFLEET_L2_PREFETCH");
  const int v = e ? std::atoi(e) : 0;
  return v > 0 ? v : 0;
}

bool pdl_chain_enabled() {
  const char* e = std::getenv("LMFLEET_PDL");
  return pdl_enabled() && !(e && std::string(e) == "gemv");
}

// A launch that may overlap the previous kernel on the stream (programmatic stream serialization) when
// pdl_enabled(); the kernel must pdl_wait() before reading what that kernel writes.
template <typename... KArgs, typename... Args>
static void launch_pdl(void (*kern)(KArgs...), dim3 grid, dim3 block, cudaStream_t s, Args... args) {
  LMF_CUDA_CHECK(launch_maybe_pdl(pdl_enabled(), kern, grid, block, s, args...));
}

// kSilu: n is inter (the output width; W has 2n rows), a multiple of kRowsPerBlock / 2 (gemv_silu_cuda checks)
template <typename OutT, bool kSilu = false>
static void launch(const half* x, int ldx, const half* w, const half* bias, OutT* y, int ldy, int m, int n, int k,
                   cudaStream_t s) {
  if (m <= 0 || n <= 0) return;
  if (m > kGemvMaxRows) fail(ErrorCode::InvalidArgument, "gemv: more rows than kGemvMaxRows");
  if (k % 8 || ldx % 8) fail(ErrorCode::InvalidArgument, "gemv: k and ldx must be multiples of 8");
  const dim3 grid(kSilu ? n / (kRowsPerBlock / 2) : (n + kRowsPerBlock - 1) / kRowsPerBlock), block(kRowsPerBlock * 32);
  const int l2pf = l2_prefetch_kb(), early = pdl_early_trigger() ? 1 : 0;
  switch (m) {
#define LMF_GEMV_CASE(M) \
  case M: launch_pdl(gemv_kernel<M, OutT, kSilu>, grid, block, s, x, ldx, w, bias, y, ldy, n, k, l2pf, early); break;
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
void gemv_silu_cuda(const half* x, int ldx, const half* w, const half* bias, half* out, int ldo, int m, int inter, int k,
                    cudaStream_t s) {
  if (m > kGemvMaxRows) fail(ErrorCode::InvalidArgument, "gemv_silu: more rows than kGemvMaxRows (the caller checks m <= gemv_max_rows())");
  if (inter % (kRowsPerBlock / 2))
    fail(ErrorCode::InvalidArgument, "gemv_silu: inter must be a multiple of 4 (the caller keeps gemv + silu_mul otherwise)");
  launch<half, true>(x, ldx, w, bias, out, ldo, m, inter, k, s);
}

bool fuse_silu_enabled() { return env_switch("LMFLEET_FUSE_SILU", true); }

}  // namespace lmfleet
