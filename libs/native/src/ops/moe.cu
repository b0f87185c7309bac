#include <cstdint>
#include <string>

#include "core/error.h"
#include "cuda/check.cuh"
#include "cuda/device_utils.cuh"
#include "ops/moe.cuh"

namespace lmfleet {

namespace {

constexpr int kRouteThreads = 1024;

// (value, index) of the better of two candidates: the larger logit, ties to the lower expert index
__device__ __forceinline__ bool route_better(float va, int ia, float vb, int ib) { return va > vb || (va == vb && ia < ib); }

__global__ void __launch_bounds__(kRouteThreads) moe_route_kernel(const float* __restrict__ logits, int T, int E, int K,
                                                                   bool renorm, int* __restrict__ ids, float* __restrict__ w,
                                                                   int* __restrict__ offsets, int* __restrict__ slot_token,
                                                                   int* __restrict__ pair_slot) {
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
  if (warp == 0) {
    int base = 0;
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
    }
    if (lane == 0) offsets[E] = base;
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

constexpr int kGemvWarps = 8;  // output columns per block, one per warp
constexpr int kGemvRows = 8;   // rows per pass over a weight row

// block (column tile, expert): each warp one weight row, the expert's rows kGemvRows at a time (the weight row is read
// from L1 / L2 again for each further pass)
__global__ void __launch_bounds__(kGemvWarps * 32) moe_gemv_kernel(const half* __restrict__ x, int ldx, const half* const* __restrict__ w,
                                                                  const int* __restrict__ offsets, half* __restrict__ y, int ldy,
                                                                  int n, int k) {
  const int e = blockIdx.y;
  const int r0 = offsets[e], r1 = offsets[e + 1];
  const int col = blockIdx.x * kGemvWarps + (threadIdx.x >> 5);
  if (r0 >= r1 || col >= n) return;
  const int lane = threadIdx.x & 31;
  const half* wr = w[e] + (size_t)col * k;
  const int nchunks = k / 8;
  for (int base = r0; base < r1; base += kGemvRows) {
    const int rows = min(kGemvRows, r1 - base);
    float acc[kGemvRows];
#pragma unroll
    for (int i = 0; i < kGemvRows; i++) acc[i] = 0.f;
#pragma unroll 2
    for (int c = lane; c < nchunks; c += 32) {
      float wf[8];
      half8_to_float(ldg_half8(wr + (size_t)c * 8), wf);
#pragma unroll
      for (int i = 0; i < kGemvRows; i++) {
        if (i < rows) {
          float xf[8];
          half8_to_float(ldg_half8(x + (size_t)(base + i) * ldx + (size_t)c * 8), xf);
#pragma unroll
          for (int q = 0; q < 8; q++) acc[i] += wf[q] * xf[q];
        }
      }
    }
#pragma unroll
    for (int i = 0; i < kGemvRows; i++) {
      const float v = warp_sum(acc[i]);
      if (lane == 0 && i < rows) y[(size_t)(base + i) * ldy + col] = __float2half(v);
    }
  }
}

constexpr int kW4Warps = 4;

__global__ void __launch_bounds__(kW4Warps * 32) moe_gemv_w4_kernel(const half* __restrict__ x, int ldx, const W4A16Dev* __restrict__ w,
                                                                   const int* __restrict__ offsets, half* __restrict__ y, int ldy,
                                                                   int n, int k, int kp, int group) {
  __shared__ float part[kW4Warps][8][kGemvRows];  // [warp][tile row][x row]
  const int e = blockIdx.y, tile = blockIdx.x;
  const int r0 = offsets[e], r1 = offsets[e + 1];
  if (r0 >= r1) return;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
  const int KB = kp / 128, row = tile * 8 + g;
  const uint32_t* qw = w[e].qweight;
  const half2* sz = w[e].sz;
  const int gshift = __ffs(group) - 1;  // group is 32, 64 or 128
  for (int base = r0; base < r1; base += kGemvRows) {
    const int rows = min(kGemvRows, r1 - base);
    float acc[kGemvRows];
#pragma unroll
    for (int i = 0; i < kGemvRows; i++) acc[i] = 0.f;
    for (int kb = warp; kb < KB; kb += kW4Warps) {
      const uint4 words = __ldg(reinterpret_cast<const uint4*>(qw + ((size_t)(tile * KB + kb) * 32 + lane) * 4));
#pragma unroll
      for (int j = 0; j < 4; j++) {
        const uint32_t wj = j == 0 ? words.x : j == 1 ? words.y : j == 2 ? words.z : words.w;
        const int k0 = kb * 128 + 32 * j;
        const half2 sc = sz[(size_t)(k0 >> gshift) * n + row];  // (scale, zero)
        const half2 s2 = __half2half2(__low2half(sc));
        const half2 z2 = __half2half2(__hadd(__high2half(sc), __float2half(1024.f)));
#pragma unroll
        for (int i = 0; i < 4; i++) {
          // nibbles i and i + 4: the codes at k0 + 8 i + 2 t and the next k; (1024 + q) as f16 exactly, so
          // ((1024 + q) - (1024 + z)) s is AutoAWQ's f16 (q - z) s bit for bit
          const int kk = k0 + 8 * i + 2 * t;
          if (kk >= k) continue;
          uint32_t v = ((wj >> (4 * i)) & 0x000F000Fu) | 0x64006400u;
          const float2 wf = __half22float2(__hmul2(__hsub2(*reinterpret_cast<half2*>(&v), z2), s2));
#pragma unroll
          for (int r = 0; r < kGemvRows; r++) {
            if (r < rows) {
              const float2 xf = __half22float2(__ldg(reinterpret_cast<const half2*>(x + (size_t)(base + r) * ldx + kk)));
              acc[r] += wf.x * xf.x + wf.y * xf.y;
            }
          }
        }
      }
    }
#pragma unroll
    for (int i = 0; i < kGemvRows; i++) {
      float v = acc[i];
      v += __shfl_xor_sync(0xffffffffu, v, 1);
      v += __shfl_xor_sync(0xffffffffu, v, 2);
      if (t == 0) part[warp][g][i] = v;
    }
    __syncthreads();
    if (threadIdx.x < 8 * kGemvRows) {
      const int gg = threadIdx.x / kGemvRows, i = threadIdx.x % kGemvRows;
      if (i < rows) {
        float v = 0.f;
        for (int q = 0; q < kW4Warps; q++) v += part[q][gg][i];
        y[(size_t)(base + i) * ldy + tile * 8 + gg] = __float2half(v);
      }
    }
    __syncthreads();
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
                    int* pair_slot, cudaStream_t s) {
  if (E < 1 || E > kMoeMaxExperts || K < 1 || K > E || K > kMoeMaxTopK)
    fail(ErrorCode::InvalidArgument, "moe routing: " + std::to_string(E) + " experts, " + std::to_string(K) +
                                         " per token is outside what the cuda kernels take (experts <= 1024, per token <= 32)");
  if (T <= 0) return;
  moe_route_kernel<<<1, kRouteThreads, 0, s>>>(logits, T, E, K, renorm, ids, w, offsets, slot_token, pair_slot);
  LMF_CUDA_LAUNCHED();
}

void moe_combine_cuda(const half* y, int ldy, const float* w, const int* pair_slot, half* out, int ldo, int T, int K, int H,
                      cudaStream_t s) {
  if (T <= 0) return;
  moe_combine_kernel<<<dim3((H + 255) / 256, T), 256, 0, s>>>(y, ldy, w, pair_slot, out, ldo, K, H);
  LMF_CUDA_LAUNCHED();
}

void moe_gemv_cuda(const half* x, int ldx, const half* const* w, const int* offsets, half* y, int ldy, int E, int n, int k,
                   cudaStream_t s) {
  if (k % 8 || ldx % 8) fail(ErrorCode::InvalidArgument, "moe gemv: k and ldx must be multiples of 8");
  if (E <= 0 || n <= 0) return;
  moe_gemv_kernel<<<dim3((n + kGemvWarps - 1) / kGemvWarps, E), kGemvWarps * 32, 0, s>>>(x, ldx, w, offsets, y, ldy, n, k);
  LMF_CUDA_LAUNCHED();
}

void moe_gemv_w4_cuda(const half* x, int ldx, const W4A16Dev* w, const int* offsets, half* y, int ldy, int E, int n, int k,
                      int kp, int group, cudaStream_t s) {
  if (n % 8 || kp % 128 || (group != 32 && group != 64 && group != 128) || kp < k || k % 32 || ldx % 2)
    fail(ErrorCode::InvalidArgument, "moe gemv w4: bad weight shape");
  if (E <= 0) return;
  moe_gemv_w4_kernel<<<dim3(n / 8, E), kW4Warps * 32, 0, s>>>(x, ldx, w, offsets, y, ldy, n, k, kp, group);
  LMF_CUDA_LAUNCHED();
}

void gather_rows_cuda(const half* x, const int* rows, half* out, int n, int H, cudaStream_t s) {
  if (n <= 0) return;
  gather_rows_kernel<<<n, 128, 0, s>>>(x, rows, out, H);
  LMF_CUDA_LAUNCHED();
}

}  // namespace lmfleet
