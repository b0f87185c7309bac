// Read-only microbenchmark: does the order of the W4A16 weight words in memory, or a load hint, change how fast the
// decode GEMV's access pattern streams them from DRAM? No math: each kernel reads exactly the bytes of one 7B linear's
// 4-bit codes with MmaX's work split (a warp owns T consecutive 8-row tiles and a k slice; S warps of a block split k;
// a ring of D k blocks, D - 1 in flight) and xors them into a sink, so the timings are the load pattern's alone.
//   tile-major: word (tile, kb, lane) at (tile * KB + kb) * 32 + lane  (the layout the kernels use today)
//   kb-major:   word (tile, kb, lane) at (kb * tiles + tile) * 32 + lane (at any moment the warps of the GPU that are at
//               the same k block read one contiguous span)
//   + L2::256B: the same loads with the 256-byte L2 prefetch-size hint; + evict_first: the L2 eviction-priority hint
// and the plain grid-stride stream read of the same bytes as the reference. 8 rotated copies of each weight (over the
// 50 MB L2), graph-timed: per launch = graph time / launches, median of 15 graph launches.
// Second table, a 7B layer's four linears read one after another (the decode step's order; each linear may only go
// past its first D - 1 k blocks once the one before it is done, as a GEMV must wait for its x): four plain launches,
// four launches as programmatic dependents (the first D - 1 k blocks of every warp issued before griddepcontrol.wait,
// as MmaX does), and one persistent kernel (every block resident, looping over units, a grid-wide barrier between the
// linears, with and without the next linear's first D - 1 k blocks issued before the barrier): is a persistent layer
// kernel worth writing, in load pattern alone?
// Build + run (GPU machine): nvcc -std=c++17 -O3 -arch=sm_90 -I src src/cuda/bench_w4_layout.cu -o /tmp/bl && /tmp/bl
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "cuda/stream_read.cuh"

#define CK(x)                                                                                  \
  do {                                                                                         \
    cudaError_t e_ = (x);                                                                      \
    if (e_ != cudaSuccess) {                                                                   \
      std::fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #x, cudaGetErrorString(e_)); \
      std::exit(1);                                                                            \
    }                                                                                          \
  } while (0)

template <int HINT>
__device__ __forceinline__ uint4 ld_w(const uint4* p) {
  uint4 r;
  if constexpr (HINT == 0)
    asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];"
                 : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w) : "l"(p));
  else if constexpr (HINT == 1)
    asm volatile("ld.global.nc.L1::no_allocate.L2::256B.v4.u32 {%0,%1,%2,%3}, [%4];"
                 : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w) : "l"(p));
  else {
    uint64_t pol;
    asm volatile("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;" : "=l"(pol));
    asm volatile("ld.global.nc.L1::no_allocate.L2::cache_hint.v4.u32 {%0,%1,%2,%3}, [%4], %5;"
                 : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w) : "l"(p), "l"(pol));
  }
  return r;
}

struct Lin {
  const uint4* qw;
  int tiles, KB;
};
struct Layer {
  Lin l[4];
};

