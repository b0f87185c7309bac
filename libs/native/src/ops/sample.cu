#include <algorithm>
#include <cmath>

#include "cuda/check.cuh"
#include "ops/sample.cuh"
#include "ops/sampling_common.cuh"

namespace lmfleet {

__host__ __device__ __forceinline__ void philox_round(uint32_t c[4], const uint32_t k[2]) {
  const uint32_t M0 = 0xD2511F53u, M1 = 0xCD9E8D57u;
  const uint64_t p0 = (uint64_t)M0 * c[0], p1 = (uint64_t)M1 * c[2];
  const uint32_t hi0 = (uint32_t)(p0 >> 32), lo0 = (uint32_t)p0, hi1 = (uint32_t)(p1 >> 32), lo1 = (uint32_t)p1;
  const uint32_t n0 = hi1 ^ c[1] ^ k[0], n2 = hi0 ^ c[3] ^ k[1];
  c[0] = n0;
  c[1] = lo1;
  c[2] = n2;
  c[3] = lo0;
}

__host__ __device__ __forceinline__ void philox10(uint32_t c[4], uint32_t k[2]) {
  uint32_t key[2] = {k[0], k[1]};
  for (int r = 0; r < 10; r++) {
    philox_round(c, key);
    key[0] += 0x9E3779B9u;
    key[1] += 0xBB67AE85u;
  }
}

__host__ __device__ __forceinline__ double philox_uniform_impl(uint64_t seed, uint64_t counter) {
  uint32_t c[4] = {(uint32_t)counter, (uint32_t)(counter >> 32), 0u, 0u};
  uint32_t k[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
  philox10(c, k);
  // 53 random bits -> [0, 1)
  const uint64_t bits = ((uint64_t)c[0] << 21) ^ (uint64_t)(c[1] >> 11);
  return (double)(bits & ((1ull << 53) - 1)) * (1.0 / 9007199254740992.0);
}

void philox4x32_10(uint32_t ctr[4], uint32_t key[2]) { philox10(ctr, key); }

__global__ void token_mask_kernel(float* __restrict__ logits, int ld, int vocab, const uint32_t* __restrict__ masks,
                                  int words, const int* __restrict__ mask_row) {
  const int b = blockIdx.y, mr = mask_row[b];
  if (mr < 0) return;
  const uint32_t* m = masks + (size_t)mr * words;
  float* row = logits + (size_t)b * ld;
  for (int t = blockIdx.x * blockDim.x + threadIdx.x; t < vocab; t += gridDim.x * blockDim.x)
    if (!((m[t >> 5] >> (t & 31)) & 1u)) row[t] = -INFINITY;
}

__global__ void logit_bias_kernel(float* __restrict__ logits, int ld, const int* __restrict__ rows, const int* __restrict__ ids,
                                  const float* __restrict__ vals, int n) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) logits[(size_t)rows[i] * ld + ids[i]] += vals[i];
}

void logit_bias_cuda(float* logits, int ld, const int* rows, const int* ids, const float* vals, int n, cudaStream_t s) {
  if (n <= 0) return;
  logit_bias_kernel<<<(n + 255) / 256, 256, 0, s>>>(logits, ld, rows, ids, vals, n);
  LMF_CUDA_LAUNCHED();
}

void token_mask_cuda(float* logits, int ld, int vocab, int batch, const uint32_t* masks, int words, const int* mask_row,
                     cudaStream_t s) {
  if (batch <= 0 || vocab <= 0) return;
  token_mask_kernel<<<dim3((unsigned)std::min((vocab + 255) / 256, 64), (unsigned)batch), 256, 0, s>>>(logits, ld, vocab, masks,
                                                                                                     words, mask_row);
  LMF_CUDA_LAUNCHED();
}
double philox_uniform(uint64_t seed, uint64_t counter) { return philox_uniform_impl(seed, counter); }

namespace {
constexpr int kSampleThreads = 1024;

__device__ __forceinline__ uint32_t order_key(float f) {
  const uint32_t u = __float_as_uint(f);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

// Block-wide exclusive prefix sum of one float per thread (deterministic order).
__device__ float block_exclusive_scan(float v, float* warp_tot) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  float inc = v;
#pragma unroll
  for (int o = 1; o < 32; o <<= 1) {
    const float t = __shfl_up_sync(0xffffffffu, inc, o);
    if (lane >= o) inc += t;
  }
  __syncthreads();
  if (lane == 31) warp_tot[warp] = inc;
  __syncthreads();
  if (warp == 0) {
    float w = lane < (int)(blockDim.x >> 5) ? warp_tot[lane] : 0.f;
    float wi = w;
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
      const float t = __shfl_up_sync(0xffffffffu, wi, o);
      if (lane >= o) wi += t;
    }
    warp_tot[lane] = wi - w;  // exclusive
  }
  __syncthreads();
  return warp_tot[warp] + inc - v;
}
}  // namespace

