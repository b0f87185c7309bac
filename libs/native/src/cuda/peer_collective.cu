// NVLink peer-memory collectives of tensor parallelism (see peer_collective.h).
#include "cuda/peer_collective.h"

#include <cuda_fp16.h>

#include <algorithm>
#include <cstdlib>
#include <string>

#include "core/error.h"
#include "core/env.h"
#include "cuda/check.cuh"
#include "cuda/device_utils.cuh"

namespace lmfleet {

namespace {

constexpr int kGatherLoads = 8;  // peer_kernel's copy-in and all-gather: loads in flight per thread
constexpr int kBlocks = 32;  // every launch on the main set uses this grid: its per-block counters stay equal on every rank
constexpr int kThreads = 512;
constexpr int kFuseMaxRows = 16;  // the fused kernel on the 32-block set takes up to this many rows (rows split over blocks)
constexpr int kFuseMaxCols = 8192;  // the widest row the fused kernels take: ops/rms_norm.cu's 256 threads x 4 half8
// The wide set: the fused kernel with one block per row (grid = rows), its own buffer, flags and counters (block b
// only ever touches row b, so the per-block counters stay in step whatever the grid). LMFLEET_TP_FUSE_ROWS (default
// 16: off) lets it take up to that many rows (at most kWideMaxRows). Unmeasured.
constexpr int kWideMaxRows = 256;
constexpr int kMaxRanks = PeerExchange::kMaxRanks;
constexpr unsigned long long kTimeoutNs = 30ull * 1000 * 1000 * 1000;

}  // namespace

struct PeerArgs {
  int n, rank;
  char* data[kMaxRanks];       // rank r's exchange buffer (two halves of cap bytes), addressable from this device
  uint32_t* flags[kMaxRanks];  // rank r's flags [blocks][kMaxRanks]: flags[b][s] = exchanges block b of rank s posted
  uint32_t* counter;           // this rank's [blocks] exchange counters (blocks: the set's, kBlocks or kWideMaxRows)
  const volatile int* abort;   // host-mapped: set when a rank failed on the host
  int64_t cap;                 // bytes per half
  uint64_t* ll[kMaxRanks];     // rank r's LL buffer [2 halves][kMaxRanks sources][ll_slot] (LMFLEET_TP_LL)
  int64_t ll_slot;             // 8-byte words per (half, source)
};

namespace {

__device__ __forceinline__ uint32_t ld_acquire_sys(const uint32_t* p) {
  uint32_t v;
  asm volatile("ld.acquire.sys.global.u32 %0, [%1];" : "=r"(v) : "l"(p) : "memory");
  return v;
}
__device__ __forceinline__ void st_release_sys(uint32_t* p, uint32_t v) {
  asm volatile("st.release.sys.global.u32 [%0], %1;" ::"l"(p), "r"(v) : "memory");
}
__device__ __forceinline__ unsigned long long global_ns() {
  unsigned long long t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}

// Every polling loop's check, every 1024 spins: true when a rank failed on the host (the exchange was aborted: give
// up, the step has failed); a peer silent for kTimeoutNs traps (fail the context rather than hang).
__device__ __forceinline__ bool poll_gave_up(const PeerArgs& a, uint32_t spins, unsigned long long t0) {
  if ((spins & 1023) != 0) return false;
  if (*a.abort) return true;
  if (global_ns() - t0 > kTimeoutNs) __trap();
  return false;
}

// Every thread of the block calls it. False when the exchange was aborted.
__device__ bool peer_barrier(const PeerArgs& a, uint32_t c) {
  __syncthreads();  // the block's writes into its own buffer are done
  const int t = threadIdx.x;
  int ok = 1;
  if (t < a.n && t != a.rank) {
    // release at system scope: the block's writes (ordered before it by the barrier above) are visible to the
    // peer that acquires this flag
    st_release_sys(a.flags[t] + blockIdx.x * kMaxRanks + a.rank, c);
    const uint32_t* mine = a.flags[a.rank] + blockIdx.x * kMaxRanks + t;
    const unsigned long long t0 = global_ns();
    for (uint32_t spins = 1; (int32_t)(ld_acquire_sys(mine) - c) < 0; spins++)
      if (poll_gave_up(a, spins, t0)) {
        ok = 0;
        break;
      }
  }
  return __syncthreads_and(ok);
}

template <int B> struct Raw;
template <> struct Raw<16> { using type = uint4; };
template <> struct Raw<4> { using type = unsigned int; };
template <> struct Raw<2> { using type = unsigned short; };

// V elements of T at once (16 bytes when the data is aligned for it)
template <typename T, int V>
struct alignas(sizeof(T) * V) Pack {
  T v[V];
};

template <typename T, int V>
__device__ __forceinline__ Pack<T, V> load_fresh(const T* p) {  // another GPU's memory: never from a stale cache line
  using R = typename Raw<sizeof(T) * V>::type;
  R r = __ldcv(reinterpret_cast<const R*>(p));
  return *reinterpret_cast<Pack<T, V>*>(&r);
}

// in == out for the all-reduce (in place): each thread reads its units before it writes them
template <typename T, int V, bool kGather>
__global__ void __launch_bounds__(kThreads) peer_kernel(PeerArgs a, const T* in, T* out, int64_t count) {
  pdl_wait();  // launched as a programmatic dependent (LMFLEET_TP_PDL=1): nothing is read before the kernel before ends
  const int64_t cap = a.cap / (int64_t)sizeof(T);  // elements per half (a multiple of V)
  uint32_t c = a.counter[blockIdx.x];
  bool ok = true;
  for (int64_t off = 0; ok && off < count; off += cap) {
    const int64_t len = count - off < cap ? count - off : cap;
    c++;
    T* mine = reinterpret_cast<T*>(a.data[a.rank] + (c & 1) * a.cap);
    // this block's units [lo, hi) of the chunk: the same for the copy and the read, on every rank
    const int64_t units = len / V, per = (units + kBlocks - 1) / kBlocks;
    const int64_t lo = blockIdx.x * per, hi = lo + per < units ? lo + per : units;
    // the copy into this rank's buffer, kGatherLoads units per thread loaded before they are stored (as the gather below)
    for (int64_t u0 = lo + threadIdx.x; u0 < hi; u0 += (int64_t)kThreads * kGatherLoads) {
      Pack<T, V> p[kGatherLoads];
#pragma unroll
      for (int j = 0; j < kGatherLoads; j++) {
        const int64_t u = u0 + (int64_t)j * kThreads;
        if (u < hi) p[j] = *reinterpret_cast<const Pack<T, V>*>(in + off + u * V);
      }
#pragma unroll
      for (int j = 0; j < kGatherLoads; j++) {
        const int64_t u = u0 + (int64_t)j * kThreads;
        if (u < hi) *reinterpret_cast<Pack<T, V>*>(mine + u * V) = p[j];
      }
    }
    ok = peer_barrier(a, c);
    if (!ok) break;
    if (kGather) {
      // kGatherLoads units per thread loaded before any is stored: the stores to `out` may alias the loads for all the
      // compiler knows, so one load at a time would wait one NVLink round trip per 16 bytes (4 MB of batch-64 logits
      // took 33 us on two H100s)
      for (int64_t u0 = lo + threadIdx.x; u0 < hi; u0 += (int64_t)kThreads * kGatherLoads)
        for (int r = 0; r < a.n; r++) {
          const T* src = reinterpret_cast<const T*>(a.data[r] + (c & 1) * a.cap);
          Pack<T, V> p[kGatherLoads];
#pragma unroll
          for (int j = 0; j < kGatherLoads; j++) {
            const int64_t u = u0 + (int64_t)j * kThreads;
            if (u < hi) p[j] = load_fresh<T, V>(src + u * V);
          }
#pragma unroll
          for (int j = 0; j < kGatherLoads; j++) {
            const int64_t u = u0 + (int64_t)j * kThreads;
            if (u < hi) *reinterpret_cast<Pack<T, V>*>(out + (int64_t)r * count + off + u * V) = p[j];
          }
        }
      continue;
    }
    for (int64_t u = lo + threadIdx.x; u < hi; u += kThreads) {
      float s[V];
      {
        const Pack<T, V> p = load_fresh<T, V>(reinterpret_cast<const T*>(a.data[0] + (c & 1) * a.cap) + u * V);
#pragma unroll
        for (int j = 0; j < V; j++) s[j] = (float)p.v[j];
      }
      for (int r = 1; r < a.n; r++) {
        const Pack<T, V> p = load_fresh<T, V>(reinterpret_cast<const T*>(a.data[r] + (c & 1) * a.cap) + u * V);
#pragma unroll
        for (int j = 0; j < V; j++) s[j] += (float)p.v[j];
      }
      Pack<T, V> o;
#pragma unroll
      for (int j = 0; j < V; j++) o.v[j] = (T)s[j];
      *reinterpret_cast<Pack<T, V>*>(out + off + u * V) = o;
    }
  }
  __syncthreads();
  if (threadIdx.x == 0) a.counter[blockIdx.x] = c;
}

// LMFLEET_TP_AR_PUSH (default on): the all-reduce in one chunk with the NVLink traffic as posted stores. Each block stores its
// units of `in` straight into every peer's buffer (this rank's slot there: push_slot bytes per source), meets the
// peers at the flag barrier (the release orders those stores before the flag, as it orders the pull kernel's local
// copy), then sums its own units of `in` with the slots the peers stored into its own memory: every load is local,
// where peer_kernel reads each peer's buffer across NVLink after the barrier (one more link round trip per exchange).
// Same sum order (rank 0 + rank 1 + ...), same bits. A slot is rewritten two exchanges later, after the intermediate
// barrier proved the reader's kernel for this one had ended (peer_kernel's argument).
__host__ __device__ __forceinline__ int64_t push_slot(int64_t cap, int n) { return (cap / n) & ~int64_t(255); }

template <typename T, int V>
__global__ void __launch_bounds__(kThreads) peer_push_kernel(PeerArgs a, const T* in, T* out, int64_t count) {
  pdl_wait();
  const uint32_t c = a.counter[blockIdx.x] + 1;
  const int64_t slot = push_slot(a.cap, a.n), half_off = (int64_t)(c & 1) * a.cap;
  const int64_t units = count / V, per = (units + kBlocks - 1) / kBlocks;
  const int64_t lo = blockIdx.x * per, hi = lo + per < units ? lo + per : units;
  for (int64_t u = lo + threadIdx.x; u < hi; u += kThreads) {
    const Pack<T, V> p = *reinterpret_cast<const Pack<T, V>*>(in + u * V);
    for (int r = 0; r < a.n; r++)
      if (r != a.rank)
        *reinterpret_cast<Pack<T, V>*>(a.data[r] + half_off + a.rank * slot + u * V * (int64_t)sizeof(T)) = p;
  }
  if (peer_barrier(a, c)) {
    const char* recv = a.data[a.rank] + half_off;
    for (int64_t u = lo + threadIdx.x; u < hi; u += kThreads) {
      float s[V];
      for (int r = 0; r < a.n; r++) {
        const Pack<T, V> p = r == a.rank ? *reinterpret_cast<const Pack<T, V>*>(in + u * V)
                                         : load_fresh<T, V>(reinterpret_cast<const T*>(recv + r * slot) + u * V);
#pragma unroll
        for (int j = 0; j < V; j++) s[j] = r == 0 ? (float)p.v[j] : s[j] + (float)p.v[j];
      }
      Pack<T, V> o;
#pragma unroll
      for (int j = 0; j < V; j++) o.v[j] = (T)s[j];
      *reinterpret_cast<Pack<T, V>*>(out + u * V) = o;
    }
  }
  __syncthreads();
  if (threadIdx.x == 0) a.counter[blockIdx.x] = c;
}

// The rows of the fused exchange kernels (block-uniform: block_sum inside): rank_sum(e, sum) gives the all-reduce's f32
// sum in rank order of the 8 halves at e; residual += half(sum), y = rms_norm(residual) * w with ops/rms_norm.cu's
// arithmetic for the same width (NT threads holding VPT vectors of 8 each; the same block_sum).
// pre (optional): this thread's residual and weight vectors of the block's first row (row blockIdx.x), loaded by the
// caller earlier (preload_rows); later rows load their own.
template <int VPT>
struct RowPreload {
  half8 res[VPT], w[VPT];
};
template <int VPT>
__device__ __forceinline__ void preload_rows(int rows, int cols, int nt, const half* residual, const half* __restrict__ w,
                                             RowPreload<VPT>& pre) {
  const int nvec = cols / 8;
  if ((int)blockIdx.x >= rows) return;
#pragma unroll
  for (int j = 0; j < VPT; j++) {
    const int i = threadIdx.x + j * nt;
    if (threadIdx.x < nt && i < nvec) {
      pre.res[j] = *reinterpret_cast<const half8*>(residual + (size_t)blockIdx.x * cols + i * 8);
      pre.w[j] = ldg_half8(w + i * 8);
    }
  }
}

template <int VPT, typename RankSum>
__device__ __forceinline__ void add_rms_norm_rows(int rows, int cols, int nt, half* residual, const half* __restrict__ w,
                                                  half* y, float eps, float* scratch, RankSum rank_sum,
                                                  const RowPreload<VPT>* pre = nullptr) {
  const int nvec = cols / 8;
  for (int row = blockIdx.x; row < rows; row += gridDim.x) {
    const bool have = pre && row == (int)blockIdx.x;
    float v[VPT][8];
    float ss = 0.f;
#pragma unroll
    for (int j = 0; j < VPT; j++) {
      const int i = threadIdx.x + j * nt;
      if (threadIdx.x < nt && i < nvec) {
        const size_t e = (size_t)row * cols + i * 8;
        float sum[8];
        rank_sum(e, sum);
        const half8 s8 = float_to_half8(sum);  // the all-reduce's f16 result
        half8 rr = have ? pre->res[j] : *reinterpret_cast<const half8*>(residual + e);
#pragma unroll
        for (int q = 0; q < 4; q++) rr.h[q] = __hadd2(rr.h[q], s8.h[q]);
        *reinterpret_cast<half8*>(residual + e) = rr;
        half8_to_float(rr, v[j]);
#pragma unroll
        for (int q = 0; q < 8; q++) ss += v[j][q] * v[j][q];
      }
    }
    ss = block_sum(ss, scratch);
    const float inv = rsqrtf(ss / cols + eps);
#pragma unroll
    for (int j = 0; j < VPT; j++) {
      const int i = threadIdx.x + j * nt;
      if (threadIdx.x < nt && i < nvec) {
        float wf[8], o[8];
        half8_to_float(have ? pre->w[j] : ldg_half8(w + i * 8), wf);
#pragma unroll
        for (int q = 0; q < 8; q++) o[q] = v[j][q] * inv * wf[q];
        *reinterpret_cast<half8*>(y + (size_t)row * cols + i * 8) = float_to_half8(o);
      }
    }
    __syncthreads();  // scratch is reused by the next row's block_sum
  }
}

// The all-reduce of the row-parallel o / down projection fused with what follows it on every rank: residual += sum,
// y = rms_norm(residual) * w. Rows are split over the blocks (row % kBlocks); every block joins the barrier. The
// arithmetic is ops/rms_norm.cu's for the same width (the sum rounded to f16 first, as all_reduce_sum_f16 leaves
// it; NT threads holding VPT vectors of 8 each; the same block_sum), so the result has the bits of the two steps.
// pdl_trigger at the start: the next GEMV streams its weights while the exchange waits on the peers.
// kPush (LMFLEET_TP_AR_PUSH, default on): the rows go straight into every peer's buffer (this rank's slot there) and the sums
// read only local memory, as peer_push_kernel.
template <int VPT, bool kPush>
__global__ void __launch_bounds__(256) peer_add_rms_norm_kernel(PeerArgs a, const half* x, half* residual, const half* __restrict__ w,
                                                                half* y, int rows, int cols, int nt, float eps) {
  pdl_wait();
  pdl_trigger();
  __shared__ float scratch[32];
  const int nvec = cols / 8;
  const uint32_t c = a.counter[blockIdx.x] + 1;
  const int64_t half_off = (int64_t)(c & 1) * a.cap, slot = push_slot(a.cap, a.n);
  for (int row = blockIdx.x; row < rows; row += gridDim.x)
    for (int i = threadIdx.x; i < nvec; i += blockDim.x) {
      const size_t e = (size_t)row * cols + i * 8;
      const half8 v = *reinterpret_cast<const half8*>(x + e);
      if (kPush) {
        for (int r = 0; r < a.n; r++)
          if (r != a.rank) *reinterpret_cast<half8*>(a.data[r] + half_off + a.rank * slot + e * 2) = v;
      } else {
        *reinterpret_cast<half8*>(a.data[a.rank] + half_off + e * 2) = v;
      }
    }
  if (peer_barrier(a, c))
    add_rms_norm_rows<VPT>(rows, cols, nt, residual, w, y, eps, scratch, [&](size_t e, float (&sum)[8]) {
      for (int r = 0; r < a.n; r++) {
        const Pack<half, 8> p =
            kPush ? (r == a.rank ? *reinterpret_cast<const Pack<half, 8>*>(x + e)
                                 : load_fresh<half, 8>(reinterpret_cast<const half*>(a.data[a.rank] + half_off + r * slot) + e))
                  : load_fresh<half, 8>(reinterpret_cast<const half*>(a.data[r] + half_off) + e);
#pragma unroll
        for (int q = 0; q < 8; q++) sum[q] = r == 0 ? __half2float(p.v[q]) : sum[q] + __half2float(p.v[q]);
      }
    });
  __syncthreads();
  if (threadIdx.x == 0) a.counter[blockIdx.x] = c;
}

// LMFLEET_TP_LL (default on): the fused all-reduce + add + rms_norm in the low-latency protocol (NCCL's LL): each rank stores its
// partial straight into every peer's LL buffer as 8-byte words of (32 data bits, the exchange's counter), single-copy
// atomic, so a reader polls its own memory until every word carries this exchange's count; no barrier, no fence, no
// read across NVLink (the flag barrier kernel above: a release store to the peer, a spin, then a remote read of the
// peer's partial). Same sum order (rank 0 + rank 1 + ...) and arithmetic as peer_add_rms_norm_kernel, so the same bits.
// A half is written again two exchanges later: by then the peer has finished the kernel that read it (its next
// exchange's words, which this rank waited for, are stored only after that kernel ends).
__device__ __forceinline__ void st_ll(uint64_t* p, uint32_t data, uint32_t flag) {
  asm volatile("st.volatile.global.u64 [%0], %1;" ::"l"(p), "l"((uint64_t)flag << 32 | data) : "memory");
}
__device__ __forceinline__ uint64_t ld_ll(const uint64_t* p) {
  uint64_t v;
  asm volatile("ld.volatile.global.u64 %0, [%1];" : "=l"(v) : "l"(p) : "memory");
  return v;
}
// two words in one 16-byte load (p 16-byte aligned); each 8-byte element is still single-copy atomic, so each word's
// count is checked on its own
__device__ __forceinline__ void ld_ll2(const uint64_t* p, uint64_t& a, uint64_t& b) {
  asm volatile("ld.volatile.global.v2.u64 {%0, %1}, [%2];" : "=l"(a), "=l"(b) : "l"(p) : "memory");
}

// gather (tp_ll_gather, two ranks): a thread's words from the peer for its vectors of the block's first row, all
// loads in flight at once, re-issued together until every word carries count c. The per-word poll in the kernel
// below waits one memory round trip per word in turn (8 per thread at a 4096-wide row), each behind the next GEMV's
// weight stream once the trigger has let it start.
template <int VPT>
struct LlGather {
  uint32_t d[VPT][4];
};
template <int VPT>
__device__ __forceinline__ bool ll_gather_row(const PeerArgs& a, int64_t half_off, uint32_t c, int cols, int nt,
                                              LlGather<VPT>& out) {
  const int nvec = cols / 8, peer = 1 - a.rank;
  const uint64_t* base = a.ll[a.rank] + half_off + (int64_t)peer * a.ll_slot + (size_t)blockIdx.x * cols / 2;
  uint64_t wv[VPT][4];
  bool live[VPT];
#pragma unroll
  for (int j = 0; j < VPT; j++) {
    const int i = threadIdx.x + j * nt;
    live[j] = threadIdx.x < nt && i < nvec;
    if (live[j]) {
      ld_ll2(base + i * 4, wv[j][0], wv[j][1]);
      ld_ll2(base + i * 4 + 2, wv[j][2], wv[j][3]);
    }
  }
  const unsigned long long t0 = global_ns();
  for (uint32_t spins = 1;; spins++) {
    bool all = true;
#pragma unroll
    for (int j = 0; j < VPT; j++)
#pragma unroll
      for (int q = 0; q < 4; q++) all = all && (!live[j] || (uint32_t)(wv[j][q] >> 32) == c);
    if (all) break;
    if (poll_gave_up(a, spins, t0)) return false;
#pragma unroll
    for (int j = 0; j < VPT; j++) {
      const int i = threadIdx.x + j * nt;
      if (live[j] && ((uint32_t)(wv[j][0] >> 32) != c || (uint32_t)(wv[j][1] >> 32) != c)) ld_ll2(base + i * 4, wv[j][0], wv[j][1]);
      if (live[j] && ((uint32_t)(wv[j][2] >> 32) != c || (uint32_t)(wv[j][3] >> 32) != c))
        ld_ll2(base + i * 4 + 2, wv[j][2], wv[j][3]);
    }
  }
#pragma unroll
  for (int j = 0; j < VPT; j++)
#pragma unroll
    for (int q = 0; q < 4; q++) out.d[j][q] = (uint32_t)wv[j][q];
  return true;
}

// push_first (tp_ll_push_first): every word of the block's vectors goes out before the first poll (the same vectors,
// in add_rms_norm_rows' order); otherwise each vector is stored and then polled in turn.
// preload (tp_ll_preload): the block's residual and norm-weight vectors are loaded before pdl_trigger, so they are
// not queued behind the next GEMV's early weight loads (which the trigger lets start) once the peers' words are in.
template <int VPT>
__global__ void __launch_bounds__(256) peer_add_rms_norm_ll_kernel(PeerArgs a, const half* x, half* residual,
                                                                   const half* __restrict__ w, half* y, int rows, int cols,
                                                                   int nt, float eps, int push_first, int preload, int gather) {
  // The counter and the preload are read before pdl_wait: launched as a programmatic dependent (tp_ll_pdl, default) of
  // the o / down GEMV, these cold loads then overlap that GEMV's tail. Safe: this block's counter was last written by
  // its previous exchange and the residual by the exchange before this one, and both of those kernels ended before
  // the GEMV this kernel depends on passed its own griddepcontrol.wait (every kernel of the chain waits for the one
  // before it); the norm weight is never written. x, the GEMV's output, is read only after pdl_wait.
  RowPreload<VPT> pre;
  if (preload) preload_rows<VPT>(rows, cols, nt, residual, w, pre);
  const uint32_t c = a.counter[blockIdx.x] + 1;
  pdl_wait();
  pdl_trigger();
  __shared__ float scratch[32];
  const int64_t half_off = (int64_t)(c & 1) * kMaxRanks * a.ll_slot;
  int ok = 1;
  // the vector at e's 4 words (from e / 2) into every peer's slot for this rank
  auto push = [&](size_t e, const uint4& mine) {
    const uint32_t wd[4] = {mine.x, mine.y, mine.z, mine.w};
    for (int r = 0; r < a.n; r++) {
      if (r == a.rank) continue;
      uint64_t* dst = a.ll[r] + half_off + (int64_t)a.rank * a.ll_slot + e / 2;
#pragma unroll
      for (int q = 0; q < 4; q++) st_ll(dst + q, wd[q], c);
    }
  };
  if (push_first) {
    const int nvec = cols / 8;
    for (int row = blockIdx.x; row < rows; row += gridDim.x)
#pragma unroll
      for (int j = 0; j < VPT; j++) {
        const int i = threadIdx.x + j * nt;
        if (threadIdx.x < nt && i < nvec) {
          const size_t e = (size_t)row * cols + i * 8;
          push(e, *reinterpret_cast<const uint4*>(x + e));
        }
      }
  }
  // gather: the peer's words of the block's first row polled all at once (two ranks, after push_first)
  LlGather<VPT> gat;
  const bool gathered = gather && push_first && a.n == 2 && (int)blockIdx.x < rows;
  if (gathered && !ll_gather_row<VPT>(a, half_off, c, cols, nt, gat)) ok = 0;
  add_rms_norm_rows<VPT>(rows, cols, nt, residual, w, y, eps, scratch, [&](size_t e, float (&sum)[8]) {
    // the peers' words for this vector from our own memory (pushed above, or here first)
    const uint4 mine = *reinterpret_cast<const uint4*>(x + e);
    const uint32_t wd[4] = {mine.x, mine.y, mine.z, mine.w};
    if (!push_first) push(e, mine);
    const size_t row = e / (size_t)cols;
    const int jg = gathered && row == blockIdx.x ? (int)((e - row * cols) / 8 - threadIdx.x) / nt : -1;
    for (int r = 0; r < a.n; r++) {
      uint32_t got[4];
      if (r == a.rank) {
#pragma unroll
        for (int q = 0; q < 4; q++) got[q] = wd[q];
      } else if (jg >= 0) {
#pragma unroll
        for (int j = 0; j < VPT; j++)
          if (j == jg) {
#pragma unroll
            for (int q = 0; q < 4; q++) got[q] = gat.d[j][q];
          }
      } else {
        const uint64_t* src = a.ll[a.rank] + half_off + (int64_t)r * a.ll_slot + e / 2;
#pragma unroll
        for (int q = 0; q < 4; q++) {
          uint64_t u = ld_ll(src + q);
          const unsigned long long t0 = global_ns();
          for (uint32_t spins = 1; ok && (uint32_t)(u >> 32) != c; spins++) {
            if (poll_gave_up(a, spins, t0)) ok = 0;
            u = ld_ll(src + q);
          }
          got[q] = (uint32_t)u;
        }
      }
      const half2* hp = reinterpret_cast<const half2*>(got);
#pragma unroll
      for (int q = 0; q < 4; q++) {
        const float2 f = __half22float2(hp[q]);
        if (r == 0) {
          sum[2 * q] = f.x;
          sum[2 * q + 1] = f.y;
        } else {
          sum[2 * q] += f.x;
          sum[2 * q + 1] += f.y;
        }
      }
    }
  }, preload ? &pre : nullptr);
  __syncthreads();
  if (threadIdx.x == 0) a.counter[blockIdx.x] = c;
}

}  // namespace

// default on since session 8: tp 2 batch 1 2.710 -> 2.669 ms/step alone (session 7, two H200s, same process), with
// PDL 2.736 -> 2.682 (session 8); parity tp 1 vs tp 2 and every collective row bit-exact with it after the
// add_rms_norm_rows refactor (session 8). LMFLEET_TP_LL=0: the two-phase fused kernel.
bool tp_ll_enabled() { return env_switch("LMFLEET_TP_LL", true); }
bool tp_ll_push_first() { return env_switch("LMFLEET_TP_LL_PUSH", true); }
bool tp_pdl_requested() { return env_switch("LMFLEET_TP_PDL", false); }
// The LL kernel alone launches as a programmatic dependent unless LMFLEET_TP_PDL=0: default since session 12, once its
// counter, residual and norm-weight loads had moved ahead of its pdl_wait (two H100s, 7B tp 2 batch 1, same process,
// three calls: 3.069 vs 3.115, 3.103 vs 3.090 and 3.074 vs 3.075 ms/step: +0.4% on average, within the noise in two of
// the three; the same bits). The other exchange kernels stay plain launches by default (batch 64 with PDL on all of
// them: 5.024 vs 4.999).
bool tp_ll_pdl() { return env_switch("LMFLEET_TP_PDL", true); }
// default on since session 11 (two H100s, 7B tp 2 batch 1, same process: 3.149 vs 3.180 ms/step)
bool tp_ll_preload() { return env_switch("LMFLEET_TP_LL_PRE", true); }
// LMFLEET_TP_LL_GATHER (=0 off): at two ranks the LL kernel polls all of a thread's words at once (ll_gather_row).
// Default since session 12 (two H100s, 7B tp 2 batch 1, same process): 3.074 vs 3.110 and 3.129 vs 3.169 ms/step.
bool tp_ll_gather() { return env_switch("LMFLEET_TP_LL_GATHER", true); }
bool tp_no_exchange() { return env_switch("LMFLEET_TP_NO_EXCHANGE", false); }
// default on since session 11 (two H100s, 7B tp 2, same process): one 64-row all-reduce 6.70 vs 7.63 us; with the
// wide fused kernel up to 64 rows (below) batch 64 5.032 vs 5.150 ms/step; batch 1 unchanged (the LL kernel).
bool tp_ar_push() { return env_switch("LMFLEET_TP_AR_PUSH", true); }

// Default: 64 rows with the push kernels (the wide fused kernel, pushing, measured above: 7.97 us per 64-row exchange
// + add + rms_norm vs 7.63 + the norm kernel), else 16 (the pulling wide kernel was no faster: 5.125 vs 5.150).
int tp_fuse_rows() {
  return std::max(0, std::min(kWideMaxRows, env_int("LMFLEET_TP_FUSE_ROWS", tp_ar_push() ? 64 : kFuseMaxRows)));
}

struct PeerExchange::Rank {
  int device = 0;
  cudaStream_t stream = nullptr;
  struct Set {
    char* data = nullptr;        // two halves
    uint32_t* flags = nullptr;   // [blocks][kMaxRanks]
    uint32_t* counter = nullptr; // [blocks]
  } set[2];                      // 0: kBlocks, cap_ (every kernel but the wide fused one); 1: kWideMaxRows, wide_cap_
  uint64_t* ll = nullptr;        // [2][kMaxRanks][ll_slot_] (LMFLEET_TP_LL)
};

std::unique_ptr<PeerExchange> PeerExchange::make(const std::vector<int>& devices, const std::vector<cudaStream_t>& streams,
                                                 std::string* why) {
  const char* env = std::getenv("LMFLEET_TP_P2P");
  const std::string mode = env ? env : "";
  if (mode == "0") {
    *why = "LMFLEET_TP_P2P=0";
    return nullptr;
  }
  const int n = (int)devices.size();
  if (n < 2 || n > kMaxRanks) {
    *why = "peer exchange takes 2 to " + std::to_string(kMaxRanks) + " ranks";
    return nullptr;
  }
  for (int i = 0; i < n; i++)
    for (int j = 0; j < n; j++) {
      if (i == j) continue;
      int can = 0;
      LMF_CUDA_CHECK(cudaDeviceCanAccessPeer(&can, devices[i], devices[j]));
      if (!can) {
        *why = "GPU " + std::to_string(devices[i]) + " cannot access GPU " + std::to_string(devices[j]) + "'s memory";
        return nullptr;
      }
    }
  std::unique_ptr<PeerExchange> p(new PeerExchange());
  p->cap_ = 4u << 20;
  p->wide_cap_ = (size_t)kWideMaxRows * kFuseMaxCols * 2;  // rows x the widest row the fused kernel takes
  p->ll_slot_ = (int64_t)kFuseMaxRows * kFuseMaxCols / 2;  // the narrow set's rows x the widest row, 2 halves per word
  p->eager_max_ = mode == "all" ? SIZE_MAX : p->cap_;
  int prev = 0;
  LMF_CUDA_CHECK(cudaGetDevice(&prev));
  p->ranks_.resize(n);
  for (int i = 0; i < n; i++) {
    Rank& r = p->ranks_[i];
    r.device = devices[i];
    r.stream = streams[i];
    LMF_CUDA_CHECK(cudaSetDevice(r.device));
    for (int j = 0; j < n; j++) {
      if (j == i) continue;
      const cudaError_t e = cudaDeviceEnablePeerAccess(devices[j], 0);
      if (e == cudaErrorPeerAccessAlreadyEnabled) {
        cudaGetLastError();  // clear the sticky-free error state
      } else {
        LMF_CUDA_CHECK(e);
      }
    }
    for (int k = 0; k < 2; k++) {
      Rank::Set& st = r.set[k];
      const size_t blocks = k == 0 ? kBlocks : kWideMaxRows, cap = k == 0 ? p->cap_ : p->wide_cap_;
      LMF_CUDA_CHECK(cudaMalloc(&st.data, 2 * cap));
      LMF_CUDA_CHECK(cudaMalloc(&st.flags, sizeof(uint32_t) * blocks * kMaxRanks));
      LMF_CUDA_CHECK(cudaMalloc(&st.counter, sizeof(uint32_t) * blocks));
      LMF_CUDA_CHECK(cudaMemset(st.flags, 0, sizeof(uint32_t) * blocks * kMaxRanks));
      LMF_CUDA_CHECK(cudaMemset(st.counter, 0, sizeof(uint32_t) * blocks));
    }
    const size_t ll_bytes = sizeof(uint64_t) * 2 * kMaxRanks * (size_t)p->ll_slot_;
    LMF_CUDA_CHECK(cudaMalloc(&r.ll, ll_bytes));
    LMF_CUDA_CHECK(cudaMemset(r.ll, 0, ll_bytes));  // counts start at 1: no word matches before it is written
    LMF_CUDA_CHECK(cudaDeviceSynchronize());
  }
  void* h = nullptr;
  LMF_CUDA_CHECK(cudaHostAlloc(&h, sizeof(int), cudaHostAllocMapped | cudaHostAllocPortable));
  p->abort_host_ = static_cast<volatile int*>(h);
  *p->abort_host_ = 0;
  LMF_CUDA_CHECK(cudaHostGetDevicePointer(reinterpret_cast<void**>(&p->abort_dev_), h, 0));
  LMF_CUDA_CHECK(cudaSetDevice(prev));
  return p;
}

PeerExchange::~PeerExchange() {
  for (Rank& r : ranks_) {
    cudaSetDevice(r.device);
    if (r.stream) cudaStreamSynchronize(r.stream);
    for (Rank::Set& st : r.set) {
      if (st.data) cudaFree(st.data);
      if (st.flags) cudaFree(st.flags);
      if (st.counter) cudaFree(st.counter);
    }
    if (r.ll) cudaFree(r.ll);
  }
  if (abort_host_) cudaFreeHost(const_cast<int*>(abort_host_));
}

void PeerExchange::abort() {
  if (abort_host_) *abort_host_ = 1;
}

namespace {
// A plain launch, or (sm_90, `pdl`) a programmatic dependent one whose launch overlaps the end of the kernel before it
// (the kernels pdl_wait() before they read what that kernel writes). For every exchange kernel with LMFLEET_TP_PDL=1:
// noise in sessions 5, 8 and 11 (session 11: tp 2 batch 1 3.178 vs 3.149 ms/step); for the LL kernel by default
// (tp_ll_pdl).
bool sm90() {
  static const bool yes = [] {
    int dev = 0, major = 0;
    return cudaGetDevice(&dev) == cudaSuccess && cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) == cudaSuccess &&
           major >= 9;
  }();
  return yes;
}
template <typename... KArgs, typename... Args>
void launch_kernel_pdl(bool pdl, void (*kern)(KArgs...), int blocks, int threads, cudaStream_t s, Args... args) {
  LMF_CUDA_CHECK(launch_maybe_pdl(pdl && sm90(), kern, dim3(blocks), dim3(threads), s, args...));
}
template <typename... KArgs, typename... Args>
void launch_kernel(void (*kern)(KArgs...), int blocks, int threads, cudaStream_t s, Args... args) {
  launch_kernel_pdl(tp_pdl_requested(), kern, blocks, threads, s, args...);
}
}  // namespace

