// Paged attention: flash-decoding for one query token per sequence, and a tiled causal prefill kernel on tensor
// cores (WMMA 16x16x16, f16 in, f32 accumulate). Softmax in the exp2 domain (scores pre-multiplied by log2 e).
#include <mma.h>

#include <cstdlib>
#include <string>

#include "cuda/check.cuh"
#include "core/env.h"
#include "cuda/device_utils.cuh"
#include "ops/attention.cuh"
#include "ops/linear.cuh"

namespace lmfleet {

// the head dims both attention kernels are instantiated for: M(HD, QP) returns from the calling function
#define LMF_FOR_HEAD_DIMS(M, QP) \
  switch (hd) {                  \
    case 16: M(16, QP);          \
    case 32: M(32, QP);          \
    case 64: M(64, QP);          \
    case 96: M(96, QP);          \
    case 128: M(128, QP);        \
    case 256: M(256, QP);        \
  }

namespace {
constexpr float kLog2e = 1.4426950408889634f;
constexpr int kDecodeWarps = 4;

__device__ __forceinline__ const half* kv_row(const half* cache, const int* bt, int t, int kvh, int nkv,
                                              int block_size, int hd) {
  const int blk = bt[t / block_size];
  return cache + (((size_t)blk * block_size + (t % block_size)) * nkv + kvh) * hd;
}

// Quantized caches (ops/kv_quant.h): QP = 0 (f16), 8 (int8) or 4 (int4). A lane reads 8 consecutive values of a
// row: 16 B of f16, 8 B of int8 or 4 B of int4, plus the row's (scale, zero).
template <int QP> struct KvChunk { using T = uint4; };
template <> struct KvChunk<8> { using T = uint2; };
template <> struct KvChunk<4> { using T = uint32_t; };

__device__ __forceinline__ size_t kv_row_index(const int* bt, int t, int kvh, int nkv, int block_size) {
  return ((size_t)bt[t / block_size] * block_size + (t % block_size)) * nkv + kvh;
}

// the 8 values [c8 * 8, c8 * 8 + 8) of row `row`
template <int QP, int HD>
__device__ __forceinline__ typename KvChunk<QP>::T kv_load8(const void* cache, size_t row, int c8) {
  using T = typename KvChunk<QP>::T;
  constexpr int RB = QP == 0 ? HD * 2 : (QP == 8 ? HD : HD / 2);  // bytes per row
  return __ldg(reinterpret_cast<const T*>(static_cast<const char*>(cache) + row * RB) + c8);
}

__device__ __forceinline__ float2 kv_param(const float* param, size_t row) {
  return __ldg(reinterpret_cast<const float2*>(param) + row);
}

template <int QP>
__device__ __forceinline__ void kv_to_float8(const typename KvChunk<QP>::T& raw, float2 sz, float* f) {
  if constexpr (QP == 0) {
    half8_to_float(*reinterpret_cast<const half8*>(&raw), f);
  } else if constexpr (QP == 8) {
    const uint32_t w[2] = {raw.x, raw.y};
#pragma unroll
    for (int i = 0; i < 8; i++) f[i] = (float)((w[i / 4] >> (8 * (i % 4))) & 0xffu) * sz.x + sz.y;
  } else {
#pragma unroll
    for (int i = 0; i < 8; i++) f[i] = (float)((raw >> (4 * i)) & 0xfu) * sz.x + sz.y;
  }
}

// A lane group holds one token's row, 8 dims per lane: HD / 8 lanes, rounded up to a power of two (head_dim 96:
// 12 of a group's 16 lanes hold dims, the other 4 hold zeros).
template <int HD>
__host__ __device__ constexpr int lane_group() {
  return HD / 8 <= 2 ? HD / 8 : HD / 8 <= 4 ? 4 : HD / 8 <= 8 ? 8 : HD / 8 <= 16 ? 16 : 32;
}
// Sliding-window attention: a query at position p sees keys (p - window, p]; window <= 0: every key up to p. For a
// decode query (p = ctx - 1) that is keys [window_lo, ctx).
__device__ __forceinline__ int window_lo(int ctx, int window) { return window > 0 && ctx > window ? ctx - window : 0; }

// Gemma 2's attention logit soft-capping, on a score in log2 units: cap = softcap * log2 e (0: off), so
// cap tanh(s / cap) is softcap tanh(x / softcap) of the natural-unit score x, times log2 e
// (tanh.approx: one MUFU op, relative error ~2^-11, below the f16 rounding of the scores' inputs; no slow-path division)
__device__ __forceinline__ float soft_cap(float s, float cap) {
  if (cap <= 0.f) return s;
  float t;
  asm("tanh.approx.f32 %0, %1;" : "=f"(t) : "f"(__fdividef(s, cap)));
  return cap * t;
}

// this lane's 8 dims of each of the G query rows, pre-multiplied by scale * log2 e (zeros on a lane past the row)
template <int G, int HD>
__device__ __forceinline__ void load_q8(const half* q, int ldq, int b, int hg, int sub, float scale_log2,
                                        float (&qf)[G][8]) {
#pragma unroll
  for (int g = 0; g < G; g++) {
    if (lane_group<HD>() != HD / 8 && sub >= HD / 8) {
#pragma unroll
      for (int i = 0; i < 8; i++) qf[g][i] = 0.f;
      continue;
    }
    half8_to_float(ldg_half8(q + (size_t)b * ldq + (hg * G + g) * HD + sub * 8), qf[g]);
#pragma unroll
    for (int i = 0; i < 8; i++) qf[g][i] *= scale_log2;
  }
}

// one query row's score against the key row a lane group of TPT lanes holds (8 dims each); every lane of the group
// gets the sum
template <int TPT>
__device__ __forceinline__ float qk_score(const float (&qf)[8], const float (&kf)[8]) {
  float d = 0.f;
#pragma unroll
  for (int i = 0; i < 8; i++) d += qf[i] * kf[i];
#pragma unroll
  for (int o = TPT / 2; o > 0; o >>= 1) d += __shfl_xor_sync(0xffffffffu, d, o);
  return d;
}
}  // namespace

// grid (max_splits, nkv, batch); 128 threads. A group of TPT = HD/8 lanes holds one token's row (16 B per lane);
// a warp covers 32/TPT tokens per step. All G query heads of the kv head share each K/V load.
template <int HD, int G, int QP>
__global__ void __launch_bounds__(kDecodeWarps * 32)
attention_decode_kernel(const half* __restrict__ q, int ldq, const half* __restrict__ k_cache,
                        const half* __restrict__ v_cache, const int* __restrict__ block_tables, int max_blocks,
                        const int* __restrict__ ctx_lens, half* __restrict__ out, int ldo, int nh, int nkv,
                        int block_size, float scale_log2, int split_len, int max_splits, float* __restrict__ o_part,
                        float* __restrict__ ml_part, const float* __restrict__ k_param,
                        const float* __restrict__ v_param, int kv_rep, int window, int pre, float cap) {
  pdl_trigger();  // the o projection's GEMV may start streaming weights (see device_utils.cuh)
  // pre (pdl_preload): the host-staged context length before the wait (a split past the end leaves at once)
  // pre bit 1 (attn_prefetch): also the older K / V rows before the wait (below)
  const bool prefetch = QP == 0 && (pre & 2);
  pre &= 1;
  int ctx = pre ? ctx_lens[blockIdx.z] : 0;
  if (pre && (int)blockIdx.x * split_len >= ctx - window_lo(ctx, window)) return;
  using Chunk = typename KvChunk<QP>::T;
  constexpr int TPT = lane_group<HD>(), TPW = 32 / TPT, TPB = TPW * kDecodeWarps;
  constexpr int kUnroll = 4;  // tokens per lane group in flight (loads first, then the math)
  extern __shared__ float scores[];  // [G][split_len]
  __shared__ float red[kDecodeWarps][G][HD];
  __shared__ float scratch[32];
  __shared__ float stat[2][G];

  // blockIdx.y = a group of G query heads [hg * G, hg * G + G); kv_rep such groups share kv head hg / kv_rep (more than
  // 8 query heads per kv head run as several groups, each reading the kv head's rows)
  const int b = blockIdx.z, hg = blockIdx.y, kvh = hg / kv_rep, split = blockIdx.x;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int sub = lane % TPT, tslot = lane / TPT;
  const bool live = TPT == HD / 8 || sub < HD / 8;  // this lane holds 8 dims of the row
  const int* bt = block_tables + (size_t)b * max_blocks;
  // pre, f16 cache: the K and V rows of the block's first kUnroll x TPB tokens before the wait, all but the newest
  // (ctx - 1, which the rope + KV store kernel before this one writes): the block table is host-staged and no kernel
  // of the step writes the older rows, so their loads overlap the kernels before this one. Same values, same math.
  const bool have_pre = prefetch && pre;  // kpre / vpre hold the first round's rows (but the newest token's)
  Chunk kpre[kUnroll], vpre[kUnroll];
  if (have_pre) {
    const int p0 = window_lo(ctx, window) + split * split_len, p1 = min(ctx, p0 + split_len);
#pragma unroll
    for (int u = 0; u < kUnroll; u++) {
      const int t = p0 + u * TPB + warp * TPW + tslot;
      kpre[u] = Chunk{};
      vpre[u] = Chunk{};
      if (live && t < p1 && t != ctx - 1) {
        const size_t row = kv_row_index(bt, t, kvh, nkv, block_size);
        kpre[u] = kv_load8<QP, HD>(k_cache, row, sub);
        vpre[u] = kv_load8<QP, HD>(v_cache, row, sub);
      }
    }
  }
  pdl_wait();     // launched as a programmatic dependent (pdl_chain_enabled) of the rope + KV store kernel
  if (!pre) ctx = ctx_lens[blockIdx.z];
  const int lo = window_lo(ctx, window), nsplit = (ctx - lo + split_len - 1) / split_len;
  if (split >= nsplit) return;
  const int t0 = lo + split * split_len, t1 = min(ctx, t0 + split_len);

  float qf[G][8];
  load_q8<G, HD>(q, ldq, b, hg, sub, scale_log2, qf);

  // scores: kUnroll tokens per lane group in flight (loads first, then the dot products)
  for (int base = t0; base < t1; base += TPB * kUnroll) {
    Chunk kr[kUnroll];
    float2 kp[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; u++) {
      const int t = base + u * TPB + warp * TPW + tslot;
      kr[u] = Chunk{};
      kp[u] = make_float2(0.f, 0.f);
      if (have_pre && base == t0 && t != ctx - 1) {
        kr[u] = kpre[u];
      } else if (live && t < t1) {
        const size_t row = kv_row_index(bt, t, kvh, nkv, block_size);
        kr[u] = kv_load8<QP, HD>(k_cache, row, sub);
        if constexpr (QP != 0) kp[u] = kv_param(k_param, row);
      }
    }
#pragma unroll
    for (int u = 0; u < kUnroll; u++) {
      const int t = base + u * TPB + warp * TPW + tslot;
      float kf[8];
      kv_to_float8<QP>(kr[u], kp[u], kf);
#pragma unroll
      for (int g = 0; g < G; g++) {
        const float d = soft_cap(qk_score<TPT>(qf[g], kf), cap);
        if (t < t1 && sub == 0) scores[g * split_len + (t - t0)] = d;
      }
    }
  }
  __syncthreads();
  const int n = t1 - t0;
#pragma unroll
  for (int g = 0; g < G; g++) {
    float mx = -INFINITY;
    for (int i = threadIdx.x; i < n; i += blockDim.x) mx = fmaxf(mx, scores[g * split_len + i]);
    mx = block_max(mx, scratch);
    float sum = 0.f;
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
      const float p = exp2f(scores[g * split_len + i] - mx);
      scores[g * split_len + i] = p;
      sum += p;
    }
    sum = block_sum(sum, scratch);
    if (threadIdx.x == 0) { stat[0][g] = mx; stat[1][g] = sum; }
  }
  __syncthreads();

