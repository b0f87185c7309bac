// The one decoder for Llama / Qwen2 / InternLM-family models:
//   x = embed(ids)
//   per layer: h = rms_norm(x); q,k,v = h Wqkv^T (+b); rope(q, k); store k,v in the paged cache;
//              a = attention(q, cache); x += a Wo^T (+b); h = rms_norm(x); x += (silu(h Wg^T) * h Wu^T) Wd^T
//   logits = rms_norm(x[rows]) W_lm^T   (lm_head, or the embedding when tied)
// It runs one step for any mix of sequences (prefill chunks and decode tokens) and only talks to the
// Backend interface, so it is the same code for every backend.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "core/backend.h"
#include "engine/model.h"

namespace lmfleet {

// Where the K/V of every layer live: per layer [num_blocks, block_size, kv_heads * head_dim] (backend memory).
// quant_policy 8 / 4 (the model's kv_quant_policy, ops/kv_quant.h): k/v point at int8 / int4 rows (bytes) and
// k_param/v_param at the (scale, zero) pairs [num_blocks * block_size, kv_heads, 2] f32 of each layer.
struct KvView {
  std::vector<float*> k, v;  // per layer
  std::vector<float*> k_param, v_param;  // per layer, quant_policy != 0 only
  int64_t num_blocks = 0, block_size = 0;
  int quant_policy = 0;
  // Tensor parallelism: the views of ranks 1..tp-1 (same blocks, each rank's KV heads on its own backend).
  std::vector<KvView> peers;
};

// Bytes of one layer's K (or V) pool of `slots` tokens, and the view over one allocation of
// 2 * layers * kv_pool_bytes(...) bytes (data then params per pool, each 256-byte aligned).
// elem_bytes: Backend::kv_element_bytes() (the float cache's element size; unused when quantized).
int64_t kv_pool_bytes(int64_t slots, int64_t kv_heads, int64_t head_dim, int quant_policy, int64_t elem_bytes);
KvView make_kv_view(void* base, int64_t layers, int64_t num_blocks, int64_t block_size, int64_t kv_heads,
                    int64_t head_dim, int quant_policy, int64_t elem_bytes);

// One step's input, in host memory.
struct StepBatch {
  std::vector<int32_t> tokens;     // [T]
  std::vector<int32_t> positions;  // [T]
  std::vector<int32_t> slots;      // [T] cache slot (block * block_size + offset) of each token
  std::vector<int32_t> seq_info;   // [S, 3]: q_start, q_len, ctx_len
  std::vector<int32_t> block_tables;  // [S, max_blocks]
  int64_t max_blocks = 0;
  std::vector<int32_t> logit_rows;  // token indices whose logits are wanted
  int64_t num_seqs() const { return (int64_t)seq_info.size() / 3; }
};

class CudaDecoder;  // cuda/cuda_decoder.h (cuda variant only)

class Decoder {
 public:
  explicit Decoder(Model& model);
  ~Decoder();
  // Runs the step; returns the backend buffer holding logits [logit_rows.size(), vocab] (valid until next call).
  // At tp > 1 (rank 0's decoder) every rank runs its shard on its own thread; the logits are all-gathered.
  const Buffer& forward(const StepBatch& batch, const KvView& kv);

 private:
  // This rank's step (the whole step at tp 1), with the collectives of engine/tp_plan.h at tp > 1.
  const Buffer& forward_rank(const StepBatch& batch, const KvView& kv);
  // A mixture-of-experts MLP (ModelConfig::moe_layer) of layer l: h [T, hidden] (normed) -> h, the experts' weighted sum.
  void moe_mlp(int64_t l, float* h, int64_t T);

  Model& m_;
  std::unique_ptr<CudaDecoder> cuda_;  // set when the model's backend is cuda: the fused f16 step (of this rank)
  Buffer x_, h_, qkv_, attn_, gu_, act_, rows_, logits_, inv_freq_;
  Buffer nope_inv_;  // zeros [rotary_dim / 2]: the frequencies of a NoPE layer (ModelConfig::no_rope_layers)
  Buffer local_inv_;  // ModelConfig::rope_local's frequencies (Gemma 3's sliding layers)
  Buffer logits_rank_;               // tp > 1: this rank's vocabulary slice of the logits
  Buffer router_, moe_in_, moe_out_;  // mixture of experts: router logits [T, E], one expert's rows in and out
  std::vector<int32_t> moe_rows_;     // the token rows routed to one expert
  std::vector<int32_t> local_ids_;   // tp > 1: token ids in this rank's embedding slice (others: its zero row)
};

// The model's own decoder (scratch reused across calls); call with model.run_mutex held.
Decoder& model_decoder(Model& m);

// Whole-sequence helpers (no persistent cache): used by Model.forward / scoreTokens.
std::vector<float> forward_logits(Model& model, const std::vector<int32_t>& ids);
std::vector<float> score_tokens(Model& model, const std::vector<int32_t>& ids);

}  // namespace lmfleet