PeerArgs PeerExchange::args(int rank, int set) const {
  PeerArgs a{};
  a.n = (int)ranks_.size();
  a.rank = rank;
  for (int r = 0; r < a.n; r++) {
    a.data[r] = ranks_[(size_t)r].set[set].data;
    a.flags[r] = ranks_[(size_t)r].set[set].flags;
  }
  a.counter = ranks_[(size_t)rank].set[set].counter;
  a.abort = abort_dev_;
  a.cap = (int64_t)(set == 0 ? cap_ : wide_cap_);
  for (int r = 0; r < a.n; r++) a.ll[r] = ranks_[(size_t)r].ll;
  a.ll_slot = ll_slot_;
  return a;
}

template <typename T, bool kGather>
void PeerExchange::launch(int rank, const void* in, void* out, int64_t count) {
  if (count <= 0) return;
  const Rank& me = ranks_[(size_t)rank];
  const PeerArgs a = args(rank, 0);
  LMF_CUDA_CHECK(cudaSetDevice(me.device));
  constexpr int V16 = 16 / (int)sizeof(T);
  const bool aligned = count % V16 == 0 && reinterpret_cast<uintptr_t>(in) % 16 == 0 && reinterpret_cast<uintptr_t>(out) % 16 == 0;
  const T* i = static_cast<const T*>(in);
  T* o = static_cast<T*>(out);
  if (!kGather && aligned && tp_ar_push() && count * (int64_t)sizeof(T) <= push_slot(a.cap, a.n))
    launch_kernel(peer_push_kernel<T, V16>, kBlocks, kThreads, me.stream, a, i, o, count);
  else if (aligned)
    launch_kernel(peer_kernel<T, V16, kGather>, kBlocks, kThreads, me.stream, a, i, o, count);
  else
    launch_kernel(peer_kernel<T, 1, kGather>, kBlocks, kThreads, me.stream, a, i, o, count);
}