  // p @ V
  float acc[G][8];
#pragma unroll
  for (int g = 0; g < G; g++)
#pragma unroll
    for (int i = 0; i < 8; i++) acc[g][i] = 0.f;
  for (int base = t0; base < t1; base += TPB * kUnroll) {
    Chunk vr[kUnroll];
    float2 vp[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; u++) {
      const int t = base + u * TPB + warp * TPW + tslot;
      vr[u] = Chunk{};
      vp[u] = make_float2(0.f, 0.f);
      if (have_pre && base == t0 && t != ctx - 1) {
        vr[u] = vpre[u];
      } else if (live && t < t1) {
        const size_t row = kv_row_index(bt, t, kvh, nkv, block_size);
        vr[u] = kv_load8<QP, HD>(v_cache, row, sub);
        if constexpr (QP != 0) vp[u] = kv_param(v_param, row);
      }
    }
#pragma unroll
    for (int u = 0; u < kUnroll; u++) {
      const int t = base + u * TPB + warp * TPW + tslot;
      if (t < t1) {
        float vf[8];
        kv_to_float8<QP>(vr[u], vp[u], vf);
#pragma unroll
        for (int g = 0; g < G; g++) {
          const float p = scores[g * split_len + (t - t0)];
#pragma unroll
          for (int i = 0; i < 8; i++) acc[g][i] += p * vf[i];
        }
      }
    }
  }
#pragma unroll
  for (int g = 0; g < G; g++)
#pragma unroll
    for (int i = 0; i < 8; i++) {
      float v = acc[g][i];
#pragma unroll
      for (int o = TPT; o < 32; o <<= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
      acc[g][i] = v;
    }
  if (tslot == 0 && live) {
#pragma unroll
    for (int g = 0; g < G; g++)
#pragma unroll
      for (int i = 0; i < 8; i++) red[warp][g][sub * 8 + i] = acc[g][i];
  }
  __syncthreads();
  for (int idx = threadIdx.x; idx < G * HD; idx += blockDim.x) {
    const int g = idx / HD, d = idx % HD;
    float v = 0.f;
#pragma unroll
    for (int w = 0; w < kDecodeWarps; w++) v += red[w][g][d];
    const int qh = hg * G + g;
    if (nsplit == 1) {
      out[(size_t)b * ldo + qh * HD + d] = __float2half(v / stat[1][g]);
    } else {
      const size_t pi = ((size_t)b * nh + qh) * max_splits + split;
      o_part[pi * HD + d] = v;
      if (d == 0) { ml_part[2 * pi] = stat[0][g]; ml_part[2 * pi + 1] = stat[1][g]; }
    }
  }
}

// Online-softmax decode (the default; LMFLEET_ATTN_ONLINE=0 takes the two-phase kernel above). The same grid, split
// and outputs (the combine kernel merges its splits unchanged), but each lane group keeps a running max, sum and p V
// over its own tokens. So a round's K and V rows are loaded together (one memory round trip per round, not a K phase
// and a V phase with the block's softmax between them), the next round's rows are in flight while this round computes,
// and no scores go through shared memory. The lane groups' states merge at the end (within the warp by shuffles, across
// warps through shared memory), each rescaled to the block's max: the same sums as the two-phase kernel, in another
// order. Measured on one H100 (7B fp16, engine, same process): batch 1 4.917 vs 4.941 ms/step, batch 64 8.064 vs
// 8.189; W4 batch 1 2.058 vs 2.084.
template <int G>
__host__ __device__ constexpr int online_unroll() { return G <= 2 ? 4 : G <= 4 ? 2 : 1; }

template <int HD, int G, int QP>
__global__ void __launch_bounds__(kDecodeWarps * 32)
attention_decode_online_kernel(const half* __restrict__ q, int ldq, const half* __restrict__ k_cache,
                               const half* __restrict__ v_cache, const int* __restrict__ block_tables, int max_blocks,
                               const int* __restrict__ ctx_lens, half* __restrict__ out, int ldo, int nh, int nkv,
                               int block_size, float scale_log2, int split_len, int max_splits,
                               float* __restrict__ o_part, float* __restrict__ ml_part,
                               const float* __restrict__ k_param, const float* __restrict__ v_param, int kv_rep,
                               int window, int pre, float cap) {
  pdl_trigger();
  const bool prefetch = QP == 0 && (pre & 2);  // as attention_decode_kernel: round 0's older rows before the wait
  pre &= 1;
  int ctx = pre ? ctx_lens[blockIdx.z] : 0;
  if (pre && (int)blockIdx.x * split_len >= ctx - window_lo(ctx, window)) return;
  using Chunk = typename KvChunk<QP>::T;
  constexpr int TPT = lane_group<HD>(), TPW = 32 / TPT, TPB = TPW * kDecodeWarps, U = online_unroll<G>(), R = TPB * U;
  __shared__ float red_acc[kDecodeWarps][G][HD];
  __shared__ float red_ml[kDecodeWarps][2][G];

  const int b = blockIdx.z, hg = blockIdx.y, kvh = hg / kv_rep, split = blockIdx.x;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int sub = lane % TPT, tw = warp * TPW + lane / TPT;  // tw: this lane group's token within a step of TPB
  const bool live = TPT == HD / 8 || sub < HD / 8;  // this lane holds 8 dims of the row
  const int* bt = block_tables + (size_t)b * max_blocks;
  // the round starting at `base`: token base + u * TPB + tw for u < U, rows past t1 (and `skip`) left zero
  auto load = [&](Chunk* kr, Chunk* vr, float2* kp, float2* vp, int base, int t1, int skip) {
#pragma unroll
    for (int u = 0; u < U; u++) {
      const int t = base + u * TPB + tw;
      kr[u] = Chunk{};
      vr[u] = Chunk{};
      kp[u] = vp[u] = make_float2(0.f, 0.f);
      if (live && t < t1 && t != skip) {
        const size_t row = kv_row_index(bt, t, kvh, nkv, block_size);
        kr[u] = kv_load8<QP, HD>(k_cache, row, sub);
        vr[u] = kv_load8<QP, HD>(v_cache, row, sub);
        if constexpr (QP != 0) {
          kp[u] = kv_param(k_param, row);
          vp[u] = kv_param(v_param, row);
        }
      }
    }
  };
  Chunk kc[U], vc[U];
  float2 kpc[U], vpc[U];
  const bool have_pre = prefetch && pre;
  if (have_pre) {  // all but the newest row (ctx - 1), which the rope + KV store kernel before this one writes
    const int p0 = window_lo(ctx, window) + split * split_len;
    load(kc, vc, kpc, vpc, p0, min(ctx, p0 + split_len), ctx - 1);
  }
  pdl_wait();
  if (!pre) ctx = ctx_lens[blockIdx.z];
  const int lo = window_lo(ctx, window), nsplit = (ctx - lo + split_len - 1) / split_len;
  if (split >= nsplit) return;
  const int t0 = lo + split * split_len, t1 = min(ctx, t0 + split_len);
  if (!have_pre) {
    load(kc, vc, kpc, vpc, t0, t1, -1);
  } else {
#pragma unroll
    for (int u = 0; u < U; u++)
      if (live && t0 + u * TPB + tw == ctx - 1) {  // the newest row, if it falls in round 0
        const size_t row = kv_row_index(bt, ctx - 1, kvh, nkv, block_size);
        kc[u] = kv_load8<QP, HD>(k_cache, row, sub);
        vc[u] = kv_load8<QP, HD>(v_cache, row, sub);
      }
  }

  float qf[G][8];
  load_q8<G, HD>(q, ldq, b, hg, sub, scale_log2, qf);
  float m[G], l[G], acc[G][8];
#pragma unroll
  for (int g = 0; g < G; g++) {
    m[g] = -INFINITY;
    l[g] = 0.f;
#pragma unroll
    for (int i = 0; i < 8; i++) acc[g][i] = 0.f;
  }

  for (int base = t0; base < t1; base += R) {
    Chunk kn[U], vn[U];
    float2 kpn[U], vpn[U];
    if (base + R < t1) load(kn, vn, kpn, vpn, base + R, t1, -1);  // the next round, in flight during this one
    float s[U][G];
#pragma unroll
    for (int u = 0; u < U; u++) {
      float kf[8];
      kv_to_float8<QP>(kc[u], kpc[u], kf);
#pragma unroll
      for (int g = 0; g < G; g++) {
        const float d = soft_cap(qk_score<TPT>(qf[g], kf), cap);
        s[u][g] = base + u * TPB + tw < t1 ? d : -INFINITY;
      }
    }
#pragma unroll
    for (int g = 0; g < G; g++) {
      float mn = m[g];
#pragma unroll
      for (int u = 0; u < U; u++) mn = fmaxf(mn, s[u][g]);
      if (mn != -INFINITY) {  // no token of this lane group yet: its state stays empty
        const float c = exp2f(m[g] - mn);  // 0 when m was -inf
        l[g] *= c;
#pragma unroll
        for (int i = 0; i < 8; i++) acc[g][i] *= c;
        m[g] = mn;
      }
    }
#pragma unroll
    for (int u = 0; u < U; u++) {
      if (base + u * TPB + tw >= t1) continue;  // uniform over the lane group
      float vf[8];
      kv_to_float8<QP>(vc[u], vpc[u], vf);
#pragma unroll
      for (int g = 0; g < G; g++) {
        const float p = exp2f(s[u][g] - m[g]);
        l[g] += p;
#pragma unroll
        for (int i = 0; i < 8; i++) acc[g][i] += p * vf[i];
      }
    }
#pragma unroll
    for (int u = 0; u < U; u++) {
      kc[u] = kn[u];
      vc[u] = vn[u];
      kpc[u] = kpn[u];
      vpc[u] = vpn[u];
    }
  }

  // the warp's lane groups (lanes TPT apart) merged, each side rescaled to the larger max
#pragma unroll
  for (int o = TPT; o < 32; o <<= 1)
#pragma unroll
    for (int g = 0; g < G; g++) {
      const float mo = __shfl_xor_sync(0xffffffffu, m[g], o), lo = __shfl_xor_sync(0xffffffffu, l[g], o);
      const float mx = fmaxf(m[g], mo);
      const float a = m[g] == -INFINITY ? 0.f : exp2f(m[g] - mx), bo = mo == -INFINITY ? 0.f : exp2f(mo - mx);
      l[g] = l[g] * a + lo * bo;
#pragma unroll
      for (int i = 0; i < 8; i++) acc[g][i] = acc[g][i] * a + __shfl_xor_sync(0xffffffffu, acc[g][i], o) * bo;
      m[g] = mx;
    }
  if (lane < TPT) {
#pragma unroll
    for (int g = 0; g < G; g++) {
      if (live)
#pragma unroll
        for (int i = 0; i < 8; i++) red_acc[warp][g][sub * 8 + i] = acc[g][i];
      if (lane == 0) {
        red_ml[warp][0][g] = m[g];
        red_ml[warp][1][g] = l[g];
      }
    }
  }
  __syncthreads();
  for (int idx = threadIdx.x; idx < G * HD; idx += blockDim.x) {
    const int g = idx / HD, d = idx % HD;
    float mx = -INFINITY;
#pragma unroll
    for (int w = 0; w < kDecodeWarps; w++) mx = fmaxf(mx, red_ml[w][0][g]);
    float v = 0.f, sum = 0.f;
#pragma unroll
    for (int w = 0; w < kDecodeWarps; w++) {
      const float mw = red_ml[w][0][g];
      if (mw == -INFINITY) continue;
      const float a = exp2f(mw - mx);
      v += a * red_acc[w][g][d];
      sum += a * red_ml[w][1][g];
    }
    const int qh = hg * G + g;
    if (nsplit == 1) {
      out[(size_t)b * ldo + qh * HD + d] = __float2half(v / sum);
    } else {
      const size_t pi = ((size_t)b * nh + qh) * max_splits + split;
      o_part[pi * HD + d] = v;
      if (d == 0) { ml_part[2 * pi] = mx; ml_part[2 * pi + 1] = sum; }
    }
  }
}

// grid (nh, batch), HD threads: merges the splits of sequences that had more than one.
template <int HD>
__global__ void attention_decode_combine_kernel(const int* __restrict__ ctx_lens, half* __restrict__ out, int ldo,
                                                int nh, int split_len, int max_splits,
                                                const float* __restrict__ o_part, const float* __restrict__ ml_part,
                                                int window, int pre) {
  pdl_trigger();  // see device_utils.cuh
  const int qh = blockIdx.x, b = blockIdx.y, d = threadIdx.x;
  int cl = pre ? ctx_lens[b] : 0;  // pre (pdl_preload): the host-staged context length before the wait
  if (pre && (cl - window_lo(cl, window) + split_len - 1) / split_len <= 1) return;
  pdl_wait();
  if (!pre) cl = ctx_lens[b];
  const int nsplit = (cl - window_lo(cl, window) + split_len - 1) / split_len;
  if (nsplit <= 1) return;
  const size_t p0 = ((size_t)b * nh + qh) * max_splits;
  float mx = -INFINITY;
  for (int i = 0; i < nsplit; i++) mx = fmaxf(mx, ml_part[2 * (p0 + i)]);
  float l = 0.f, o = 0.f;
  for (int i = 0; i < nsplit; i++) {
    const float w = exp2f(ml_part[2 * (p0 + i)] - mx);
    l += w * ml_part[2 * (p0 + i) + 1];
    o += w * o_part[(p0 + i) * HD + d];
  }
  out[(size_t)b * ldo + qh * HD + d] = __float2half(o / l);
}

// LMFLEET_ATTN_PREFETCH=0 turns the decode attention's early K / V loads off (read at each launch)
bool attn_prefetch() { return env_switch("LMFLEET_ATTN_PREFETCH", true); }
bool attn_online() { return env_switch("LMFLEET_ATTN_ONLINE", true); }

size_t attention_decode_workspace_bytes(int batch, int nh, int hd, int max_splits) {
  return (size_t)batch * nh * max_splits * (hd + 2) * sizeof(float);
}

template <int HD, int G, int QP>
static void launch_decode(const half* q, int ldq, const half* k_cache, const half* v_cache, const int* block_tables,
                          int max_blocks, const int* ctx_lens, half* out, int ldo, int batch, int nh, int nkv,
                          int block_size, float scale, int split_len, int max_splits, void* workspace,
                          cudaStream_t s, const float* k_param, const float* v_param, int kv_rep, int window,
                          bool prefetch_ok, float softcap) {
  float* o_part = static_cast<float*>(workspace);
  float* ml_part = o_part + (size_t)batch * nh * max_splits * HD;
  const bool online = attn_online();
  const size_t smem = online ? 0 : (size_t)G * split_len * sizeof(float);
  auto kern = online ? attention_decode_online_kernel<HD, G, QP> : attention_decode_kernel<HD, G, QP>;
  if (smem > 48 * 1024) LMF_CUDA_CHECK(cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
  dim3 grid(max_splits, nkv * kv_rep, batch);
  const bool pdl = pdl_chain_enabled();
  LMF_CUDA_CHECK(launch_maybe_pdl_smem(pdl, kern, grid, dim3(kDecodeWarps * 32), smem, s, q, ldq, k_cache, v_cache,
                                       block_tables, max_blocks, ctx_lens, out, ldo, nh, nkv, block_size, scale * kLog2e,
                                       split_len, max_splits, o_part, ml_part, k_param, v_param, kv_rep, window,
                                       (pdl_preload() ? 1 : 0) | (prefetch_ok && attn_prefetch() ? 2 : 0), softcap * kLog2e));
  if (max_splits > 1)
    LMF_CUDA_CHECK(launch_maybe_pdl(pdl, attention_decode_combine_kernel<HD>, dim3(nh, batch), dim3(HD), s, ctx_lens, out,
                                    ldo, nh, split_len, max_splits, o_part, ml_part, window, pdl_preload() ? 1 : 0));
}

template <int HD, int QP>
static void dispatch_group(int g, const half* q, int ldq, const half* k_cache, const half* v_cache,
                           const int* block_tables, int max_blocks, const int* ctx_lens, half* out, int ldo, int batch,
                           int nh, int nkv, int block_size, float scale, int split_len, int max_splits,
                           void* workspace, cudaStream_t s, const float* k_param, const float* v_param, int window,
                           bool prefetch_ok, float softcap) {
  // G query heads per block (register-resident): the largest divisor of the group that is <= 8
  int G = 8;
  while (g % G) G--;
  const int kv_rep = g / G;
#define LMF_DECODE_CASE(G)                                                                                   \
  case G:                                                                                                    \
    return launch_decode<HD, G, QP>(q, ldq, k_cache, v_cache, block_tables, max_blocks, ctx_lens, out, ldo, batch, \
                                    nh, nkv, block_size, scale, split_len, max_splits, workspace, s, k_param, v_param, \
                                    kv_rep, window, prefetch_ok, softcap);
  switch (G) {
    LMF_DECODE_CASE(1) LMF_DECODE_CASE(2) LMF_DECODE_CASE(3) LMF_DECODE_CASE(4)
    LMF_DECODE_CASE(5) LMF_DECODE_CASE(6) LMF_DECODE_CASE(7) LMF_DECODE_CASE(8)
    default: fail(ErrorCode::Internal, "attention: no decode kernel for " + std::to_string(G) + " heads per block");
  }
#undef LMF_DECODE_CASE
}

void attention_decode_cuda(const half* q, int ldq, const half* k_cache, const half* v_cache,
                           const int* block_tables, int max_blocks, const int* ctx_lens, half* out, int ldo,
                           int batch, int nh, int nkv, int hd, int block_size, float scale, int split_len,
                           int max_splits, void* workspace, cudaStream_t s, int quant_policy, const float* k_param,
                           const float* v_param, int window, bool prefetch_ok, float softcap) {
  if (batch <= 0) return;
  if (!(softcap >= 0)) fail(ErrorCode::InvalidArgument, "attention: softcap must be >= 0");
  if (nkv <= 0 || nh % nkv) fail(ErrorCode::InvalidArgument, "attention: num_heads must be a multiple of num_kv_heads");
  if (split_len <= 0 || max_splits <= 0) fail(ErrorCode::InvalidArgument, "attention: bad split_len/max_splits");
  if (quant_policy && (!k_param || !v_param)) fail(ErrorCode::InvalidArgument, "attention: a quantized cache needs its params");
  const int g = nh / nkv;
#define LMF_DECODE_HD(HD, QP)                                                                                 \
  return dispatch_group<HD, QP>(g, q, ldq, k_cache, v_cache, block_tables, max_blocks, ctx_lens, out, ldo, batch, nh, \
                                nkv, block_size, scale, split_len, max_splits, workspace, s, k_param, v_param, window, \
                                prefetch_ok, softcap)
  if (quant_policy == 0) {
    LMF_FOR_HEAD_DIMS(LMF_DECODE_HD, 0)
  } else if (quant_policy == 8) {
    LMF_FOR_HEAD_DIMS(LMF_DECODE_HD, 8)
  } else if (quant_policy == 4) {
    LMF_FOR_HEAD_DIMS(LMF_DECODE_HD, 4)
  } else {
    fail(ErrorCode::InvalidArgument, "attention: quant_policy must be 0, 4 or 8");
  }
#undef LMF_DECODE_HD
  fail(ErrorCode::InvalidArgument, "attention: head_dim " + std::to_string(hd) + " is not supported with quant_policy " +
                                       std::to_string(quant_policy) + " (16, 32, 64, 96, 128 or 256)");
}

// ---------------------------------------------------------------------------------------------------------------
// Prefill: grid (q tiles of 64, nh, num_seqs), 4 warps; warp w owns query rows [16w, 16w+16) of the tile, so the
// online softmax of its rows needs no block barrier. K/V tiles of 64 keys are gathered from the paged cache.
namespace {
constexpr int kBM = 64, kBN = 64;
template <int HD>
struct PrefillSmem {
  static constexpr int LDQ = HD + 8, LDS = kBN + 4, LDP = kBN + 8, LDO = HD + 4;
  static constexpr size_t q_off = 0;
  static constexpr size_t k_off = q_off + (size_t)kBM * LDQ * 2;
  static constexpr size_t v_off = k_off + (size_t)kBN * LDQ * 2;
  static constexpr size_t s_off = v_off + (size_t)kBN * LDQ * 2;
  static constexpr size_t p_off = s_off + (size_t)kBM * LDS * 4;
  static constexpr size_t o_off = p_off + (size_t)kBM * LDP * 2;
  static constexpr size_t m_off = o_off + (size_t)kBM * LDO * 4;
  static constexpr size_t bytes = m_off + 2 * kBM * 4;
};
}  // namespace

template <int HD>
__global__ void __launch_bounds__(128)
attention_prefill_kernel(const half* __restrict__ q, int ldq, const half* __restrict__ k_cache,
                         const half* __restrict__ v_cache, const int* __restrict__ block_tables, int max_blocks,
                         const int* __restrict__ q_starts, const int* __restrict__ q_lens,
                         const int* __restrict__ ctx_lens, half* __restrict__ out, int ldo, int nh, int nkv,
                         int block_size, float scale_log2, int window, float cap) {
  using namespace nvcuda;
  using L = PrefillSmem<HD>;
  extern __shared__ __align__(128) unsigned char smem[];
  half* Qs = reinterpret_cast<half*>(smem + L::q_off);
  half* Ks = reinterpret_cast<half*>(smem + L::k_off);
  half* Vs = reinterpret_cast<half*>(smem + L::v_off);
  float* S = reinterpret_cast<float*>(smem + L::s_off);
  half* P = reinterpret_cast<half*>(smem + L::p_off);
  float* O = reinterpret_cast<float*>(smem + L::o_off);
  float* M = reinterpret_cast<float*>(smem + L::m_off);
  float* Lsum = M + kBM;

  const int b = blockIdx.z, h = blockIdx.y;
  const int qtile = gridDim.x - 1 - blockIdx.x;  // longest tiles first
  const int ql = q_lens[b];
  if (qtile * kBM >= ql) return;
  const int ctx = ctx_lens[b], hist = ctx - ql, qs = q_starts[b];
  const int kvh = h / (nh / nkv);
  const int* bt = block_tables + (size_t)b * max_blocks;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  constexpr int CPR = HD / 8;  // 16-byte chunks per row

  for (int c = threadIdx.x; c < kBM * CPR; c += 128) {
    const int r = c / CPR, ch = c % CPR, i = qtile * kBM + r;
    uint4 v = make_uint4(0, 0, 0, 0);
    if (i < ql) v = __ldg(reinterpret_cast<const uint4*>(q + (size_t)(qs + i) * ldq + h * HD) + ch);
    *reinterpret_cast<uint4*>(Qs + r * L::LDQ + ch * 8) = v;
  }
  for (int c = threadIdx.x; c < kBM * HD; c += 128) O[(c / HD) * L::LDO + c % HD] = 0.f;
  if (threadIdx.x < kBM) { M[threadIdx.x] = -INFINITY; Lsum[threadIdx.x] = 0.f; }

  const int last_q = min(ql, (qtile + 1) * kBM) - 1;
  const int nkeys = hist + last_q + 1;
  for (int k0 = 0; k0 < nkeys; k0 += kBN) {
    __syncthreads();  // previous K/V tile consumed (and Q/O/M initialised on the first pass)
    for (int c = threadIdx.x; c < kBN * CPR; c += 128) {
      const int r = c / CPR, ch = c % CPR, t = k0 + r;
      uint4 kv = make_uint4(0, 0, 0, 0), vv = make_uint4(0, 0, 0, 0);
      if (t < nkeys) {
        kv = __ldg(reinterpret_cast<const uint4*>(kv_row(k_cache, bt, t, kvh, nkv, block_size, HD)) + ch);
        vv = __ldg(reinterpret_cast<const uint4*>(kv_row(v_cache, bt, t, kvh, nkv, block_size, HD)) + ch);
      }
      *reinterpret_cast<uint4*>(Ks + r * L::LDQ + ch * 8) = kv;
      *reinterpret_cast<uint4*>(Vs + r * L::LDQ + ch * 8) = vv;
    }
    __syncthreads();

    // S = Q K^T for this warp's 16 rows
    const int r0 = warp * 16;
#pragma unroll
    for (int nt = 0; nt < kBN / 16; nt++) {
      wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
      wmma::fill_fragment(acc, 0.f);
#pragma unroll
      for (int kk = 0; kk < HD / 16; kk++) {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, half, wmma::row_major> a;
        wmma::fragment<wmma::matrix_b, 16, 16, 16, half, wmma::col_major> bf;
        wmma::load_matrix_sync(a, Qs + r0 * L::LDQ + kk * 16, L::LDQ);
        wmma::load_matrix_sync(bf, Ks + nt * 16 * L::LDQ + kk * 16, L::LDQ);
        wmma::mma_sync(acc, a, bf, acc);
      }
      wmma::store_matrix_sync(S + r0 * L::LDS + nt * 16, acc, L::LDS, wmma::mem_row_major);
    }
    __syncwarp();

    // online softmax over the warp's rows
    for (int r = 0; r < 16; r++) {
      const int row = r0 + r;
      const int qpos = hist + qtile * kBM + row;
      float s[2];
#pragma unroll
      for (int j = 0; j < 2; j++) {
        const int c = lane + 32 * j, key = k0 + c;
        s[j] = (key <= qpos && key < ctx && (window <= 0 || key > qpos - window)) ? soft_cap(S[row * L::LDS + c] * scale_log2, cap)
                                                                                   : -INFINITY;
      }
      const float mold = M[row];
      const float mnew = fmaxf(mold, warp_max(fmaxf(s[0], s[1])));
      float alpha = 1.f, p0 = 0.f, p1 = 0.f;
      if (mnew != -INFINITY) {
        alpha = exp2f(mold - mnew);
        p0 = exp2f(s[0] - mnew);
        p1 = exp2f(s[1] - mnew);
      }
      const float rs = warp_sum(p0 + p1);
      P[row * L::LDP + lane] = __float2half(p0);
      P[row * L::LDP + lane + 32] = __float2half(p1);
      for (int d = lane; d < HD; d += 32) O[row * L::LDO + d] *= alpha;
      __syncwarp();
      if (lane == 0) { M[row] = mnew; Lsum[row] = Lsum[row] * alpha + rs; }
    }
    __syncwarp();

    // O += P V
#pragma unroll
    for (int dt = 0; dt < HD / 16; dt++) {
      wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
      wmma::load_matrix_sync(acc, O + r0 * L::LDO + dt * 16, L::LDO, wmma::mem_row_major);
#pragma unroll
      for (int kk = 0; kk < kBN / 16; kk++) {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, half, wmma::row_major> a;
        wmma::fragment<wmma::matrix_b, 16, 16, 16, half, wmma::row_major> bf;
        wmma::load_matrix_sync(a, P + r0 * L::LDP + kk * 16, L::LDP);
        wmma::load_matrix_sync(bf, Vs + kk * 16 * L::LDQ + dt * 16, L::LDQ);
        wmma::mma_sync(acc, a, bf, acc);
      }
      wmma::store_matrix_sync(O + r0 * L::LDO + dt * 16, acc, L::LDO, wmma::mem_row_major);
    }
    __syncwarp();
  }

  // write this warp's rows
  for (int r = 0; r < 16; r++) {
    const int row = warp * 16 + r, i = qtile * kBM + row;
    if (i >= ql) break;
    const float inv = 1.f / Lsum[row];
    for (int d = lane; d < HD; d += 32) out[(size_t)(qs + i) * ldo + h * HD + d] = __float2half(O[row * L::LDO + d] * inv);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Prefill, flash-attention-2 style on mma.sync m16n8k16 (f16 in, f32 accumulate): 4 warps x 16 query rows;
// Q fragments, scores and the output accumulator stay in registers (the documented m16n8 fragment layouts make
// the per-row rescale possible); K/V tiles of 64 keys are gathered from the paged cache by cp.async into a
// double buffer, so the next tile loads while this one computes.
namespace {
__device__ __forceinline__ uint32_t smem_u32(const void* p) { return (uint32_t)__cvta_generic_to_shared(p); }
__device__ __forceinline__ void ldsm_x4(uint32_t& r0, uint32_t& r1, uint32_t& r2, uint32_t& r3, const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];"
               : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3) : "r"(smem_u32(p)));
}
__device__ __forceinline__ void ldsm_x4_t(uint32_t& r0, uint32_t& r1, uint32_t& r2, uint32_t& r3, const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];"
               : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3) : "r"(smem_u32(p)));
}
__device__ __forceinline__ void mma_16816(float* c, const uint32_t* a, uint32_t b0, uint32_t b1) {
  asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
               : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
__device__ __forceinline__ void cp_async16(void* dst, const void* src, bool valid) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(smem_u32(dst)), "l"(src), "r"(valid ? 16 : 0));
}
__device__ __forceinline__ uint32_t pack_half2(float a, float b) {
  half2 h = __floats2half2_rn(a, b);
  return *reinterpret_cast<uint32_t*>(&h);
}
// keys per K / V tile: 64, or 32 for head_dim 256 so that Q and the double-buffered K / V tiles fit 99 KB of shared
// memory (sm_86's limit; 64 would need 165 KB)
template <int HD>
__host__ __device__ constexpr int fa2_bn() { return HD > 128 ? 32 : kBN; }
}  // namespace