__global__ void __launch_bounds__(kSampleThreads)
sample_kernel(const float* __restrict__ logits, int ld, int vocab, SampleParamsDevice p, int* out, float* logprob) {
  __shared__ ArgMaxPair apair[32];
  __shared__ float fscr[32];
  __shared__ unsigned cnt[256];
  __shared__ unsigned long long mass[256];
  __shared__ unsigned sh_digit;
  __shared__ unsigned long long sh_rest;
  __shared__ int sh_chosen;
  __shared__ unsigned sh_kmin;
  __shared__ float excl[kSampleThreads];
  const int b = blockIdx.x;
  const float* x = logits + (size_t)b * ld;

  ArgMaxPair best{-INFINITY, 0x7fffffff};
  int i0 = 0;  // the scalar loop's start
  if (ld % 4 == 0 && (reinterpret_cast<uintptr_t>(x) & 15) == 0) {
    // 16-byte loads, 8 per thread in flight: one memory round trip per 32K logits instead of one per 1K (the same
    // candidates and tie-break, so the same arg-max)
    const int nv = vocab / 4;
    const float4* x4 = reinterpret_cast<const float4*>(x);
    for (int base = 0; base < nv; base += 8 * (int)blockDim.x) {
      float4 v[8];
#pragma unroll
      for (int u = 0; u < 8; u++) {
        const int j = base + u * (int)blockDim.x + (int)threadIdx.x;
        if (j < nv) v[u] = __ldg(x4 + j);
      }
#pragma unroll
      for (int u = 0; u < 8; u++) {
        const int j = base + u * (int)blockDim.x + (int)threadIdx.x;
        if (j < nv) {
          best = better(best, ArgMaxPair{v[u].x, 4 * j});
          best = better(best, ArgMaxPair{v[u].y, 4 * j + 1});
          best = better(best, ArgMaxPair{v[u].z, 4 * j + 2});
          best = better(best, ArgMaxPair{v[u].w, 4 * j + 3});
        }
      }
    }
    i0 = nv * 4;
  }
  for (int i = i0 + threadIdx.x; i < vocab; i += blockDim.x) best = better(best, ArgMaxPair{x[i], i});
  best = block_argmax(best, apair);
  if (best.i == 0x7fffffff) best.i = 0;
  const float xmax = best.v;
  const float temp = p.temperature[b];
  int token = best.i;

  if (temp > 0.f) {
    const float inv_t = 1.f / temp;
    uint32_t thr = 0;  // keep keys >= thr
    const int k = p.top_k[b];
    if (k > 0 && k < vocab) {
      // radix select: the k-th largest key
      uint32_t prefix = 0, pmask = 0;
      unsigned long long rest = (unsigned long long)k;
      for (int shift = 24; shift >= 0; shift -= 8) {
        for (int i = threadIdx.x; i < 256; i += blockDim.x) cnt[i] = 0;
        __syncthreads();
        for (int i = threadIdx.x; i < vocab; i += blockDim.x) {
          const uint32_t key = order_key(x[i]);
          if ((key & pmask) == prefix) atomicAdd(&cnt[(key >> shift) & 255u], 1u);
        }
        __syncthreads();
        if (threadIdx.x == 0) {
          unsigned long long acc = 0;
          unsigned sel = 0;
          for (int d = 255; d >= 0; d--) {
            if (acc + cnt[d] >= rest) { sel = d; break; }
            acc += cnt[d];
          }
          sh_digit = sel;
          sh_rest = rest - acc;
        }
        __syncthreads();
        prefix |= sh_digit << shift;
        pmask |= 255u << shift;
        rest = sh_rest;
        __syncthreads();
      }
      thr = prefix;
    }
    float z = 0.f;
    for (int i = threadIdx.x; i < vocab; i += blockDim.x)
      if (order_key(x[i]) >= thr) z += expf((x[i] - xmax) * inv_t);
    z = block_sum(z, fscr);
    const float tp = p.top_p[b];
    if (tp > 0.f && tp < 1.f) {
      // radix select on probability mass in 2^-32 fixed point (exact, order independent sums)
      const float scale = 4294967296.f / z;
      uint32_t prefix = 0, pmask = 0;
      unsigned long long rest = (unsigned long long)((double)tp * 4294967296.0);
      if (rest == 0) rest = 1;
      for (int shift = 24; shift >= 0; shift -= 8) {
        for (int i = threadIdx.x; i < 256; i += blockDim.x) { cnt[i] = 0; mass[i] = 0; }
        __syncthreads();
        for (int i = threadIdx.x; i < vocab; i += blockDim.x) {
          const uint32_t key = order_key(x[i]);
          if (key >= thr && (key & pmask) == prefix) {
            const unsigned d = (key >> shift) & 255u;
            atomicAdd(&cnt[d], 1u);
            atomicAdd(&mass[d], (unsigned long long)(expf((x[i] - xmax) * inv_t) * scale));
          }
        }
        __syncthreads();
        if (threadIdx.x == 0) {
          unsigned long long acc = 0;
          int sel = -1, lowest = 0;
          for (int d = 255; d >= 0; d--) {
            if (cnt[d]) lowest = d;
            if (sel < 0 && cnt[d] && acc + mass[d] >= rest) { sel = d; break; }
            acc += mass[d];
          }
          if (sel < 0) { sel = lowest; acc -= 0; }  // rounding: total < target, keep everything
          sh_digit = (unsigned)sel;
          unsigned long long above = 0;
          for (int d = 255; d > sel; d--) above += mass[d];
          sh_rest = rest > above ? rest - above : 1;
        }
        __syncthreads();
        prefix |= sh_digit << shift;
        pmask |= 255u << shift;
        rest = sh_rest;
        __syncthreads();
      }
      if (prefix > thr) thr = prefix;
    }
    const float mp = p.min_p ? p.min_p[b] : 0.f;
    if (mp > 0.f) {
      // min-p keeps a prefix of the sorted logits too: the smallest key whose relative probability reaches mp
      if (threadIdx.x == 0) sh_kmin = 0xffffffffu;
      __syncthreads();
      uint32_t kmin = 0xffffffffu;
      for (int i = threadIdx.x; i < vocab; i += blockDim.x)
        if (expf((x[i] - xmax) * inv_t) >= mp) kmin = min(kmin, order_key(x[i]));
      atomicMin(&sh_kmin, kmin);
      __syncthreads();
      if (sh_kmin != 0xffffffffu && sh_kmin > thr) thr = sh_kmin;
    }
    // inverse-CDF draw over the kept tokens, in index order
    const int chunk = (vocab + blockDim.x - 1) / blockDim.x;
    const int lo = min(vocab, (int)threadIdx.x * chunk), hi = min(vocab, lo + chunk);
    float csum = 0.f;
    int last = -1;
    for (int i = lo; i < hi; i++)
      if (order_key(x[i]) >= thr) { csum += expf((x[i] - xmax) * inv_t); last = i; }
    // thread t owns [excl[t], excl[t+1]): the intervals partition [0, total) exactly, whatever the rounding
    const float pre = block_exclusive_scan(csum, fscr);
    const float total = block_sum(csum, fscr);
    excl[threadIdx.x] = pre;
    const double u = p.u ? p.u[b] : philox_uniform_impl(p.seed[b], p.counter[b]);
    const float target = (float)(u * (double)total);
    if (threadIdx.x == 0) sh_chosen = 0x7fffffff;
    __syncthreads();
    const float hi_edge = threadIdx.x + 1 < blockDim.x ? excl[threadIdx.x + 1] : INFINITY;
    if (last >= 0 && pre <= target && target < hi_edge) {
      float acc = pre;
      int pick = last;
      for (int i = lo; i < hi; i++) {
        if (order_key(x[i]) >= thr) {
          acc += expf((x[i] - xmax) * inv_t);
          if (target < acc) { pick = i; break; }
        }
      }
      atomicMin(&sh_chosen, pick);
    }
    __syncthreads();
    token = sh_chosen;
    if (token == 0x7fffffff) {  // rounding pushed the target past the end: the last kept token
      ArgMaxPair lp{(float)last, last};
      lp = block_argmax(lp, apair);
      token = lp.i >= 0 ? lp.i : best.i;
    }
  }
  if (logprob) {
    const float lse = block_log_sum_exp(x, vocab, xmax, fscr);
    if (threadIdx.x == 0) logprob[b] = x[token] - xmax - lse;
  }
  if (threadIdx.x == 0) {
    out[b] = token;
    if (p.counter) p.counter[b] += 1;
  }
}