// One block unit (8 / S units of T tiles, k split over S warps: MmaX's work split) of one linear, in two halves:
// first() issues the first D - 1 k blocks into a register ring of D, rest() the remainder, xoring what it read.
// KBM: kb-major addresses; HINT: 0 plain, 1 L2::256B, 2 L2::evict_first
template <int T, int D, bool KBM = false, int HINT = 0>
struct UnitPass {
  uint4 r[D][T];
  int tile0 = 0, kb0 = 0, kb1 = 0, nt = 0;
  const uint4* qw = nullptr;
  int tiles = 0, KB = 0;
  __device__ __forceinline__ void issue(int d, int kk) {
    if (kk < kb1) {
#pragma unroll
      for (int i = 0; i < T; i++)
        if (i < nt) {
          const size_t w = KBM ? ((size_t)kk * tiles + tile0 + i) : ((size_t)(tile0 + i) * KB + kk);
          r[d][i] = ld_w<HINT>(qw + w * 32 + (threadIdx.x & 31));
        }
    }
  }
  __device__ __forceinline__ void first(const Lin& L, int ub, int S) {
    const int warp = threadIdx.x >> 5, TB = 8 / S, tl = warp / S, slice = warp - tl * S;
    qw = L.qw;
    tiles = L.tiles;
    KB = L.KB;
    const int per = (KB + S - 1) / S;
    tile0 = (ub * TB + tl) * T;
    kb0 = min(KB, slice * per);
    kb1 = tile0 < tiles ? min(KB, kb0 + per) : kb0;
    nt = min(T, tiles - tile0);
#pragma unroll
    for (int d = 0; d < D - 1; d++) issue(d, kb0 + d);
  }
  __device__ __forceinline__ uint32_t rest() {
    uint32_t h = 0;
    for (int kk = kb0; kk < kb1; kk += D) {
#pragma unroll
      for (int d = 0; d < D; d++) {
        issue((d + D - 1) % D, kk + d + D - 1);
        if (kk + d < kb1) {
#pragma unroll
          for (int i = 0; i < T; i++)
            if (i < nt) h ^= r[d][i].x ^ r[d][i].y ^ r[d][i].z ^ r[d][i].w;
        }
      }
    }
    return h;
  }
};

// One linear's 4-bit codes with MmaX's work split (UnitPass), one launch.
template <int T, int D, bool KBM, int HINT>
__global__ void __launch_bounds__(256, 2) tiles_kernel(const uint4* __restrict__ qw, int tiles, int KB, int S, uint32_t* out) {
  UnitPass<T, D, KBM, HINT> u;
  u.first(Lin{qw, tiles, KB}, blockIdx.x, S);
  const uint32_t h = u.rest();
  if (h == 0x12345678u) out[0] = h;
}


// The same work split with the weights brought into shared memory by the copy engine (cp.async.bulk, one request per
// tile's 512-byte chunk, or one per k block of T adjacent chunks in kb-major order) through a ring of R stages per warp,
// each stage's arrival counted on its own mbarrier; lanes then read their 16 bytes with ld.shared. No registers hold
// loads in flight, so the depth is R x T x 512 bytes per warp, set by shared memory alone.
__device__ __forceinline__ uint32_t smem_addr(const void* p) { return (uint32_t)__cvta_generic_to_shared(p); }

template <int T, int R, bool KBM>
__global__ void __launch_bounds__(256, 2) bulk_kernel(const uint4* __restrict__ qw, int tiles, int KB, int S, uint32_t* out) {
  extern __shared__ __align__(128) uint4 ring[];  // [8 warps][R][T][32]
  __shared__ __align__(8) uint64_t bars[8][R];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int TB = 8 / S, tl = warp / S, slice = warp - tl * S, per = (KB + S - 1) / S;
  const int tile0 = ((int)blockIdx.x * TB + tl) * T;
  const int kb0 = min(KB, slice * per), kb1 = tile0 < tiles ? min(KB, kb0 + per) : kb0;
  const int nt = min(T, tiles - tile0);
  uint4* wr = ring + (size_t)warp * R * T * 32;
  if (lane == 0) {
#pragma unroll
    for (int d = 0; d < R; d++) asm volatile("mbarrier.init.shared::cta.b64 [%0], 1;" ::"r"(smem_addr(&bars[warp][d])));
    asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
  }
  __syncwarp();
  auto issue = [&](int d, int kk) {
    if (lane == 0 && kk < kb1) {
      const uint32_t bar = smem_addr(&bars[warp][d]);
      asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(bar), "r"(nt * 512) : "memory");
      if (KBM) {
        asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];" ::"r"(
                         smem_addr(wr + d * T * 32)),
                     "l"(qw + ((size_t)kk * tiles + tile0) * 32), "r"(nt * 512), "r"(bar)
                     : "memory");
      } else {
#pragma unroll
        for (int i = 0; i < T; i++)
          if (i < nt)
            asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], 512, [%2];" ::"r"(
                             smem_addr(wr + (d * T + i) * 32)),
                         "l"(qw + ((size_t)(tile0 + i) * KB + kk) * 32), "r"(bar)
                         : "memory");
      }
    }
  };
  uint32_t h = 0;