template <int HD, int QP>
__global__ void __launch_bounds__(128)
attention_prefill_fa2_kernel(const half* __restrict__ q, int ldq, const half* __restrict__ k_cache,
                             const half* __restrict__ v_cache, const int* __restrict__ block_tables, int max_blocks,
                             const int* __restrict__ q_starts, const int* __restrict__ q_lens,
                             const int* __restrict__ ctx_lens, half* __restrict__ out, int ldo, int nh, int nkv,
                             int block_size, float scale_log2, const float* __restrict__ k_param,
                             const float* __restrict__ v_param, int window, float cap) {
  constexpr int BN = fa2_bn<HD>();  // keys per tile
  constexpr int LD = HD + 8;  // halves per smem row (16 B pad: conflict-free ldmatrix)
  constexpr int CPR = HD / 8;
  constexpr int KS = HD / 16;  // k-steps over head dims
  constexpr int NB = BN / 8;   // 8-key blocks per tile
  constexpr int DB = HD / 8;   // 8-dim blocks of the output
  // Q's fragments stay in registers up to head_dim 128; wider heads (256: 64 more registers beside the 128 of the
  // output accumulator) read them from shared memory at each k-step instead
  constexpr bool QREG = HD <= 128;
  extern __shared__ __align__(128) unsigned char smem[];
  half* Qs = reinterpret_cast<half*>(smem);
  half* Ks = Qs + kBM * LD;      // [2][BN][LD]
  half* Vs = Ks + 2 * BN * LD;   // [2][BN][LD]

  const int b = blockIdx.z, h = blockIdx.y;
  const int qtile = gridDim.x - 1 - blockIdx.x;
  const int ql = q_lens[b];
  if (qtile * kBM >= ql) return;
  const int ctx = ctx_lens[b], hist = ctx - ql, qs = q_starts[b];
  const int kvh = h / (nh / nkv);
  const int* bt = block_tables + (size_t)b * max_blocks;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int g = lane >> 2, t4 = lane & 3;
  const int last_q = min(ql, (qtile + 1) * kBM) - 1;
  const int nkeys = hist + last_q + 1;
  const int ntiles = (nkeys + BN - 1) / BN;
  // sliding window: the tile's first query (position hist + qtile * kBM) sees no key before this tile
  const int tile0 = window > 0 ? max(0, hist + qtile * kBM - window + 1) / BN : 0;

  auto load_kv = [&](int tile, int buf) {  // f16 cache: cp.async straight into the tile
    half* kd = Ks + buf * BN * LD;
    half* vd = Vs + buf * BN * LD;
    for (int c = threadIdx.x; c < BN * CPR; c += 128) {
      const int r = c / CPR, ch = c % CPR, t = tile * BN + r;
      const bool ok = t < nkeys;
      const half* ks = ok ? kv_row(k_cache, bt, t, kvh, nkv, block_size, HD) + ch * 8 : k_cache;
      const half* vs = ok ? kv_row(v_cache, bt, t, kvh, nkv, block_size, HD) + ch * 8 : v_cache;
      cp_async16(kd + r * LD + ch * 8, ks, ok);
      cp_async16(vd + r * LD + ch * 8, vs, ok);
    }
  };
  // Quantized cache: the next tile's raw rows are loaded into registers before this tile's math and dequantized
  // into the (free) other buffer after it, so the loads overlap the math as cp.async does for f16.
  using Chunk = typename KvChunk<QP>::T;
  constexpr int NCH = QP == 0 ? 1 : (BN * CPR) / 128;  // chunks of 8 values per thread and tile
  Chunk rk[NCH], rv[NCH];
  float2 pk[NCH], pv[NCH];
  auto fetch_raw = [&](int tile) {
#pragma unroll
    for (int j = 0; j < NCH; j++) {
      const int c = threadIdx.x + j * 128, r = c / CPR, ch = c % CPR, t = tile * BN + r;
      rk[j] = rv[j] = Chunk{};
      pk[j] = pv[j] = make_float2(0.f, 0.f);
      if (t < nkeys) {
        const size_t row = kv_row_index(bt, t, kvh, nkv, block_size);
        rk[j] = kv_load8<QP, HD>(k_cache, row, ch);
        rv[j] = kv_load8<QP, HD>(v_cache, row, ch);
        pk[j] = kv_param(k_param, row);
        pv[j] = kv_param(v_param, row);
      }
    }
  };
  auto store_deq = [&](int buf) {
    half* kd = Ks + buf * BN * LD;
    half* vd = Vs + buf * BN * LD;
#pragma unroll
    for (int j = 0; j < NCH; j++) {
      const int c = threadIdx.x + j * 128, r = c / CPR, ch = c % CPR;
      float kf[8], vf[8];
      kv_to_float8<QP>(rk[j], pk[j], kf);  // rows past the keys: q 0, scale 0, zero 0 -> zeros
      kv_to_float8<QP>(rv[j], pv[j], vf);
      *reinterpret_cast<half8*>(kd + r * LD + ch * 8) = float_to_half8(kf);
      *reinterpret_cast<half8*>(vd + r * LD + ch * 8) = float_to_half8(vf);
    }
  };

  for (int c = threadIdx.x; c < kBM * CPR; c += 128) {
    const int r = c / CPR, ch = c % CPR, i = qtile * kBM + r;
    cp_async16(Qs + r * LD + ch * 8, i < ql ? q + (size_t)(qs + i) * ldq + h * HD + ch * 8 : q, i < ql);
  }
  if constexpr (QP == 0) {
    load_kv(tile0, 0);
  } else {
    fetch_raw(tile0);
    store_deq(0);
  }
  asm volatile("cp.async.commit_group;\n" ::);

  uint32_t qf[QREG ? KS : 1][4];
  float o[DB][4];
#pragma unroll
  for (int i = 0; i < DB; i++) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.f;
  float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.f, l1 = 0.f;  // rows g and g+8 of this warp
  const int row0 = warp * 16 + g;
  const int qpos0 = hist + qtile * kBM + row0, qpos1 = qpos0 + 8;

  for (int tile = tile0; tile < ntiles; tile++) {
    const int buf = (tile - tile0) & 1;
    if constexpr (QP == 0) {
      if (tile + 1 < ntiles) {
        load_kv(tile + 1, buf ^ 1);
        asm volatile("cp.async.commit_group;\n" ::);
        asm volatile("cp.async.wait_group 1;\n" ::);
      } else {
        asm volatile("cp.async.wait_group 0;\n" ::);
      }
    } else {
      if (tile + 1 < ntiles) fetch_raw(tile + 1);  // consumed by store_deq after this tile's math
      asm volatile("cp.async.wait_group 0;\n" ::);  // Q
    }
    __syncthreads();
    const int qr = warp * 16 + (lane & 7) + ((lane >> 3) & 1) * 8;  // this lane's Q row for ldmatrix
    if (QREG && tile == tile0) {
#pragma unroll
      for (int kk = 0; kk < (QREG ? KS : 0); kk++)
        ldsm_x4(qf[kk][0], qf[kk][1], qf[kk][2], qf[kk][3], Qs + qr * LD + kk * 16 + (lane >> 4) * 8);
    }
    const half* kb = Ks + buf * BN * LD;
    const half* vb = Vs + buf * BN * LD;
    // S = Q K^T  (16 x 64 per warp)
    float sc[NB][4];
#pragma unroll
    for (int nb = 0; nb < NB; nb++) sc[nb][0] = sc[nb][1] = sc[nb][2] = sc[nb][3] = 0.f;
#pragma unroll
    for (int kk = 0; kk < KS; kk++) {
      uint32_t qa[4];
      if constexpr (QREG) {
        qa[0] = qf[kk][0]; qa[1] = qf[kk][1]; qa[2] = qf[kk][2]; qa[3] = qf[kk][3];
      } else {
        ldsm_x4(qa[0], qa[1], qa[2], qa[3], Qs + qr * LD + kk * 16 + (lane >> 4) * 8);
      }
#pragma unroll
      for (int nb = 0; nb < NB; nb += 2) {
        uint32_t b0, b1, b2, b3;
        const int key = nb * 8 + (lane & 7) + (lane >> 4) * 8, col = kk * 16 + ((lane >> 3) & 1) * 8;
        ldsm_x4(b0, b1, b2, b3, kb + key * LD + col);
        mma_16816(sc[nb], qa, b0, b1);
        mma_16816(sc[nb + 1], qa, b2, b3);
      }
    }
    // mask + online softmax (rows g: elements 0,1; row g+8: elements 2,3)
    const int k0 = tile * BN;
    float mx0 = -INFINITY, mx1 = -INFINITY;
    const float sl = cap > 0.f ? 1.f : scale_log2;  // (soft-capped scores are scaled already)
    if (cap > 0.f) {
#pragma unroll
      for (int nb = 0; nb < NB; nb++)
#pragma unroll
        for (int e = 0; e < 4; e++) sc[nb][e] = soft_cap(sc[nb][e] * scale_log2, cap);
    }
#pragma unroll
    for (int nb = 0; nb < NB; nb++) {
#pragma unroll
      for (int e = 0; e < 4; e++) {
        const int key = k0 + nb * 8 + t4 * 2 + (e & 1);
        const int qp = e < 2 ? qpos0 : qpos1;
        const bool seen = key <= qp && key < ctx && (window <= 0 || key > qp - window);
        const float v = seen ? sc[nb][e] * sl : -INFINITY;
        sc[nb][e] = v;
        if (e < 2) mx0 = fmaxf(mx0, v); else mx1 = fmaxf(mx1, v);
      }
    }
#pragma unroll
    for (int off = 1; off < 4; off <<= 1) {
      mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, off));
      mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, off));
    }
    const float mn0 = fmaxf(m0, mx0), mn1 = fmaxf(m1, mx1);
    const float ref0 = mn0 == -INFINITY ? 0.f : mn0, ref1 = mn1 == -INFINITY ? 0.f : mn1;
    const float a0 = exp2f(m0 - ref0), a1 = exp2f(m1 - ref1);
    m0 = mn0;
    m1 = mn1;
    float s0 = 0.f, s1 = 0.f;
    uint32_t pf[NB / 2][4];  // P as A fragments, one per 16-key step
