#pragma once
#include <cuda_fp16.h>
#include <cuda_runtime.h>

namespace lmfleet {
// Skinny linear for decode (m <= kGemvMaxRows): y[i, :] = x[i, :] W^T (+ bias), W row-major [n, k] f16,
// f32 accumulation. Streams W once at full bandwidth (cuBLAS takes over for larger m; see cuda/gemm.h).
// y is f16 (ldy) or f32 (the logits variant). k must be a multiple of 8, ldx too.
constexpr int kGemvMaxRows = 8;
// Rows up to which CublasGemm::linear takes the GEMV by default (session 6, fp16 7B engine, one process: batch 4 5.825
// ms/step GEMV vs 5.811 cuBLAS, batch 8 8.419 vs 5.952; so cuBLAS from 5 rows on).
constexpr int kGemvDefaultRows = 4;
// The GEMV is launched as a programmatic dependent of the kernel before it on sm_90 (weights stream while that kernel
// finishes; see cuda/device_utils.cuh); LMFLEET_PDL=0 turns it off.
bool pdl_enabled();
// The small decode kernels (rope + KV store, decode attention, rms_norm, silu_mul) launched the same way, so their
// launches hide too: on with pdl_enabled() unless LMFLEET_PDL=gemv (the GEMVs only, as before session 5).
bool pdl_chain_enabled();
// LMFLEET_L2_PREFETCH (opt-in; measured slower in session 6: W4 batch 1 2.446 vs 2.285 ms/step; read at each launch): N > 0 makes the decode GEMVs, launched as programmatic
// dependents, ask L2 for more of their weights before they wait: the f16 GEMV its warp's whole row, the W4A16 MmaX
// GEMV N more k blocks per tile beyond its register ring. 0 / unset, or PDL off: off.
int l2_prefetch_kb();
// Rows up to which CublasGemm::linear takes the GEMV instead of cuBLAS: LMFLEET_GEMV_ROWS (0..kGemvMaxRows, read at
// each call; default kGemvDefaultRows).
int gemv_max_rows();
// Preload (default on; LMFLEET_PDL_PRELOAD=0 turns it off; read at each launch): the small decode kernels load, before
// griddepcontrol.wait, what no kernel of the step writes (the host-staged positions, context lengths and slots, the
// rope angles, the norm weight), so fewer dependent memory round trips follow the wait. Same arithmetic, same bits.
bool pdl_preload();
// LMFLEET_PDL_EARLY=1 (opt-in, read at each launch): the decode GEMVs (f16 and W4A16 MmaX) run griddepcontrol.
// launch_dependents at their start instead of after their wait, so the kernel after a GEMV may launch (and, if it is a
// GEMV, issue its first weight loads) while this one still waits on the kernel before it: two launches of lookahead
// through the latency chains (attention, exchanges) instead of one. Same arithmetic, same bits.
bool pdl_early_trigger();
void gemv_cuda(const half* x, int ldx, const half* w, const half* bias, half* y, int ldy, int m, int n, int k,
               cudaStream_t s);
void gemv_f32out_cuda(const half* x, int ldx, const half* w, const half* bias, float* y, int ldy, int m, int n, int k,
                      cudaStream_t s);
// SwiGLU's gate_up GEMV and silu_mul in one kernel (decode, m <= kGemvMaxRows): w is the fused gate_up weight
// [2*inter, k] row-major (gate rows 0..inter-1, up rows inter..2*inter-1; bias 2*inter or null), out [m, inter] (ldo).
// Writes exactly what gemv_cuda into gu [m, 2*inter] then silu_mul_cuda(gu, 2*inter, out, m, inter) writes (g and u
// rounded to f16, then silu(g) * u in f32), without the gu round trip and the second launch. inter must be a multiple
// of 4, k and ldx of 8; anything else fails (the caller checks and keeps the two kernels).
void gemv_silu_cuda(const half* x, int ldx, const half* w, const half* bias, half* out, int ldo, int m, int inter, int k,
                    cudaStream_t s);
// LMFLEET_FUSE_SILU (default on; "0" off; read at each call): CudaDecoder takes gemv_silu_cuda for f16 gate_up
// weights where the GEMV serves the rows.
bool fuse_silu_enabled();
}  // namespace lmfleet
