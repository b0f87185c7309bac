#pragma once
// Mixture-of-experts helpers for the CUDA decoder (cuda/cuda_decoder.cu): routing, the experts' row gather and the
// weighted combine. The experts themselves run through the ordinary linears (f16 GEMV / cuBLAS, W4A16 kernels) on each
// expert's contiguous rows. The CPU decoder's Decoder::moe_mlp (engine/decoder.cc) is the reference: the same
// selection (softmax over all experts in f32, the K largest logits, ties to the lower index) and weights.
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "ops/w4a16_gemm.cuh"

namespace lmfleet {

// The most experts (shared-memory counters) and experts per token moe_route_cuda takes.
constexpr int kMoeMaxExperts = 1024;
constexpr int kMoeMaxTopK = 32;

// Routing of T tokens, one block. logits [T, E] f32 (the router's output). Per token t and choice j < K (best first):
//   ids[t * K + j]  the expert,
//   w[t * K + j]    its weight: softmax probability / (renorm ? the K chosen probabilities' sum : 1).
// The T * K (token, choice) pairs sorted by expert, stable (by pair index within an expert):
//   offsets[E + 1]          expert e's pairs are sorted positions [offsets[e], offsets[e + 1]),
//   slot_token[T * K]       the token of the pair at each sorted position,
//   pair_slot[T * K]        the sorted position of pair t * K + j,
//   active[E]               the experts with at least one pair in increasing order, then -1 (the grouped GEMVs launch
//                           min(E, T * K) blocks per column tile, not E).
// Deterministic (no order depends on timing). E <= kMoeMaxExperts, K <= min(E, kMoeMaxTopK).
void moe_route_cuda(const float* logits, int T, int E, int K, bool renorm, int* ids, float* w, int* offsets, int* slot_token,
                    int* pair_slot, int* active, cudaStream_t s);

// out[t] (row stride ldo) = sum_j w[t * K + j] * y[pair_slot[t * K + j]] (row stride ldy), summed in j order in f32,
// rounded to f16 once. y holds the experts' outputs in sorted-pair order.
void moe_combine_cuda(const half* y, int ldy, const float* w, const int* pair_slot, half* out, int ldo, int T, int K, int H,
                      cudaStream_t s);

// The experts' linears in one launch (decode; graph-capturable: no host reads the counts): for every expert e and its
// sorted rows r in [offsets[e], offsets[e + 1]), y[r] (stride ldy) = x[r] (stride ldx) W_e^T, W_e = w[e] an f16
// [n, k] row-major weight (a device array of E pointers), f32 sums rounded to f16 once, on the tensor cores
// (mma.m16n8k16: 16 weight rows as A, up to 8 x rows as B). The experts come from moe_route_cuda's `active` list;
// max_active = min(E, rows in all) blocks per 16 outputs are launched and those past the list's end exit at once. k
// and ldx multiples of 8; weights and x 16-byte aligned.
void moe_gemv_cuda(const half* x, int ldx, const half* const* w, const int* offsets, const int* active, int max_active, half* y,
                   int ldy, int n, int k, cudaStream_t s);

// The same over W4A16 experts (w: a device array of E weights in our layout, ops/w4a16_gemm.h; same n, k, group, no
// bias): y[r] = x[r] W_e^T with W_e's f16-rounded (q - z) s, f32 sums, one rounding. A block per (pair of 8-row tiles,
// active expert) on the tensor cores: mma.m16n8k16 with the 16 weight rows as A and up to 8 x rows as B (x staged
// through shared memory), its 4 warps splitting the k blocks. ldx a multiple of 8.
void moe_gemv_w4_cuda(const half* x, int ldx, const W4A16Dev* w, const int* offsets, const int* active, int max_active, half* y,
                      int ldy, int n, int k, int kp, int group, cudaStream_t s);

// out[r] = x[rows[r]] for r < n (row length H, stride H both): the experts' input rows in sorted-pair order, and the
// rows that want logits before the lm_head.
void gather_rows_cuda(const half* x, const int* rows, half* out, int n, int H, cudaStream_t s);

}  // namespace lmfleet
