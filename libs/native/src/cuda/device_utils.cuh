// Small device helpers shared by the kernels in ops/*.cu: 16-byte half8 vectors, warp/block reductions.
#pragma once
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace lmfleet {

struct __align__(16) half8 {
  half2 h[4];
};

__device__ __forceinline__ void half8_to_float(const half8& v, float* f) {
#pragma unroll
  for (int i = 0; i < 4; i++) {
    float2 t = __half22float2(v.h[i]);
    f[2 * i] = t.x;
    f[2 * i + 1] = t.y;
  }
}

__device__ __forceinline__ half8 float_to_half8(const float* f) {
  half8 v;
#pragma unroll
  for (int i = 0; i < 4; i++) v.h[i] = __floats2half2_rn(f[2 * i], f[2 * i + 1]);
  return v;
}

__device__ __forceinline__ half8 ldg_half8(const half* p) {
  uint4 u = __ldg(reinterpret_cast<const uint4*>(p));
  return *reinterpret_cast<half8*>(&u);
}

// Programmatic dependent launch (sm_90; no-ops below). A kernel launched as a programmatic dependent
// (launch_maybe_pdl with pdl = true) may start while the kernel before it is still running: it must call pdl_wait()
// before it reads anything that kernel writes and before it writes anything (it may read the weights before).
// pdl_trigger() lets the dependent grid start as soon as every block of this kernel has run it, instead of when the
// last block exits. The decode kernels (ops/linear.cuh: pdl_enabled, pdl_chain_enabled) do both at their start, so each
// launch hides behind the kernel before it; the GEMVs issue their first weight loads before they wait.
__device__ __forceinline__ void pdl_trigger() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}
__device__ __forceinline__ void pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

// A kernel launch that, when `pdl` (sm_90), may overlap the previous kernel on the stream (programmatic stream
// serialization): such a kernel must pdl_wait() before reading what that kernel writes. Returns the launch's error.
template <typename... KArgs, typename... Args>
inline cudaError_t launch_maybe_pdl_smem(bool pdl, void (*kern)(KArgs...), dim3 grid, dim3 block, size_t smem,
                                         cudaStream_t s, Args... args) {
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = grid;
  cfg.blockDim = block;
  cfg.dynamicSmemBytes = smem;
  cfg.stream = s;
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = 1;
  cfg.attrs = attr;
  cfg.numAttrs = pdl ? 1 : 0;
  return cudaLaunchKernelEx(&cfg, kern, static_cast<KArgs>(args)...);
}
template <typename... KArgs, typename... Args>
inline cudaError_t launch_maybe_pdl(bool pdl, void (*kern)(KArgs...), dim3 grid, dim3 block, cudaStream_t s, Args... args) {
  return launch_maybe_pdl_smem(pdl, kern, grid, block, 0, s, args...);
}

// Asks L2 to fetch [p, p + bytes) (sm_90 bulk prefetch: one instruction per range, a hint with nothing to wait for;
// no-op below sm_90). p and bytes multiples of 16. The GEMVs use it, with LMFLEET_L2_PREFETCH, for the weights they
// will stream after griddepcontrol.wait: DRAM works while the kernel before them (latency-bound) finishes.
__device__ __forceinline__ void prefetch_l2(const void* p, uint32_t bytes) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  if (bytes) asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;" ::"l"(p), "r"(bytes) : "memory");
#endif
}

// Weights are read once per step: keep them out of L1 and tell L2 to evict them first.
__device__ __forceinline__ uint4 ld_stream_u4(const void* p) {
  uint4 r;
  asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];"
               : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w)
               : "l"(p));
  return r;
}

// SwiGLU's silu(g) * u in f32 (ops/silu_mul.cu, and the f16 GEMV's fused gate_up mode, ops/linear.cu: one
// expression, so the two paths give the same bits)
__device__ __forceinline__ float silu_mul_f32(float g, float u) { return g / (1.f + __expf(-g)) * u; }
// GeGLU's gelu(g) * u, with the tanh approximation (A = 1) or exact (A = 2: erf), f32 (ops/silu_mul.h's gelu_ref)
template <int A>
__device__ __forceinline__ float gelu_mul_f32(float g, float u) {
  return A == 2 ? 0.5f * g * (1.f + erff(g * 0.7071067811865476f)) * u
                : 0.5f * g * (1.f + tanhf(0.7978845608028654f * (g + 0.044715f * g * g * g))) * u;
}
// A: the int value of Activation (ops/silu_mul.h): 0 silu, 1 gelu tanh, 2 gelu
template <int A>
__device__ __forceinline__ float act_mul_f32(float g, float u) { return A == 0 ? silu_mul_f32(g, u) : gelu_mul_f32<A>(g, u); }

// RoPE of one rotate-half pair (x1 = dim i, x2 = dim i + rot / 2) by the angle whose sine and cosine are s, c: f32 from
// the f16 inputs, rounded to f16 (ops/rope.cu, and the W4A16 qkv GEMV's rope epilogue: one expression, the same bits)
__device__ __forceinline__ void rope_pair_f16(float x1, float x2, float s, float c, half& o1, half& o2) {
  o1 = __float2half(x1 * c - x2 * s);
  o2 = __float2half(x2 * c + x1 * s);
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Block-wide sum/max, result broadcast to every thread. `scratch` holds >= 32 floats. Deterministic order.
__device__ __forceinline__ float block_sum(float v, float* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = (blockDim.x + 31) >> 5;
  v = warp_sum(v);
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = lane < nwarps ? scratch[lane] : 0.f;
  v = warp_sum(v);
  return v;
}

__device__ __forceinline__ float block_max(float v, float* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = (blockDim.x + 31) >> 5;
  v = warp_max(v);
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = lane < nwarps ? scratch[lane] : -INFINITY;
  v = warp_max(v);
  return v;
}

}  // namespace lmfleet