#pragma unroll
  for (int d = 0; d < R - 1; d++) issue(d, kb0 + d);
  int it = 0;
  for (int kk = kb0; kk < kb1; kk += R, it++) {
#pragma unroll
    for (int d = 0; d < R; d++) {
      issue((d + R - 1) % R, kk + d + R - 1);
      if (kk + d < kb1) {
        const uint32_t bar = smem_addr(&bars[warp][d]);
        uint32_t ok = 0;
        do {
          asm volatile("{ .reg .pred p; mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2; selp.u32 %0, 1, 0, p; }"
                       : "=r"(ok) : "r"(bar), "r"((uint32_t)(it & 1)) : "memory");
        } while (!ok);
#pragma unroll
        for (int i = 0; i < T; i++)
          if (i < nt) {
            const uint4 v = wr[(d * T + i) * 32 + lane];
            h ^= v.x ^ v.y ^ v.z ^ v.w;
          }
      }
      __syncwarp();  // every lane has read stage d before lane 0 refills it (next iteration's issue)
    }
  }
  if (h == 0x12345678u) out[0] = h;
}

// ---- stream-K split (third table) ----
// Every warp of a fixed grid (resident blocks only) takes an equal contiguous range of the flattened (unit of T tiles,
// k block) items, unit-major, through the same register ring of D k blocks: no wave quantization (the one-wave plans
// leave most SMs with one block of 8 warps, the many-block plans stage x in every block) at the price of units split
// between warps (a real kernel would reduce those partial sums across blocks).
template <int T, int D>
__global__ void __launch_bounds__(256, 2) streamk_kernel(const uint4* __restrict__ qw, int tiles, int KB, uint32_t* out) {
  const int lane = threadIdx.x & 31;
  const long long W = (long long)gridDim.x * 8, gw = (long long)blockIdx.x * 8 + (threadIdx.x >> 5);
  const long long I = (long long)((tiles + T - 1) / T) * KB, i0 = gw * I / W, i1 = (gw + 1) * I / W;
  uint4 r[D][T];
  uint32_t h = 0;
  auto issue = [&](int d, long long it) {
    if (it < i1) {
      const int u = (int)(it / KB), kb = (int)(it - (long long)u * KB);
#pragma unroll
      for (int t = 0; t < T; t++)
        r[d][t] = u * T + t < tiles ? ld_w<0>(qw + ((size_t)(u * T + t) * KB + kb) * 32 + lane) : make_uint4(0, 0, 0, 0);
    }
  };
#pragma unroll
  for (int d = 0; d < D - 1; d++) issue(d, i0 + d);
  for (long long it = i0; it < i1; it += D) {
#pragma unroll
    for (int d = 0; d < D; d++) {
      issue((d + D - 1) % D, it + d + D - 1);
      if (it + d < i1) {
#pragma unroll
        for (int t = 0; t < T; t++) h ^= r[d][t].x ^ r[d][t].y ^ r[d][t].z ^ r[d][t].w;
      }
    }
  }
  if (h == 0x12345678u) out[0] = h;
}

// ---- a layer's four linears in sequence (second table) ----
// one linear per launch; PDL: launched as a programmatic dependent, the first D - 1 k blocks before the wait
template <int T, int D, bool PDL>
__global__ void __launch_bounds__(256, 2) lin_kernel(Lin L, int S, uint32_t* out) {
  UnitPass<T, D> u;
  u.first(L, blockIdx.x, S);
  if (PDL) {
    lmfleet::pdl_wait();
    lmfleet::pdl_trigger();
  }
  const uint32_t h = u.rest();
  if (h == 0x12345678u) out[0] = h;
}