#pragma unroll
    for (int nb = 0; nb < NB; nb++) {
      const float p0 = exp2f(sc[nb][0] - ref0), p1 = exp2f(sc[nb][1] - ref0);
      const float p2 = exp2f(sc[nb][2] - ref1), p3 = exp2f(sc[nb][3] - ref1);
      s0 += p0 + p1;
      s1 += p2 + p3;
      pf[nb / 2][(nb & 1) * 2 + 0] = pack_half2(p0, p1);
      pf[nb / 2][(nb & 1) * 2 + 1] = pack_half2(p2, p3);
    }
#pragma unroll
    for (int off = 1; off < 4; off <<= 1) {
      s0 += __shfl_xor_sync(0xffffffffu, s0, off);
      s1 += __shfl_xor_sync(0xffffffffu, s1, off);
    }
    l0 = l0 * a0 + s0;
    l1 = l1 * a1 + s1;
#pragma unroll
    for (int i = 0; i < DB; i++) {
      o[i][0] *= a0; o[i][1] *= a0; o[i][2] *= a1; o[i][3] *= a1;
    }
    // O += P V
#pragma unroll
    for (int kk = 0; kk < BN / 16; kk++) {
#pragma unroll
      for (int db = 0; db < DB; db += 2) {
        uint32_t b0, b1, b2, b3;
        const int key = kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8, dim = db * 8 + (lane >> 4) * 8;
        ldsm_x4_t(b0, b1, b2, b3, vb + key * LD + dim);
        mma_16816(o[db], pf[kk], b0, b1);
        mma_16816(o[db + 1], pf[kk], b2, b3);
      }
    }
    if constexpr (QP != 0) {
      if (tile + 1 < ntiles) store_deq(buf ^ 1);  // the other buffer: free since the last iteration's barrier
    }
    __syncthreads();  // this buffer is refilled two tiles later
  }
  const int i0 = qtile * kBM + row0, i1 = i0 + 8;
  const float inv0 = 1.f / l0, inv1 = 1.f / l1;
