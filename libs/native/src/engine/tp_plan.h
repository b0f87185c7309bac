// Tensor parallelism (Megatron-style) over N ranks: what rank r holds of a model. Column-parallel linears split
// their output rows, row-parallel ones their input columns (their outputs are summed by an all-reduce):
//   q/k/v  column-parallel by heads (rank r: q heads [r*H/N, (r+1)*H/N) and the KV heads they read)
//   o      row-parallel (its input columns are the rank's q heads) + all-reduce; its bias is added on rank 0
//   gate/up column-parallel (rows [r*I/N, (r+1)*I/N)), down row-parallel + all-reduce
//   embed  split by vocabulary (rank r: rows [r*V/N, (r+1)*V/N); other tokens give zeros) + all-reduce
//   lm_head split by vocabulary; the logits are all-gathered
//   KV cache: the rank's KV heads. When the KV heads don't divide by N but N divides by them (GQA with few KV
//   heads, LMDeploy's case), each rank holds the one KV head its q heads read (replicated over N/kvHeads ranks).
//   W4A16 weights split along whole groups (row-parallel: the input width per rank must be a multiple of the
//   group size) with their scales and zeros; column-parallel slices keep whole 8-row tiles.
// Anything that does not divide is refused with E_INVALID_ARGUMENT naming the width.
#pragma once
#include <cstdint>
#include <string>

#include "core/error.h"

namespace lmfleet {

struct ShardPlan {
  int rank = 0, size = 1;
  int64_t heads = 0, head0 = 0;        // q heads of this rank, first global q head
  int64_t kv_heads = 0, kv_head0 = 0;  // KV heads of this rank, first global KV head
  bool kv_replicated = false;          // KV heads fewer than ranks: one KV head per rank, shared by N/kvHeads ranks
  int64_t inter = 0, inter0 = 0;       // gate/up rows (down columns) of this rank
  int64_t vocab = 0, vocab0 = 0;       // embedding / lm_head rows of this rank
  int64_t moe_inter = 0, moe_inter0 = 0;  // each expert's gate/up rows (down columns) of this rank (mixture of experts)
};

// heads, kv_heads, inter, vocab: the model's; quant_group > 0: W4A16 linears (row-parallel widths must hold
// whole groups, column-parallel rows whole 8-row tiles).
// moe_inter > 0 (a mixture of experts): every expert is split as a dense MLP is (gate/up rows, down columns); the
// router is replicated, so every rank routes every token alike and the all-reduce after down sums the experts' parts.
inline ShardPlan plan_shard(int64_t heads, int64_t kv_heads, int64_t head_dim, int64_t inter, int64_t vocab,
                            int64_t quant_group, int rank, int size, int64_t moe_inter = 0, bool dense_mlp = true) {
  auto bad = [&](const std::string& what) {
    fail(ErrorCode::InvalidArgument, "tensor parallel tp=" + std::to_string(size) + ": " + what);
  };
  if (size <= 0) bad("tp must be >= 1");
  ShardPlan p;
  p.rank = rank;
  p.size = size;
  if (heads % size) bad("numHeads " + std::to_string(heads) + " does not divide by " + std::to_string(size));
  // a model whose every layer is a mixture of experts has no dense MLP: intermediateSize is not used, so not checked
  if (dense_mlp && inter % size) bad("intermediateSize " + std::to_string(inter) + " does not divide by " + std::to_string(size));
  if (vocab % size) bad("vocabSize " + std::to_string(vocab) + " does not divide by " + std::to_string(size));
  p.heads = heads / size;
  p.head0 = rank * p.heads;
  if (kv_heads % size == 0) {
    p.kv_heads = kv_heads / size;
    p.kv_head0 = rank * p.kv_heads;
  } else if (size % kv_heads == 0) {
    p.kv_heads = 1;
    p.kv_head0 = p.head0 / (heads / kv_heads);
    p.kv_replicated = true;
  } else {
    bad("numKvHeads " + std::to_string(kv_heads) + " neither divides by " + std::to_string(size) + " nor divides it");
  }
  p.inter = inter / size;
  p.inter0 = rank * p.inter;
  p.vocab = vocab / size;
  p.vocab0 = rank * p.vocab;
  if (moe_inter % size) bad("moeIntermediateSize " + std::to_string(moe_inter) + " does not divide by " + std::to_string(size));
  p.moe_inter = moe_inter / size;
  p.moe_inter0 = rank * p.moe_inter;
  if (quant_group > 0 && size > 1) {
    const int64_t qd = p.heads * head_dim, kvd = p.kv_heads * head_dim;
    if (qd % quant_group)
      bad("W4A16 o_proj: each rank's input width " + std::to_string(qd) + " (numHeads/tp * headDim) is not a multiple of the group size " +
          std::to_string(quant_group));
    if (dense_mlp && p.inter % quant_group)
      bad("W4A16 down_proj: each rank's input width " + std::to_string(p.inter) + " (intermediateSize/tp) is not a multiple of the group size " +
          std::to_string(quant_group));
    if (p.moe_inter % quant_group)
      bad("W4A16 experts' down_proj: each rank's input width " + std::to_string(p.moe_inter) +
          " (moeIntermediateSize/tp) is not a multiple of the group size " + std::to_string(quant_group));
    if (p.moe_inter % 8) bad("W4A16 experts' gate/up slices must hold whole 8-row tiles (" + std::to_string(p.moe_inter) + " rows per rank)");
    if (qd % 8 || kvd % 8 || (dense_mlp && p.inter % 8))
      bad("W4A16 column-parallel slices must hold whole 8-row tiles (q " + std::to_string(qd) + ", k/v " + std::to_string(kvd) +
          ", gate/up " + std::to_string(p.inter) + " rows per rank)");
  }
  return p;
}

}  // namespace lmfleet