bool PeerExchange::all_reduce_add_rms_norm_f16(int rank, const void* x, void* residual, const void* w, void* y, int64_t rows,
                                               int64_t cols, float eps) {
  if (rows <= 0) return true;
  const int64_t nvec = cols / 8;
  // ops/rms_norm.cu's vectorized shape only (its thread count and vectors per thread). Up to 16 rows: the 32-block set,
  // rows split over its blocks. More rows, on the 32-block set (two rows per block at batch 64), were slower than the
  // element-split all-reduce and the norm kernel (7B tp 2 on two H100s: 5.37 vs 5.06 ms/step; batch 1: 3.42 vs 3.51);
  // up to LMFLEET_TP_FUSE_ROWS rows (read at each call; tp_fuse_rows' default: 64 with the push kernels) the wide set
  // takes them, one block per row.
  // The LL kernel at 64 rows (two per block of the 32-block set, session 10) was slower still: 16.6 us per exchange vs
  // 7.7 for the all-reduce alone, tp 2 batch 64 5.70 vs 5.17 ms/step.
  if (cols % 8 || cols > kFuseMaxCols) return false;
  const bool narrow = rows <= kFuseMaxRows && (size_t)(rows * cols * 2) <= cap_;
  const bool ll = narrow && tp_ll_enabled();
  const bool wide = !narrow && rows <= tp_fuse_rows() && (size_t)(rows * cols * 2) <= wide_cap_;
  // LMFLEET_TP_AR_PUSH: the two-phase kernel pushes where the rows fit one source's slot of a half
  const bool push = !ll && tp_ar_push() && rows * cols * 2 <= push_slot((int64_t)(narrow ? cap_ : wide_cap_), (int)ranks_.size());
  if (!narrow && !wide) return false;
  for (const void* p : {x, (const void*)residual, w, (const void*)y})
    if (reinterpret_cast<uintptr_t>(p) % 16) return false;
  const int nt = nvec <= 256 ? (int)((nvec + 31) / 32) * 32 : 256;
  const int vpt = (int)((nvec + nt - 1) / nt);
  const PeerArgs a = args(rank, narrow ? 0 : 1);
  const int blocks = narrow ? kBlocks : (int)rows;
  LMF_CUDA_CHECK(cudaSetDevice(ranks_[(size_t)rank].device));
  const cudaStream_t s = ranks_[(size_t)rank].stream;
  const half* xh = static_cast<const half*>(x);
  half* rh = static_cast<half*>(residual);
  const half* wh = static_cast<const half*>(w);
  half* yh = static_cast<half*>(y);
  if (ll) {
    const int pf = tp_ll_push_first() ? 1 : 0, pre = tp_ll_preload() ? 1 : 0, ga = tp_ll_gather() ? 1 : 0;
    const bool pdl = tp_ll_pdl();
    switch (vpt) {
      case 1: launch_kernel_pdl(pdl, peer_add_rms_norm_ll_kernel<1>, blocks, 256, s, a, xh, rh, wh, yh, (int)rows, (int)cols, nt, eps, pf, pre, ga); break;
      case 2: launch_kernel_pdl(pdl, peer_add_rms_norm_ll_kernel<2>, blocks, 256, s, a, xh, rh, wh, yh, (int)rows, (int)cols, nt, eps, pf, pre, ga); break;
      default: launch_kernel_pdl(pdl, peer_add_rms_norm_ll_kernel<4>, blocks, 256, s, a, xh, rh, wh, yh, (int)rows, (int)cols, nt, eps, pf, pre, ga); break;
    }
    return true;
  }
  if (push) {
    switch (vpt) {
      case 1: launch_kernel(peer_add_rms_norm_kernel<1, true>, blocks, 256, s, a, xh, rh, wh, yh, (int)rows, (int)cols, nt, eps); break;
      case 2: launch_kernel(peer_add_rms_norm_kernel<2, true>, blocks, 256, s, a, xh, rh, wh, yh, (int)rows, (int)cols, nt, eps); break;
      default: launch_kernel(peer_add_rms_norm_kernel<4, true>, blocks, 256, s, a, xh, rh, wh, yh, (int)rows, (int)cols, nt, eps); break;
    }
    return true;
  }
  switch (vpt) {
    case 1: launch_kernel(peer_add_rms_norm_kernel<1, false>, blocks, 256, s, a, xh, rh, wh, yh, (int)rows, (int)cols, nt, eps); break;
    case 2: launch_kernel(peer_add_rms_norm_kernel<2, false>, blocks, 256, s, a, xh, rh, wh, yh, (int)rows, (int)cols, nt, eps); break;
    default: launch_kernel(peer_add_rms_norm_kernel<4, false>, blocks, 256, s, a, xh, rh, wh, yh, (int)rows, (int)cols, nt, eps); break;
  }
  return true;
}

void PeerExchange::all_reduce_f16(int rank, void* buf, int64_t count) { launch<half, false>(rank, buf, buf, count); }
void PeerExchange::all_reduce_f32(int rank, float* buf, int64_t count) { launch<float, false>(rank, buf, buf, count); }
void PeerExchange::all_gather(int rank, const void* send, void* recv, int64_t bytes) {
  if (bytes % 4) fail(ErrorCode::Internal, "peer all_gather: bytes must be a multiple of 4");
  launch<float, true>(rank, send, recv, bytes / 4);
}

}  // namespace lmfleet
