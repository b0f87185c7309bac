#pragma once
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

namespace lmfleet {

// A W4A16 weight on the device, in the layout of ops/w4a16_gemm.h.
struct W4A16Dev {
  const uint32_t* qweight = nullptr;  // [n/8][kp/128][32][4]
  const half2* sz = nullptr;          // [kp/group][n] (scale, zero)
  const half* bias = nullptr;         // [n] or null
  int n = 0, k = 0, kp = 0, group = 0;
};

// Fused path (any m; meant for m up to a few hundred): 4 warps per block, block tile (16 * MI rows) x 128 columns,
// x tiles by cp.async into swizzled shared memory (ldmatrix), the weight streamed from global memory straight
// into registers (16 bytes per lane per 8 x 128 tile), dequantized there into mma.sync.m16n8k16 B fragments;
// k split over blocks when the (n, m) grid alone would not fill the GPU: each split writes partial sums and the last
// block of a tile to arrive (a counter per tile) adds them up in split order (deterministic, one launch).
// `ws`: w4a16_fused_workspace_bytes(m, n, k, sms) bytes (0 when no split is needed), ZEROED once when allocated (the
// kernel leaves its counters at zero again).
size_t w4a16_fused_workspace_bytes(int m, int n, int k, int sms);
// Split-k plan knobs (bench only; set before sizing workspaces): blocks per SM the split aims for (default 2) and the
// partial-sum cap ks <= k / (part_div x rows) (default 16). 0 restores a default.
void w4a16_fused_tuning(int blocks_per_sm, int part_div);
// ldx % 8 == 0 and x 16-byte aligned.
void w4a16_gemm_fused_cuda(const half* x, int ldx, const W4A16Dev& w, half* y, int ldy, int m, float* ws, int sms,
                           cudaStream_t s);
void w4a16_gemm_fused_f32out_cuda(const half* x, int ldx, const W4A16Dev& w, float* y, int ldy, int m, float* ws,
                                  int sms, cudaStream_t s);
// Wide kernel for batched decode (sm_90; ops/w4a16_gemm.cu `w4a16_wide_kernel`): 8 warps of NT n8 tiles x all rows
// each, the k range split over the blocks of a thread-block cluster and added up through distributed shared memory
// (deterministic, no workspace). Variants: 1 (4 tiles per warp, 256 columns per block), 2 (4 tiles, two warps along k,
// 128 columns), 3 (8 tiles, two warps along k, 256 columns), 4 (variant 2 held to 128 registers so that two blocks
// fit an SM at 33-64 rows too), 5 (3 tiles per warp, 192 columns), kW4WideAuto (2 up to 32 rows; above, 1 or 5,
// whichever plan fills the SMs better for the shape). LMFLEET_W4A16_WIDE (read at each call; the
// decoder's graphs key on it): unset auto, 0 the fused kernel above for every m, 1..4 that variant, for m >=
// kW4WideMinRows through w4a16_gemm_fused_cuda (which then ignores its workspace). Same per-weight arithmetic as the
// fused kernel; the sums' order differs.
constexpr int kW4WideMinRows = 9, kW4WideAuto = 6;
int w4a16_wide_mode();
bool w4a16_wide_takes(int m);
void w4a16_gemm_wide_cuda(const half* x, int ldx, const W4A16Dev& w, void* y, int ldy, bool f32out, int m, int sms,
                          int variant, cudaStream_t s);
// The k split (cluster size) the wide kernel's plan takes for this shape (tests, bench tables): the fewest waves of
// resident clusters (the occupancy API's count) times the k blocks per split; LMFLEET_W4A16_WIDE_KS=1..8 forces one.
int w4a16_wide_splits(int m, int n, int k, int variant);
// The variant `variant` (auto included) runs for this shape.
int w4a16_wide_variant(int m, int n, int k, int variant);
// Decode GEMV (m <= kW4GemvMaxRows): no shared-memory round trip for the weights. Each warp streams (8-row tile,
// k128 block) chunks of 512 bytes (16 bytes per lane, ld.global.nc.L1::no_allocate, 2 x kW4GemvUnroll loads in flight
// per lane, software-pipelined) straight into registers, dequantizes them with the 0x6400 trick (scale/zero loaded
// with the batch, once per group), and multiplies by x, which the block stages once into shared memory as f16 in a
// lane-friendly order (the 4 pairs a lane needs per word in one 16-byte load). The k range of a tile is split over
// the warps of one block (partial sums added in a fixed order through shared memory: deterministic, one launch, no
// scratch); blocks loop over tile groups (grid = resident blocks). Two inner products:
//   Fma: CUDA cores, half2 weights -> f32, f32 FMAs per x row (the cost grows with m);
//   Mma: the warp's 8 x 32 weights as mma.sync.m16n8k16 B fragments against x rows 0..7 as the A fragment (rows 8..15
//        and rows >= m are zero), f32 accumulators (the cost does not grow with m).
// Both give the f16-rounded (q - z) * s weights times x with f32 accumulation. ldx % 2 == 0, ldy % 2 == 0.
constexpr int kW4GemvMaxRows = 8;
// Read: the same loads (weights, (scale, zero) pairs, x staging) with no math and a meaningless output, m = 1 only: the
// bench's bound for this launch shape.
// MmaAsync: the Mma inner product with the weights streamed by cp.async through a per-lane shared-memory ring (R - 1
// chunks of 16 bytes in flight per lane whatever the math costs); ReadAsync: its loads with no math (bench, m = 1).
// MmaQz: the register-streaming Mma variant with MmaAsync's arithmetic. MmaAsync and MmaQz put the exact (q - z) in the
// mma and multiply the f32 sum of each group by its scale (fewer instructions per weight; the result is the unrounded
// (q - z) * s weights times x, within f32 rounding, instead of f16-rounded weights).
// MmaX: MmaQz's arithmetic with x's fragments loaded once per k128 block and reused for T consecutive tiles per warp
// (T = 2, 4 or 8; by default 4 or 2 by shape), two tiles' codes as the mma's A operand and x as B (so each lane's scale is its own
// row's), T x 16-byte weight loads per lane per k block in a register ring (>= 8 in flight per lane).
enum class W4GemvDot { Fma = 1, Mma = 2, Read = 3, MmaAsync = 4, ReadAsync = 5, MmaQz = 6, MmaX = 8 };
// Whether the GEMV `dot` takes (m, k): m in 1..kW4GemvMaxRows and the m x kp f16 x tile (+ the partial sums) fits in
// shared memory.
bool w4a16_gemv_supported(int m, int k, W4GemvDot dot = W4GemvDot::Mma);
// LMFLEET_W4A16_GEMV: unset 8 (MmaX), 0 off (the fused kernel), 1 Fma, 2 Mma, 4 MmaAsync, 6 MmaQz, 8 MmaX, for m <= the row
// bound LMFLEET_W4A16_GEMV_ROWS (1..8, default 8).
int w4a16_gemv_mode();
int w4a16_gemv_max_rows();
// unroll: 16-byte weight loads per batch per lane, 4 or 8 (8 only for group 128; else 4); 0 = the policy
// (LMFLEET_W4A16_GEMV_UNROLL, default 4). For MmaX it is T, tiles per warp: 2, 4 or 8 (group 128; other groups take 4);
// 0 = the policy (LMFLEET_W4A16_GEMV_T=2|4|8 if set, else by shape: 4 when n / 32 tile units fill a wave of resident
// blocks, else 2).
void w4a16_gemv_cuda(const half* x, int ldx, const W4A16Dev& w, half* y, int ldy, int m, W4GemvDot dot, int sms,
                     cudaStream_t s, int unroll = 0);
void w4a16_gemv_f32out_cuda(const half* x, int ldx, const W4A16Dev& w, float* y, int ldy, int m, W4GemvDot dot,
                            int sms, cudaStream_t s, int unroll = 0);
// MmaX with parts of the decode step folded in (tensor parallelism 1: nothing to all-reduce between them):
//   norm_w: x is the residual stream, staged as rms_norm(x) * norm_w (rms_norm's arithmetic; the sum of squares in
//           another order), so the rms_norm kernel before the GEMV goes;
//   silu_inter: W is [gate; up] (n = 2 silu_inter) and y [m, silu_inter] = silu_mul's result of the f16 gate and up
//           (a block computes both halves of its outputs), so the silu_mul kernel after it goes;
//   residual: y is the residual stream and y += half(x W^T + b), the add of add_rms_norm (same rounding).
// norm_w may go with silu_inter; residual with neither. f16 out only.
//   rope (nh > 0; the qkv projection, W = [q heads; k heads; v heads] of hd rows each, hd % 64 == 0, full rotary,
//           an f16 cache): rope_kv_store's work in the epilogue, with the same bits: q and k rotated in y, k and v
//           written to the cache rows of `slots` (< 0: none), so the rope + KV store kernel after the GEMV goes.
struct W4GemvFuse {
  const half* norm_w = nullptr;  // [k], 16-byte aligned
  float eps = 0.f;
  int silu_inter = 0;
  bool residual = false;
  struct Rope {
    int nh = 0, nkv = 0, hd = 0, inv_stride = 0;  // inv_freq[t * inv_stride + i] (0: one row for every token)
    const int* positions = nullptr;               // [m]
    const float* inv_freq = nullptr;
    const int* slots = nullptr;                   // [m]
    half* k_cache = nullptr;                      // [slots][nkv][hd]
    half* v_cache = nullptr;
  } rope;
};
// LMFLEET_W4_FUSE (read at each call): unset / 1 the decoder uses these fusions where they apply, 0 never.
bool w4a16_fuse_enabled();
// LMFLEET_W4_ROPE (read at each call; default on, =0 off): with the fusions above, the qkv GEMV also does rope + KV
// store where it applies (f16 cache, full rotary dims, head_dim % 64 == 0, group 128).
bool w4a16_rope_fuse_enabled();
// LMFLEET_W4A16_GEMV_WAVE (read at each launch; default 1): MmaX's k split chosen so that its grid fits one wave of
// resident blocks (1), three quarters of one (2), or by cost alone (0).
int w4a16_gemv_one_wave();
// LMFLEET_W4A16_GEMV_T and LMFLEET_W4A16_GEMV_SPLIT (read at each launch): the forced MmaX tiles per warp | forced k
// split << 4 (0 each: by shape / by the cost model), for the decoder's graph key.
int w4a16_gemv_plan_forced();
// Whether w4a16_gemv_fused_cuda takes (m, w, f): MmaX is the GEMV policy, m within its rows, the shapes fit.
bool w4a16_gemv_fuse_supported(int m, const W4A16Dev& w, const W4GemvFuse& f);
void w4a16_gemv_fused_cuda(const half* x, int ldx, const W4A16Dev& w, half* y, int ldy, int m, const W4GemvFuse& f,
                           int sms, cudaStream_t s);
// The whole weight dequantized to f16 [n, k] row-major (for large m: then a dense GEMM).
void w4a16_dequant_cuda(const W4A16Dev& w, half* out, cudaStream_t s);

}  // namespace lmfleet