// every block arrives (release), then waits until the whole grid has (acquire); bar counts arrivals forever (graph
// replays keep adding gridDim.x per barrier), so the target is the next multiple of gridDim.x after this arrival
__device__ __forceinline__ void grid_barrier(unsigned* bar) {
  __syncthreads();
  if (threadIdx.x == 0) {
    __threadfence();
    const unsigned old = atomicAdd(bar, 1u);
    const unsigned target = (old / gridDim.x + 1) * gridDim.x;
    unsigned v;
    do {
      asm volatile("ld.acquire.gpu.global.u32 %0, [%1];" : "=r"(v) : "l"(bar) : "memory");
    } while ((int)(v - target) < 0);
  }
  __syncthreads();
}

// the four linears in one launch: block b takes block units b, b + grid, ... of each; PRE: before the barrier that
// ends linear j, the block issues the first D - 1 k blocks of its first unit of linear j + 1
template <int T, int D, bool PRE>
__global__ void __launch_bounds__(256, 2) layer_kernel(Layer ly, int S, unsigned* bar, uint32_t* out) {
  const int TB = 8 / S;
  uint32_t h = 0;
  UnitPass<T, D> u;
  bool have = false;  // u holds this block's first unit of linear j, issued before the barrier
  for (int j = 0; j < 4; j++) {
    const Lin& L = ly.l[j];
    const int ublocks = ((L.tiles + T - 1) / T + TB - 1) / TB;
    for (int ub = blockIdx.x; ub < ublocks; ub += gridDim.x) {
      if (!(have && ub == (int)blockIdx.x)) u.first(L, ub, S);
      h ^= u.rest();
    }
    have = false;
    if (j < 3) {
      const Lin& N = ly.l[j + 1];
      const int nb = ((N.tiles + T - 1) / T + TB - 1) / TB;
      if (PRE && (int)blockIdx.x < nb) {
        u.first(N, blockIdx.x, S);
        have = true;
      }
      grid_barrier(bar);
    }
  }
  if (h == 0x12345678u) out[0] = h;
}

template <typename... KArgs, typename... Args>
static void launch_pdl(void (*kern)(KArgs...), int grid, cudaStream_t s, Args... args) {
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = dim3(grid);
  cfg.blockDim = dim3(256);
  cfg.stream = s;
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = 1;
  cfg.attrs = attr;
  cfg.numAttrs = 1;
  CK(cudaLaunchKernelEx(&cfg, kern, static_cast<KArgs>(args)...));
}

struct Shape {
  const char* name;
  int n, k;
};