void sample_cuda(const float* logits, int ld, int vocab, int batch, SampleParamsDevice p, int* out, float* logprob,
                 cudaStream_t s) {
  if (batch <= 0) return;
  sample_kernel<<<batch, kSampleThreads, 0, s>>>(logits, ld, vocab, p, out, logprob);
  LMF_CUDA_LAUNCHED();
}

__global__ void repetition_penalty_kernel(float* logits, int ld, int vocab, const int* __restrict__ hist_ids,
                                          const int* __restrict__ hist_starts, const float* __restrict__ penalty,
                                          unsigned* bitmap) {
  const int b = blockIdx.x;
  const float pen = penalty[b];
  if (pen == 1.f || pen <= 0.f) return;
  const int s0 = hist_starts[b], s1 = hist_starts[b + 1];
  unsigned* bm = bitmap + (size_t)b * ((vocab + 31) / 32);
  float* x = logits + (size_t)b * ld;
  for (int i = s0 + threadIdx.x; i < s1; i += blockDim.x) {
    const int id = hist_ids[i];
    if (id < 0 || id >= vocab) continue;
    const unsigned bit = 1u << (id & 31);
    if (!(atomicOr(&bm[id >> 5], bit) & bit)) {  // first occurrence of this id applies the penalty once
      const float v = x[id];
      x[id] = v > 0.f ? v / pen : v * pen;
    }
  }
  __syncthreads();
  for (int i = s0 + threadIdx.x; i < s1; i += blockDim.x) {
    const int id = hist_ids[i];
    if (id >= 0 && id < vocab) bm[id >> 5] = 0u;
  }
}