#pragma unroll
  for (int db = 0; db < DB; db++) {
    const int d = h * HD + db * 8 + t4 * 2;
    if (i0 < ql) *reinterpret_cast<half2*>(out + (size_t)(qs + i0) * ldo + d) = __floats2half2_rn(o[db][0] * inv0, o[db][1] * inv0);
    if (i1 < ql) *reinterpret_cast<half2*>(out + (size_t)(qs + i1) * ldo + d) = __floats2half2_rn(o[db][2] * inv1, o[db][3] * inv1);
  }
}

int g_attention_prefill_impl = 1;  // 1: mma.sync flash-attention-2 kernel; 0: the WMMA kernel (reference/fallback)

template <int HD, int QP>
static void launch_prefill(const half* q, int ldq, const half* k_cache, const half* v_cache, const int* block_tables,
                           int max_blocks, const int* q_starts, const int* q_lens, const int* ctx_lens, half* out,
                           int ldo, int num_seqs, int max_q_len, int nh, int nkv, int block_size, float scale,
                           cudaStream_t s, const float* k_param, const float* v_param, int window, float softcap) {
  // the WMMA kernel (impl 0) is the cross-check for the f16 cache at head_dim 64/128; everything else takes FA2
  if (g_attention_prefill_impl == 1 || QP != 0 || (HD != 64 && HD != 128)) {
    auto kern = attention_prefill_fa2_kernel<HD, QP>;
    const size_t smem = (size_t)(kBM + 4 * fa2_bn<HD>()) * (HD + 8) * sizeof(half);
    LMF_CUDA_CHECK(cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    dim3 grid((max_q_len + kBM - 1) / kBM, nh, num_seqs);
    kern<<<grid, 128, smem, s>>>(q, ldq, k_cache, v_cache, block_tables, max_blocks, q_starts, q_lens, ctx_lens, out,
                                 ldo, nh, nkv, block_size, scale * kLog2e, k_param, v_param, window, softcap * kLog2e);
    LMF_CUDA_LAUNCHED();
    return;
  }
  auto kern = attention_prefill_kernel<HD>;
  const size_t smem = PrefillSmem<HD>::bytes;
  LMF_CUDA_CHECK(cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
  dim3 grid((max_q_len + kBM - 1) / kBM, nh, num_seqs);
  kern<<<grid, 128, smem, s>>>(q, ldq, k_cache, v_cache, block_tables, max_blocks, q_starts, q_lens, ctx_lens, out,
                               ldo, nh, nkv, block_size, scale * kLog2e, window, softcap * kLog2e);
  LMF_CUDA_LAUNCHED();
}

void attention_prefill_cuda(const half* q, int ldq, const half* k_cache, const half* v_cache,
                            const int* block_tables, int max_blocks, const int* q_starts, const int* q_lens,
                            const int* ctx_lens, half* out, int ldo, int num_seqs, int max_q_len, int nh, int nkv,
                            int hd, int block_size, float scale, cudaStream_t s, int quant_policy,
                            const float* k_param, const float* v_param, int window, float softcap) {
  if (num_seqs <= 0 || max_q_len <= 0) return;
  if (!(softcap >= 0)) fail(ErrorCode::InvalidArgument, "attention: softcap must be >= 0");
  if (nkv <= 0 || nh % nkv) fail(ErrorCode::InvalidArgument, "attention: num_heads must be a multiple of num_kv_heads");
  if (ldq % 8 || ldo % 8) fail(ErrorCode::InvalidArgument, "attention: row strides must be multiples of 8");
  if (quant_policy && (!k_param || !v_param)) fail(ErrorCode::InvalidArgument, "attention: a quantized cache needs its params");
#define LMF_PREFILL_HD(HD, QP)                                                                                   \
  return launch_prefill<HD, QP>(q, ldq, k_cache, v_cache, block_tables, max_blocks, q_starts, q_lens, ctx_lens, out, \
                                ldo, num_seqs, max_q_len, nh, nkv, block_size, scale, s, k_param, v_param, window, softcap)
  if (quant_policy == 0) {
    LMF_FOR_HEAD_DIMS(LMF_PREFILL_HD, 0)
  } else if (quant_policy == 8) {
    LMF_FOR_HEAD_DIMS(LMF_PREFILL_HD, 8)
  } else if (quant_policy == 4) {
    LMF_FOR_HEAD_DIMS(LMF_PREFILL_HD, 4)
  } else {
    fail(ErrorCode::InvalidArgument, "attention: quant_policy must be 0, 4 or 8");
  }
#undef LMF_PREFILL_HD
  fail(ErrorCode::InvalidArgument, "attention: head_dim " + std::to_string(hd) + " is not supported with quant_policy " +
                                       std::to_string(quant_policy) + " (16, 32, 64, 96, 128 or 256)");
}

}  // namespace lmfleet
