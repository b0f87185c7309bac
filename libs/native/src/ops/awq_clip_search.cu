#include <string>

#include "cuda/check.cuh"
#include "ops/awq_clip_search.cuh"
#include "ops/awq_clip_search.h"

namespace lmfleet {

namespace {

constexpr int kRows = 64;  // rows per block
constexpr int kTok = 64;   // tokens per tile
constexpr int kPad = 4;    // smem row padding (floats)

// Block: one input group g and 64 output rows; 256 threads = 16 x 16, each a 4-row x 4-token tile of dot products.
// Per step: residuals of the 64 rows (a warp per row) into Rs[k][row]; then X tiles [tokens 64][G] into
// Xs[k][token]; dots with fmaf in k order (as the CPU reference); squares summed in f64 per thread, then per row in
// a fixed order; the first step with the smallest error wins.
template <int G>
__global__ void __launch_bounds__(256) awq_clip_search_kernel(const float* __restrict__ w, const float* __restrict__ x,
                                                              float* __restrict__ clip, float* __restrict__ err,
                                                              int64_t rows, int64_t cols, int64_t tokens, int qmax,
                                                              int steps, int n_grid) {
  extern __shared__ float smem[];
  float* Rs = smem;                          // [G][kRows + kPad]
  float* Xs = Rs + G * (kRows + kPad);       // [G][kTok + kPad]
  __shared__ double part[kRows][16];
  __shared__ float org[kRows];
  __shared__ double best[kRows];
  __shared__ int best_step[kRows];
  constexpr int PER_LANE = G / 32;
  const int64_t groups = cols / G;
  const int64_t g = blockIdx.x, r0 = (int64_t)blockIdx.y * kRows;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int tx = tid & 15, ty = tid >> 4;
  // max |w| per row of the group
  for (int rr = warp; rr < kRows; rr += 8) {
    const int64_t o = r0 + rr;
    float m = 0.f;
    if (o < rows)
      for (int j = 0; j < PER_LANE; j++) m = fmaxf(m, fabsf(w[o * cols + g * G + lane + 32 * j]));
    for (int s = 16; s > 0; s >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, s));
    if (lane == 0) {
      org[rr] = m;
      best[rr] = INFINITY;
      best_step[rr] = 0;
    }
  }
  __syncthreads();
  for (int step = 0; step < steps; step++) {
    for (int rr = warp; rr < kRows; rr += 8) {
      const int64_t o = r0 + rr;
      if (o >= rows) {
        for (int j = 0; j < PER_LANE; j++) Rs[(lane + 32 * j) * (kRows + kPad) + rr] = 0.f;
        continue;
      }
      const float c = awq_clip_value(org[rr], step, n_grid);
      float wv[PER_LANE], v[PER_LANE], mn = INFINITY, mx = -INFINITY;
      for (int j = 0; j < PER_LANE; j++) {
        wv[j] = w[o * cols + g * G + lane + 32 * j];
        v[j] = awq_clamp(wv[j], c);
        mn = fminf(mn, v[j]);
        mx = fmaxf(mx, v[j]);
      }
      for (int s = 16; s > 0; s >>= 1) {
        mn = fminf(mn, __shfl_xor_sync(0xffffffffu, mn, s));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, s));
      }
      float sc;
      int z;
      awq_group_params(mn, mx, qmax, &sc, &z);
      for (int j = 0; j < PER_LANE; j++) {
        const double q = awq_js_round(__ddiv_rn((double)v[j], (double)sc)) + z;
        const int qi = (int)(q < 0 ? 0 : (q > qmax ? qmax : q));
        Rs[(lane + 32 * j) * (kRows + kPad) + rr] = __fsub_rn(__fmul_rn((float)(qi - z), sc), wv[j]);
      }
    }
    double sq[4] = {0, 0, 0, 0};
    for (int64_t t0 = 0; t0 < tokens; t0 += kTok) {
      __syncthreads();  // Rs written / previous tile consumed
      for (int i = tid; i < kTok * G; i += 256) {
        const int tt = i / G, k = i - tt * G;
        const int64_t t = t0 + tt;
        Xs[k * (kTok + kPad) + tt] = t < tokens ? x[t * cols + g * G + k] : 0.f;
      }
      __syncthreads();
      float acc[4][4];
      for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) acc[i][j] = 0.f;
#pragma unroll 8
      for (int k = 0; k < G; k++) {
        const float4 rv = *reinterpret_cast<const float4*>(&Rs[k * (kRows + kPad) + ty * 4]);
        const float4 xv = *reinterpret_cast<const float4*>(&Xs[k * (kTok + kPad) + tx * 4]);
        const float ra[4] = {rv.x, rv.y, rv.z, rv.w}, xa[4] = {xv.x, xv.y, xv.z, xv.w};
        for (int i = 0; i < 4; i++)
          for (int j = 0; j < 4; j++) acc[i][j] = fmaf(xa[j], ra[i], acc[i][j]);
      }
      for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++)
          if (t0 + tx * 4 + j < tokens) sq[i] = __dadd_rn(sq[i], __dmul_rn((double)acc[i][j], (double)acc[i][j]));
    }
    for (int i = 0; i < 4; i++) part[ty * 4 + i][tx] = sq[i];
    __syncthreads();
    if (tid < kRows) {
      double e = 0;
      for (int j = 0; j < 16; j++) e = __dadd_rn(e, part[tid][j]);
      if (e < best[tid]) {
        best[tid] = e;
        best_step[tid] = step;
      }
    }
    __syncthreads();
  }
  if (tid < kRows && r0 + tid < rows) {
    clip[(r0 + tid) * groups + g] = awq_clip_value(org[tid], best_step[tid], n_grid);
    err[(r0 + tid) * groups + g] = (float)best[tid];
  }
}

template <int G>
void launch(const float* w, const float* x, float* clip, float* err, int64_t rows, int64_t cols, int64_t tokens,
            int qmax, int steps, int n_grid, cudaStream_t s) {
  const size_t smem = (size_t)G * ((kRows + kPad) + (kTok + kPad)) * sizeof(float);
  LMF_CUDA_CHECK(cudaFuncSetAttribute(awq_clip_search_kernel<G>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
  const dim3 grid((unsigned)(cols / G), (unsigned)((rows + kRows - 1) / kRows));
  awq_clip_search_kernel<G><<<grid, 256, smem, s>>>(w, x, clip, err, rows, cols, tokens, qmax, steps, n_grid);
  LMF_CUDA_LAUNCHED();
}

}  // namespace

void awq_clip_search_cuda(const float* w, const float* x, float* clip, float* err, int64_t rows, int64_t cols,
                          int64_t tokens, int bits, int group, int steps, int n_grid, cudaStream_t s) {
  if (rows <= 0 || cols <= 0) return;
  const int qmax = (1 << bits) - 1;
  switch (group) {
    case 32: launch<32>(w, x, clip, err, rows, cols, tokens, qmax, steps, n_grid, s); break;
    case 64: launch<64>(w, x, clip, err, rows, cols, tokens, qmax, steps, n_grid, s); break;
    case 128: launch<128>(w, x, clip, err, rows, cols, tokens, qmax, steps, n_grid, s); break;
    default: fail(ErrorCode::InvalidArgument, "awq_clip_search: group must be 32, 64 or 128, got " + std::to_string(group));
  }
}

}  // namespace lmfleet