int main() {
  int dev = 0, sms = 0;
  CK(cudaGetDevice(&dev));
  CK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
  cudaDeviceProp prop;
  CK(cudaGetDeviceProperties(&prop, dev));
  std::printf("%s, %d SMs, L2 %d MB\n", prop.name, sms, prop.l2CacheSize >> 20);
  const Shape shapes[] = {{"qkv", 12288, 4096}, {"o", 4096, 4096}, {"gate_up", 22016, 4096}, {"down", 4096, 11008}};
  constexpr int NC = 8;
  size_t maxw = 0;
  for (const Shape& sh : shapes) maxw = std::max(maxw, (size_t)sh.n / 8 * ((sh.k + 127) / 128) * 32);  // uint4 words
  std::vector<uint4*> buf(NC);
  for (int c = 0; c < NC; c++) {
    CK(cudaMalloc(&buf[c], maxw * 16));
    CK(cudaMemset(buf[c], c + 1, maxw * 16));
  }
  uint32_t* sink;
  CK(cudaMalloc(&sink, 64));
  cudaStream_t s;
  CK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  constexpr int REPS = 32;
  auto graph_us = [&](auto fn) {
    cudaGraph_t gr;
    cudaGraphExec_t ex;
    CK(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
    for (int r = 0; r < REPS; r++) fn(buf[r % NC]);
    CK(cudaStreamEndCapture(s, &gr));
    CK(cudaGraphInstantiate(&ex, gr, 0));
    cudaEvent_t a, b;
    CK(cudaEventCreate(&a));
    CK(cudaEventCreate(&b));
    std::vector<float> v;
    for (int it = 0; it < 17; it++) {
      CK(cudaEventRecord(a, s));
      CK(cudaGraphLaunch(ex, s));
      CK(cudaEventRecord(b, s));
      CK(cudaEventSynchronize(b));
      float ms;
      CK(cudaEventElapsedTime(&ms, a, b));
      if (it >= 2) v.push_back(ms);
    }
    std::sort(v.begin(), v.end());
    CK(cudaGraphExecDestroy(ex));
    CK(cudaGraphDestroy(gr));
    CK(cudaEventDestroy(a));
    CK(cudaEventDestroy(b));
    return v[v.size() / 2] * 1e3f / REPS;
  };
  // copy rate: device-to-device memcpy of the largest size (bytes read + written over time, as bench_decoder reports)
  const float t_copy = graph_us([&](uint4* p) { CK(cudaMemcpyAsync(p == buf[0] ? buf[1] : buf[0], p, maxw * 16 / 2, cudaMemcpyDeviceToDevice, s)); });
  const double copy_gbs = 2.0 * maxw * 16 / 2 / (t_copy * 1e-6) / 1e9;
  std::printf("copy (read + write) %.0f GB/s\n\n", copy_gbs);
  std::printf("| linear | MB | copy-rate us | stream us |");
  struct V {
    const char* name;
    int T, S;
  };
  const V vs[] = {{"T2 S4", 2, 4}, {"T2 S8", 2, 8}, {"T4 S2", 4, 2}, {"T8 S8", 8, 8}};
  for (const V& v : vs) std::printf(" %s tile | %s kb | %s tile 256B | %s kb 256B | %s tile evf | %s bulk tile Ra | %s bulk kb Ra | %s bulk tile Rb | %s bulk kb Rb |", v.name, v.name, v.name, v.name, v.name, v.name, v.name, v.name, v.name);
  std::printf("\n|---|---|---|---|");
  for (size_t i = 0; i < 9 * sizeof(vs) / sizeof(vs[0]); i++) std::printf("---|");
  std::printf("\n");
  for (const Shape& sh : shapes) {
    const int tiles = sh.n / 8, KB = (sh.k + 127) / 128;
    const size_t words = (size_t)tiles * KB * 32;
    const double mb = words * 16 / 1e6;
    const float ts = graph_us([&](uint4* p) { lmfleet::stream_read_kernel<<<sms * 8, 256, 0, s>>>(p, words, sink); });
    std::printf("| %s %d x %d | %.1f | %.1f | %.1f |", sh.name, sh.n, sh.k, mb, mb / copy_gbs * 1e3, ts);
    for (const V& v : vs) {
      const int units = (tiles + v.T - 1) / v.T, TB = 8 / v.S, grid = (units + TB - 1) / TB;
      auto run = [&](auto kern) { return graph_us([&](uint4* p) { kern<<<grid, 256, 0, s>>>(p, tiles, KB, v.S, sink); }); };
      auto runb = [&](auto kern, int R) {
        const int smem = 8 * R * v.T * 512;
        CK(cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
        return graph_us([&](uint4* p) { kern<<<grid, 256, smem, s>>>(p, tiles, KB, v.S, sink); });
      };
      float t[9];
      if (v.T == 2) {
        t[0] = run(tiles_kernel<2, 5, false, 0>); t[1] = run(tiles_kernel<2, 5, true, 0>);
        t[2] = run(tiles_kernel<2, 5, false, 1>); t[3] = run(tiles_kernel<2, 5, true, 1>);
        t[4] = run(tiles_kernel<2, 5, false, 2>);
        t[5] = runb(bulk_kernel<2, 4, false>, 4); t[6] = runb(bulk_kernel<2, 4, true>, 4);
        t[7] = runb(bulk_kernel<2, 8, false>, 8); t[8] = runb(bulk_kernel<2, 8, true>, 8);
      } else if (v.T == 4) {
        t[0] = run(tiles_kernel<4, 3, false, 0>); t[1] = run(tiles_kernel<4, 3, true, 0>);
        t[2] = run(tiles_kernel<4, 3, false, 1>); t[3] = run(tiles_kernel<4, 3, true, 1>);
        t[4] = run(tiles_kernel<4, 3, false, 2>);
        t[5] = runb(bulk_kernel<4, 4, false>, 4); t[6] = runb(bulk_kernel<4, 4, true>, 4);
        t[7] = runb(bulk_kernel<4, 6, false>, 6); t[8] = runb(bulk_kernel<4, 6, true>, 6);
      } else {
        t[0] = run(tiles_kernel<8, 2, false, 0>); t[1] = run(tiles_kernel<8, 2, true, 0>);
        t[2] = run(tiles_kernel<8, 2, false, 1>); t[3] = run(tiles_kernel<8, 2, true, 1>);
        t[4] = run(tiles_kernel<8, 2, false, 2>);
        t[5] = runb(bulk_kernel<8, 2, false>, 2); t[6] = runb(bulk_kernel<8, 2, true>, 2);
        t[7] = runb(bulk_kernel<8, 3, false>, 3); t[8] = runb(bulk_kernel<8, 3, true>, 3);
      }
      for (float x : t) std::printf(" %.1f |", x);
    }
    std::printf("\n");
    CK(cudaGetLastError());
  }
  // ---- stream-K split vs the one-wave and many-block plans ----
  std::printf("\n| linear | MmaX one-wave plan (T4 S2 / T2 S8 for o, down) us [blocks] | T2 S8 us [blocks] | stream-K T2, 2 blocks/SM us | stream-K T4, 2 blocks/SM us | stream-K T2, 1 block/SM us |\n|---|---|---|---|---|---|\n");
  for (const Shape& sh : shapes) {
    const int tiles = sh.n / 8, KB = (sh.k + 127) / 128;
    const bool big = (tiles + 3) / 4 >= sms * 2;  // mx_launch_m's rule: T = 4 where its units fill a wave
    const int T1 = big ? 4 : 2, S1 = big ? 2 : 8, g1 = ((tiles + T1 - 1) / T1 + 8 / S1 - 1) / (8 / S1);
    const float t1 = big ? graph_us([&](uint4* p) { tiles_kernel<4, 3, false, 0><<<g1, 256, 0, s>>>(p, tiles, KB, S1, sink); })
                         : graph_us([&](uint4* p) { tiles_kernel<2, 5, false, 0><<<g1, 256, 0, s>>>(p, tiles, KB, S1, sink); });
    const int g8 = (tiles + 1) / 2;
    const float t8 = graph_us([&](uint4* p) { tiles_kernel<2, 5, false, 0><<<g8, 256, 0, s>>>(p, tiles, KB, 8, sink); });
    const float k2 = graph_us([&](uint4* p) { streamk_kernel<2, 5><<<sms * 2, 256, 0, s>>>(p, tiles, KB, sink); });
    const float k4 = graph_us([&](uint4* p) { streamk_kernel<4, 3><<<sms * 2, 256, 0, s>>>(p, tiles, KB, sink); });
    const float k1 = graph_us([&](uint4* p) { streamk_kernel<2, 5><<<sms, 256, 0, s>>>(p, tiles, KB, sink); });
    std::printf("| %s %d x %d | %.1f [%d] | %.1f [%d] | %.1f | %.1f | %.1f |\n", sh.name, sh.n, sh.k, t1, g1, t8, g8, k2, k4, k1);
    CK(cudaGetLastError());
  }
  // ---- a layer's four linears in sequence ----
  {
    size_t off[5] = {0};
    for (int j = 0; j < 4; j++) off[j + 1] = off[j] + (size_t)shapes[j].n / 8 * ((shapes[j].k + 127) / 128) * 32;
    std::vector<uint4*> lbuf(NC);
    for (int c = 0; c < NC; c++) {
      CK(cudaMalloc(&lbuf[c], off[4] * 16));
      CK(cudaMemset(lbuf[c], c + 1, off[4] * 16));
    }
    unsigned* bar;
    CK(cudaMalloc(&bar, 64));
    CK(cudaMemset(bar, 0, 64));
    const double mb = off[4] * 16 / 1e6;
    auto copy_index = [&](uint4* p) {  // graph_us passes buf[r % NC]: the layer copy r % NC
      for (int c = 0; c < NC; c++)
        if (buf[c] == p) return c;
      return 0;
    };
    auto make_layer = [&](int c) {
      Layer ly;
      for (int j = 0; j < 4; j++) ly.l[j] = Lin{lbuf[c] + off[j], shapes[j].n / 8, (shapes[j].k + 127) / 128};
      return ly;
    };
    const float t_stream = graph_us([&](uint4* p) {
      const Layer ly = make_layer(copy_index(p));
      for (int j = 0; j < 4; j++)
        lmfleet::stream_read_kernel<<<sms * 8, 256, 0, s>>>(ly.l[j].qw, (size_t)ly.l[j].tiles * ly.l[j].KB * 32, sink);
    });
    std::printf("\n| a 7B layer's 4 linears in sequence (%.1f MB), T2 S8 everywhere | us per layer | %% of copy rate |\n|---|---|---|\n", mb);
    const double t_copy_layer = mb / copy_gbs * 1e3;
    auto row = [&](const char* what, float t) { std::printf("| %s | %.1f | %.0f%% |\n", what, t, 100.0 * t_copy_layer / t); };
    row("stream read, 4 launches", t_stream);
    constexpr int T = 2, D = 5, S = 8;
    auto grid_of = [&](const Lin& L) { return ((L.tiles + T - 1) / T + 8 / S - 1) / (8 / S); };
    row("MmaX pattern, 4 plain launches", graph_us([&](uint4* p) {
          const Layer ly = make_layer(copy_index(p));
          for (int j = 0; j < 4; j++) lin_kernel<T, D, false><<<grid_of(ly.l[j]), 256, 0, s>>>(ly.l[j], S, sink);
        }));
    row("MmaX pattern, 4 PDL launches (D - 1 k blocks before the wait)", graph_us([&](uint4* p) {
          const Layer ly = make_layer(copy_index(p));
          for (int j = 0; j < 4; j++) launch_pdl(lin_kernel<T, D, true>, grid_of(ly.l[j]), s, ly.l[j], S, sink);
        }));
    int bps_pre = 0, bps = 0;
    CK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&bps_pre, layer_kernel<T, D, true>, 256, 0));
    CK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&bps, layer_kernel<T, D, false>, 256, 0));
    row("persistent, grid barrier between linears", graph_us([&](uint4* p) {
          layer_kernel<T, D, false><<<sms * bps, 256, 0, s>>>(make_layer(copy_index(p)), S, bar, sink);
        }));
    row("persistent, next linear's D - 1 k blocks before each barrier", graph_us([&](uint4* p) {
          layer_kernel<T, D, true><<<sms * bps_pre, 256, 0, s>>>(make_layer(copy_index(p)), S, bar, sink);
        }));
    std::printf("(copy-rate time %.1f us; persistent grids %d x %d / %d x %d blocks of 256 threads, all resident)\n",
                t_copy_layer, sms, bps, sms, bps_pre);
    CK(cudaGetLastError());
    for (int c = 0; c < NC; c++) CK(cudaFree(lbuf[c]));
    CK(cudaFree(bar));
  }

  CK(cudaDeviceSynchronize());
  std::printf("\n(us per launch; grid as MmaX: units of T tiles, 8 / S units per 256-thread block, 2 blocks per SM; register rings: D = 5 / 3 / 2 k blocks at T = 2 / 4 / 8; bulk rings Ra, Rb: 4, 8 stages at T = 2; 4, 6 at T = 4; 2, 3 at T = 8)\n");
  return 0;
}
