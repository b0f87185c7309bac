#include <cstdint>
#include <string>

#include "core/error.h"
#include "cuda/check.cuh"
#include "cuda/device_utils.cuh"
#include "ops/moe.cuh"
#include "ops/w4a16_frag.cuh"

namespace lmfleet {

namespace {

constexpr int kRouteThreads = 1024;

// (value, index) of the better of two candidates: the larger logit, ties to the lower expert index
__device__ __forceinline__ bool route_better(float va, int ia, float vb, int ib) { return va > vb || (va == vb && ia < ib); }

__global__ void __launch_bounds__(kRouteThreads) moe_route_kernel(const float* __restrict__ logits, int T, int E, int K,
                                                                   bool renorm, int* __restrict__ ids, float* __restrict__ w,
                                                                   int* __restrict__ offsets, int* __restrict__ slot_token,
                                                                   int* __restrict__ pair_slot, int* __restrict__ active) {
  __shared__ int counts[kMoeMaxExperts];
  __shared__ int cursor[kMoeMaxExperts];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
  for (int e = threadIdx.x; e < E; e += blockDim.x) counts[e] = 0;
  __syncthreads();
  // 1. per token (one warp each): softmax over the experts, the K best logits, their weights
  for (int t = warp; t < T; t += nwarps) {
    const float* r = logits + (size_t)t * E;
    float mx = -INFINITY;
    for (int e = lane; e < E; e += 32) mx = fmaxf(mx, r[e]);
    for (int o = 16; o; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
    float sum = 0.f;
    for (int e = lane; e < E; e += 32) sum += expf(r[e] - mx);
    for (int o = 16; o; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
    uint32_t taken = 0;  // bit i: this lane's expert lane + 32 i is chosen (E <= 1024)
    float chosen_p = 0.f, top = 0.f;  // lane j < K: choice j's probability
    for (int j = 0; j < K; j++) {
      float bv = -INFINITY;
      int bi = 0x7fffffff;
      for (int e = lane, i = 0; e < E; e += 32, i++)
        if (!(taken >> i & 1u) && route_better(r[e], e, bv, bi)) { bv = r[e]; bi = e; }
      for (int o = 16; o; o >>= 1) {
        const float ov = __shfl_xor_sync(0xffffffffu, bv, o);
        const int oi = __shfl_xor_sync(0xffffffffu, bi, o);
        if (route_better(ov, oi, bv, bi)) { bv = ov; bi = oi; }
      }
      if ((bi & 31) == lane) taken |= 1u << (bi >> 5);
      const float p = expf(bv - mx);
      top += p;
      if (lane == j) chosen_p = p;
      if (lane == 0) {
        ids[t * K + j] = bi;
        atomicAdd(&counts[bi], 1);
      }
    }
    if (lane < K) w[t * K + lane] = chosen_p / (renorm ? top : sum);
  }
  __syncthreads();
  // 2. offsets: an exclusive prefix sum over the experts (warp 0, 32 at a time)
  // and the experts with pairs, in expert order, into active (-1 after the last)
  if (warp == 0) {
    int base = 0, nact = 0;
    for (int e0 = 0; e0 < E; e0 += 32) {
      const int e = e0 + lane;
      const int c = e < E ? counts[e] : 0;
      int inc = c;
      for (int o = 1; o < 32; o <<= 1) {
        const int v = __shfl_up_sync(0xffffffffu, inc, o);
        if (lane >= o) inc += v;
      }
      if (e < E) {
        offsets[e] = base + inc - c;
        cursor[e] = base + inc - c;
      }
      base += __shfl_sync(0xffffffffu, inc, 31);
      const uint32_t used = __ballot_sync(0xffffffffu, c > 0);
      if (c > 0) active[nact + __popc(used & ((1u << lane) - 1u))] = e;
      nact += __popc(used);
    }
    if (lane == 0) offsets[E] = base;
    for (int j = nact + lane; j < E; j += 32) active[j] = -1;
  }
  __syncthreads();
  // 3. the pairs into their expert's range, in pair order (warp 0, 32 pairs at a time: stable, no timing dependence)
  if (warp == 0) {
    const int P = T * K;
    for (int p0 = 0; p0 < P; p0 += 32) {
      const int p = p0 + lane;
      const bool valid = p < P;
      const int e = valid ? ids[p] : -1 - lane;  // invalid lanes match nobody
      const uint32_t same = __match_any_sync(0xffffffffu, e);
      if (valid) {
        const int slot = cursor[e] + __popc(same & ((1u << lane) - 1u));
        slot_token[slot] = p / K;
        pair_slot[p] = slot;
      }
      __syncwarp();
      if (valid && lane == __ffs(same) - 1) cursor[e] += __popc(same);
      __syncwarp();
    }
  }
}

__global__ void moe_combine_kernel(const half* __restrict__ y, int ldy, const float* __restrict__ w,
                                   const int* __restrict__ pair_slot, half* __restrict__ out, int ldo, int K, int H) {
  const int t = blockIdx.y;
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= H) return;
  float acc = 0.f;
  for (int j = 0; j < K; j++) acc += w[t * K + j] * __half2float(y[(size_t)pair_slot[t * K + j] * ldy + i]);
  out[(size_t)t * ldo + i] = __float2half(acc);
}

// ---- grouped W4A16 GEMV on the tensor cores (moe_gemv_w4_cuda) ----
// A block per (pair of 8-row tiles, active expert): the pair's 16 weight rows are the A operand of mma.m16n8k16 (tile a
// rows 0..7, tile b rows 8..15: our layout's lane fragment is the A fragment's), up to 8 of the expert's x rows the B
// operand (n = x row), f32 C. The 4 warps split the k blocks (kb = warp, warp + 4, ...) and add their C fragments in warp
// order through shared memory. x goes through shared memory kMmaChunk k blocks at a time, in the lane order of the B
// fragments: per row, k block, word j and lane t the 4 pairs {128 kb + 32 j + 8 i + 2 t : i = 0..3}, one 16-byte load.
constexpr int kMmaWarps = 4;
constexpr int kMmaRows = 8;    // x rows per pass: the mma's n
constexpr int kMmaChunk = 16;  // k blocks of x staged at a time (2048 k: 33 KB of shared memory for 8 rows)
constexpr int kMmaRowWords = kMmaChunk * 64 + 16;  // 16 mod 32 words: the 8 rows a quarter warp reads hit distinct banks

// The end of a grouped kernel's pass (both kernels below): each warp's C fragment (c[0], c[1]: the first weight row's
// outputs for x rows 2t and 2t + 1; c[2], c[3]: the second row's) goes through shared memory, and warp 0 adds the
// warps' parts in warp order and stores x rows below `rows` at column col(q) of y (col(q) < 0: not stored).
template <class Col>
__device__ __forceinline__ void store_pass(float (*part)[32][4], const float c[4], int warp, int lane, int t, int rows,
                                           half* __restrict__ y, int ldy, Col col) {
#pragma unroll
  for (int q = 0; q < 4; q++) part[warp][lane][q] = c[q];
  __syncthreads();
  if (warp != 0) return;
#pragma unroll
  for (int q = 0; q < 4; q++) {
    float v = part[0][lane][q];
#pragma unroll
    for (int ww = 1; ww < kMmaWarps; ww++) v += part[ww][lane][q];
    const int xr = 2 * t + (q & 1), cc = col(q);
    if (xr < rows && cc >= 0) y[(size_t)xr * ldy + cc] = __float2half(v);
  }
}

template <int G>  // group size 32, 64 or 128
__global__ void __launch_bounds__(kMmaWarps * 32) moe_gemv_w4_mma_kernel(const half* __restrict__ x, int ldx,
                                                                        const W4A16Dev* __restrict__ w,
                                                                        const int* __restrict__ offsets,
                                                                        const int* __restrict__ active, half* __restrict__ y,
                                                                        int ldy, int n, int k, int kp) {
  constexpr int NG = 128 / G;  // (scale, zero) pairs per row and k block
  __shared__ __align__(16) uint32_t xs[kMmaRows * kMmaRowWords];
  __shared__ float part[kMmaWarps][32][4];
  const int e = active[blockIdx.y];
  if (e < 0) return;
  const int r0 = offsets[e], r1 = offsets[e + 1];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
  const int KB = kp / 128, ntiles = n / 8, ta = blockIdx.x * 2, tb = ta + 1;
  const bool hasb = tb < ntiles;
  const W4A16Dev W = w[e];
  const uint4* qa = reinterpret_cast<const uint4*>(W.qweight) + (size_t)ta * KB * 32 + lane;
  const uint4* qb = reinterpret_cast<const uint4*>(W.qweight) + (size_t)tb * KB * 32 + lane;
  const half2* sza = W.sz + ta * 8 + g;
  const half2* szb = W.sz + tb * 8 + g;
  for (int base = r0; base < r1; base += kMmaRows) {
    const int rows = min(kMmaRows, r1 - base);
    float c[4] = {0.f, 0.f, 0.f, 0.f};
    for (int kc = 0; kc < KB; kc += kMmaChunk) {
      const int nkb = min(kMmaChunk, KB - kc);
      // this warp's k blocks of the chunk (at most kMmaChunk / kMmaWarps): weights and (scale, zero) first, so they
      // stream while x is staged
      uint4 wa[kMmaChunk / kMmaWarps], wb[kMmaChunk / kMmaWarps];
      half2 sa[kMmaChunk / kMmaWarps][NG], sb[kMmaChunk / kMmaWarps][NG];
#pragma unroll
      for (int u = 0; u < kMmaChunk / kMmaWarps; u++) {
        const int kb = kc + warp + u * kMmaWarps;
        wa[u] = wb[u] = make_uint4(0, 0, 0, 0);
#pragma unroll
        for (int q = 0; q < NG; q++) sa[u][q] = sb[u][q] = __floats2half2_rn(0.f, 0.f);
        if (kb < kc + nkb) {
          wa[u] = __ldg(qa + (size_t)kb * 32);
          if (hasb) wb[u] = __ldg(qb + (size_t)kb * 32);
#pragma unroll
          for (int q = 0; q < NG; q++) {
            const size_t gi = (size_t)(kb * 128 + q * G) / G * n;
            sa[u][q] = __ldg(sza + gi);
            if (hasb) sb[u][q] = __ldg(szb + gi);
          }
        }
      }
      if (base != r0 || kc != 0) __syncthreads();  // every warp is done reading the previous x chunk
      // x rows [base, base + rows), k blocks [kc, kc + nkb) -> xs (zeros past k)
      const int chunks = nkb * 16;  // 8-half chunks per row
      for (int idx = threadIdx.x; idx < rows * chunks; idx += blockDim.x) {
        const int r = idx / chunks, q = idx - r * chunks, col = kc * 128 + q * 8;
        uint4 v = make_uint4(0, 0, 0, 0);
        if (col < k) v = __ldg(reinterpret_cast<const uint4*>(x + (size_t)(base + r) * ldx + col));
        // chunk q = (k block q / 16, word (q / 4) % 4, pair row i = q % 4) holds the pairs t = 0..3
        uint32_t* d = xs + r * kMmaRowWords + (q >> 4) * 64 + ((q >> 2) & 3) * 16 + (q & 3);
        d[0] = v.x;
        d[4] = v.y;
        d[8] = v.z;
        d[12] = v.w;
      }
      __syncthreads();
#pragma unroll
      for (int u = 0; u < kMmaChunk / kMmaWarps; u++) {
        const int kl = warp + u * kMmaWarps;  // k block within the chunk
#pragma unroll
        for (int j = 0; j < 4 && kl < nkb; j++) {
          half2 s2a, z2a, s2b, z2b;
          scale_zero(sa[u][(32 * j) / G], &s2a, &z2a);
          scale_zero(sb[u][(32 * j) / G], &s2b, &z2b);
          uint32_t pa[4], pb[4];
          const uint32_t wja = j == 0 ? wa[u].x : j == 1 ? wa[u].y : j == 2 ? wa[u].z : wa[u].w;
          const uint32_t wjb = j == 0 ? wb[u].x : j == 1 ? wb[u].y : j == 2 ? wb[u].z : wb[u].w;
          dequant_word(wja, z2a, s2a, pa);
          dequant_word(wjb, z2b, s2b, pb);
          uint4 xv = make_uint4(0, 0, 0, 0);
          if (g < rows) xv = *reinterpret_cast<const uint4*>(xs + g * kMmaRowWords + ((kl * 16 + j * 4 + t) << 2));
          const uint32_t a0[4] = {pa[0], pb[0], pa[1], pb[1]}, a1[4] = {pa[2], pb[2], pa[3], pb[3]};
          mma16816(c, a0, xv.x, xv.y);
          mma16816(c, a1, xv.z, xv.w);
        }
      }
    }
    // C: c[0], c[1] = (tile a row g; x rows 2t, 2t + 1), c[2], c[3] = (tile b row g; the same x rows)
    store_pass(part, c, warp, lane, t, rows, y + (size_t)base * ldy, ldy,
               [&](int q) { return q < 2 ? ta * 8 + g : hasb ? tb * 8 + g : -1; });
  }
}

// ---- grouped f16 GEMV on the tensor cores (moe_gemv_cuda) ----
// A block per (16 weight rows, active expert): rows g and g + 8 of the pair are the A operand, up to 8 x rows the B
// operand, 4 warps splitting k 32 at a time (C fragments added in warp order, as above). The mma's k order inside each
// 32-wide word is permuted alike in A and B so that every operand is one contiguous 16-byte load: lane (g, t) reads
// k = 32 j + 8 t .. + 7 of weight rows g and g + 8 and of x row g, and gives its pairs 0, 1 as step 0's k pairs t and
// t + 4 and its pairs 2, 3 as step 1's (each of the word's 16 pairs lands in exactly one (step, pair) slot of one lane).
constexpr int kF16Unroll = 4;  // words a warp loads before it multiplies
__global__ void __launch_bounds__(kMmaWarps * 32) moe_gemv_f16_mma_kernel(const half* __restrict__ x, int ldx,
                                                                         const half* const* __restrict__ w,
                                                                         const int* __restrict__ offsets,
                                                                         const int* __restrict__ active, half* __restrict__ y,
                                                                         int ldy, int n, int k) {
  __shared__ float part[kMmaWarps][32][4];
  const int e = active[blockIdx.y];
  if (e < 0) return;
  const int r0 = offsets[e], r1 = offsets[e + 1];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
  const int ra = blockIdx.x * 16 + g, rb = ra + 8, nw = (k + 31) / 32;
  const bool va = ra < n, vb = rb < n;
  const half* wa = w[e] + (size_t)(va ? ra : 0) * k + 8 * t;
  const half* wb = w[e] + (size_t)(vb ? rb : 0) * k + 8 * t;
  for (int base = r0; base < r1; base += kMmaRows) {
    const int rows = min(kMmaRows, r1 - base);
    const bool vx = g < rows;
    const half* xr = x + (size_t)(base + (vx ? g : 0)) * ldx + 8 * t;
    float c[4] = {0.f, 0.f, 0.f, 0.f};
    for (int j0 = warp; j0 < nw; j0 += kMmaWarps * kF16Unroll) {
      uint4 A[kF16Unroll], B[kF16Unroll], X[kF16Unroll];
#pragma unroll
      for (int u = 0; u < kF16Unroll; u++) {
        const int k0 = (j0 + u * kMmaWarps) * 32;
        const bool ok = k0 + 8 * t < k;  // k % 8 == 0: a lane's 8 k are all in or all out
        A[u] = ok && va ? __ldg(reinterpret_cast<const uint4*>(wa + k0)) : make_uint4(0, 0, 0, 0);
        B[u] = ok && vb ? __ldg(reinterpret_cast<const uint4*>(wb + k0)) : make_uint4(0, 0, 0, 0);
        X[u] = ok && vx ? __ldg(reinterpret_cast<const uint4*>(xr + k0)) : make_uint4(0, 0, 0, 0);
      }
#pragma unroll
      for (int u = 0; u < kF16Unroll; u++) {
        const uint32_t a0[4] = {A[u].x, B[u].x, A[u].y, B[u].y}, a1[4] = {A[u].z, B[u].z, A[u].w, B[u].w};
        mma16816(c, a0, X[u].x, X[u].y);
        mma16816(c, a1, X[u].z, X[u].w);
      }
    }
    if (base != r0) __syncthreads();  // warp 0 is done reading the previous pass's partial sums
    store_pass(part, c, warp, lane, t, rows, y + (size_t)base * ldy, ldy,
               [&](int q) { return q < 2 ? (va ? ra : -1) : (vb ? rb : -1); });
  }
}

__global__ void gather_rows_kernel(const half* __restrict__ x, const int* __restrict__ rows, half* __restrict__ out, int H) {
  const half* src = x + (size_t)rows[blockIdx.x] * H;
  half* dst = out + (size_t)blockIdx.x * H;
  if (H % 8 == 0) {
    for (int i = threadIdx.x; i < H / 8; i += blockDim.x) reinterpret_cast<uint4*>(dst)[i] = reinterpret_cast<const uint4*>(src)[i];
  } else {
    for (int i = threadIdx.x; i < H; i += blockDim.x) dst[i] = src[i];
  }
}

}  // namespace

void moe_route_cuda(const float* logits, int T, int E, int K, bool renorm, int* ids, float* w, int* offsets, int* slot_token,
                    int* pair_slot, int* active, cudaStream_t s) {
  if (E < 1 || E > kMoeMaxExperts || K < 1 || K > E || K > kMoeMaxTopK)
    fail(ErrorCode::InvalidArgument, "moe routing: " + std::to_string(E) + " experts, " + std::to_string(K) +
                                         " per token is outside what the cuda kernels take (experts <= 1024, per token <= 32)");
  if (T <= 0) return;
  moe_route_kernel<<<1, kRouteThreads, 0, s>>>(logits, T, E, K, renorm, ids, w, offsets, slot_token, pair_slot, active);
  LMF_CUDA_LAUNCHED();
}

void moe_combine_cuda(const half* y, int ldy, const float* w, const int* pair_slot, half* out, int ldo, int T, int K, int H,
                      cudaStream_t s) {
  if (T <= 0) return;
  moe_combine_kernel<<<dim3((H + 255) / 256, T), 256, 0, s>>>(y, ldy, w, pair_slot, out, ldo, K, H);
  LMF_CUDA_LAUNCHED();
}

void moe_gemv_cuda(const half* x, int ldx, const half* const* w, const int* offsets, const int* active, int max_active, half* y,
                   int ldy, int n, int k, cudaStream_t s) {
  if (k % 8 || ldx % 8) fail(ErrorCode::InvalidArgument, "moe gemv: k and ldx must be multiples of 8");
  if (max_active <= 0 || n <= 0) return;
  moe_gemv_f16_mma_kernel<<<dim3((n + 15) / 16, max_active), kMmaWarps * 32, 0, s>>>(x, ldx, w, offsets, active, y, ldy, n, k);
  LMF_CUDA_LAUNCHED();
}

void moe_gemv_w4_cuda(const half* x, int ldx, const W4A16Dev* w, const int* offsets, const int* active, int max_active, half* y,
                      int ldy, int n, int k, int kp, int group, cudaStream_t s) {
  if (n % 8 || kp % 128 || (group != 32 && group != 64 && group != 128) || kp < k || k % 32 || ldx % 8)
    fail(ErrorCode::InvalidArgument, "moe gemv w4: bad weight shape");
  if (max_active <= 0) return;
  const dim3 grid((n / 8 + 1) / 2, max_active);
  if (group == 128)
    moe_gemv_w4_mma_kernel<128><<<grid, kMmaWarps * 32, 0, s>>>(x, ldx, w, offsets, active, y, ldy, n, k, kp);
  else if (group == 64)
    moe_gemv_w4_mma_kernel<64><<<grid, kMmaWarps * 32, 0, s>>>(x, ldx, w, offsets, active, y, ldy, n, k, kp);
  else
    moe_gemv_w4_mma_kernel<32><<<grid, kMmaWarps * 32, 0, s>>>(x, ldx, w, offsets, active, y, ldy, n, k, kp);
  LMF_CUDA_LAUNCHED();
}

void gather_rows_cuda(const half* x, const int* rows, half* out, int n, int H, cudaStream_t s) {
  if (n <= 0) return;
  gather_rows_kernel<<<n, 128, 0, s>>>(x, rows, out, H);
  LMF_CUDA_LAUNCHED();
}

}  // namespace lmfleet