__global__ void presence_frequency_kernel(float* logits, int ld, int vocab, const int* __restrict__ hist_ids,
                                          const int* __restrict__ gen_starts, const int* __restrict__ hist_starts,
                                          const float* __restrict__ presence, const float* __restrict__ frequency,
                                          int* counts) {
  const int b = blockIdx.x;
  const float pres = presence[b], freq = frequency[b];
  if (pres == 0.f && freq == 0.f) return;
  const int s0 = gen_starts[b], s1 = hist_starts[b + 1];
  int* cnt = counts + (size_t)b * vocab;
  float* x = logits + (size_t)b * ld;
  for (int i = s0 + threadIdx.x; i < s1; i += blockDim.x) {
    const int id = hist_ids[i];
    if (id >= 0 && id < vocab) atomicAdd(&cnt[id], 1);
  }
  __syncthreads();
  for (int i = s0 + threadIdx.x; i < s1; i += blockDim.x) {
    const int id = hist_ids[i];
    if (id < 0 || id >= vocab) continue;
    const int c = atomicExch(&cnt[id], 0);  // the one thread that takes the count applies it, and leaves 0
    if (c > 0) x[id] = (float)((double)x[id] - ((double)freq * c + (double)pres));
  }
}

void presence_frequency_penalty_cuda(float* logits, int ld, int vocab, int batch, const int* hist_ids, const int* gen_starts,
                                     const int* hist_starts, const float* presence, const float* frequency, int* counts,
                                     cudaStream_t s) {
  if (batch <= 0) return;
  presence_frequency_kernel<<<batch, 256, 0, s>>>(logits, ld, vocab, hist_ids, gen_starts, hist_starts, presence, frequency,
                                                  counts);
  LMF_CUDA_LAUNCHED();
}

size_t sample_bitmap_bytes(int batch, int vocab) { return (size_t)batch * ((vocab + 31) / 32) * sizeof(unsigned); }

void repetition_penalty_cuda(float* logits, int ld, int vocab, int batch, const int* hist_ids, const int* hist_starts,
                             const float* penalty, unsigned* bitmap, cudaStream_t s) {
  if (batch <= 0) return;
  repetition_penalty_kernel<<<batch, 256, 0, s>>>(logits, ld, vocab, hist_ids, hist_starts, penalty, bitmap);
  LMF_CUDA_LAUNCHED();
}

}  // namespace lmfleet
