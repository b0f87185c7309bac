// A model: its config (the NativeModelConfig of types.ts as a plain struct), its backend and its weights in
// the backend's layout. Weights are organized by module kind: norms, attention (q/k/v fused into one
// linear, o), ffn (gate/up fused, down), embedding and lm_head.
#pragma once
#include <algorithm>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/backend.h"
#include "core/collective.h"
#include "engine/tp_plan.h"
#include "ops/rope.h"
#include "ops/silu_mul.h"

namespace lmfleet {

struct TensorSpec {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  std::string file;  // empty: use data
  int64_t offset = 0;
  std::vector<uint8_t> data;
  // != 1: every value is multiplied by it (in f32) as the tensor is read (Granite's scalars folded into its weights,
  // TensorSource.scale); f16 backends round the product as they round any weight
  double scale = 1.0;
  // added after scale (value * scale + add, f32): Gemma's norms, stored as w and applied as (1 + w), load with add 1
  double add = 0.0;
  bool plain() const { return scale == 1.0 && add == 0.0; }
};

// (Activation, the MLP's gate: ops/silu_mul.h)

struct ModelConfig {
  std::string backend = "cpu";
  int threads = 0;
  int device = 0;  // cuda device ordinal
  // Tensor parallelism (engine/tp_plan.h): tp ranks, each a Model holding its shard on its own backend (cpu: the
  // threads split between ranks; cuda: devices[r], default r). The Model made from this config is rank 0; it owns
  // the other ranks (peers), the collective and the rank threads. tp 1: none of that exists.
  int tp = 1;
  std::vector<int> devices;
  std::string dtype = "f16";
  int64_t vocab = 0, hidden = 0, inter = 0, layers = 0, heads = 0, kv_heads = 0, head_dim = 0;
  float eps = 1e-6f;
  int64_t max_position = 0;
  RopeParams rope;
  bool tie_embeddings = false;
  Activation act = Activation::Silu;
  float embed_scale = 1.f;  // embedding rows times this after the lookup (Gemma: sqrt(hidden)); not the tied lm_head
  // Gemma 2 / 3: the attention output (after o) and the MLP output (after down) are RMS-normed (attn_out_norm,
  // mlp_out_norm) before their residual adds; post_norm stays the norm in front of the MLP
  bool sandwich_norms = false;
  // Gemma 3's local rope: the sliding-window layers (window(l) > 0) rotate with rope_local instead of rope
  bool has_rope_local = false;
  RopeParams rope_local;
  // Gemma 2's soft-capping (0: off): attention scores x -> attn_softcap tanh(x / attn_softcap) before the softmax,
  // final logits alike with final_softcap
  float attn_softcap = 0.f, final_softcap = 0.f;
  bool qk_norm = false;  // Qwen3: per-head RMSNorm of q and k (weights [head_dim]) before RoPE
  // Sliding-window attention per layer (empty: none; else `layers` entries, 0 = full attention): layer l's queries
  // see the last layer_window[l] positions only (Mistral, Qwen2's use_sliding_window layers).
  std::vector<int64_t> layer_window;
  int64_t window(int64_t l) const { return layer_window.empty() ? 0 : layer_window[(size_t)l]; }
  // Layers without RoPE (SmolLM3's NoPE layers: q and k go to attention unrotated, attention scale 1/sqrt(head_dim)).
  // The decoders rotate them by a zero frequency table (cos 1, sin 0: the identity, exactly), so the kernels and
  // their fusions stay as they are.
  std::vector<int64_t> no_rope_layers;
  bool rope_on(int64_t l) const { return std::find(no_rope_layers.begin(), no_rope_layers.end(), l) == no_rope_layers.end(); }
  bool local_rope(int64_t l) const { return has_rope_local && window(l) > 0; }
  const RopeParams& rope_of(int64_t l) const { return local_rope(l) ? rope_local : rope; }
  // Mixture of experts (Mixtral, Qwen3-MoE): with num_experts > 0 every layer but dense_layers has a sparse MLP: a
  // router [num_experts, hidden] scores the experts of each token (softmax in f32 over all of them), the
  // experts_per_tok best are run (each a SwiGLU MLP of width moe_inter) and their outputs summed with those weights,
  // renormalized to sum 1 when norm_topk_prob (Mixtral always; Qwen3-MoE's norm_topk_prob).
  int64_t num_experts = 0, experts_per_tok = 0, moe_inter = 0;
  bool norm_topk_prob = true;
  std::vector<int64_t> dense_layers;  // layers that keep the dense MLP of width `inter` (Qwen3-MoE's mlp_only_layers)
  bool moe_layer(int64_t l) const {
    return num_experts > 0 && std::find(dense_layers.begin(), dense_layers.end(), l) == dense_layers.end();
  }
  bool any_dense_mlp() const { return num_experts == 0 || !dense_layers.empty(); }
  int64_t quant_group = 0;  // > 0: W4A16 (AWQ) linears with this group size may be given as qweight (ops/w4a16_gemm.h)
  // KV cache quantization (LMDeploy's quant_policy; ops/kv_quant.h): 0 float, 8 int8, 4 int4.
  int kv_quant_policy = 0;
  // Calibrated (scale, zero) per layer, K then V, per kv head: [layers, 2, kv_heads, 2]; empty: online per token.
  std::vector<float> kv_qparams;
  std::vector<TensorSpec> tensors;
};

struct LayerWeights {
  Buffer input_norm, post_norm;
  Buffer q_norm, k_norm;  // [head_dim] when ModelConfig::qk_norm (the same on every tp rank)
  Buffer attn_out_norm, mlp_out_norm;  // [hidden] when ModelConfig::sandwich_norms
  std::unique_ptr<LinearWeight> qkv, o, gate_up, down;
  // a mixture-of-experts layer (ModelConfig::moe_layer): the router and each expert's fused gate/up and down
  std::unique_ptr<LinearWeight> router;
  std::vector<std::unique_ptr<LinearWeight>> expert_gate_up, expert_down;
};

class Model {
  // Declared first so it is destroyed last: every Buffer and LinearWeight below lives on it.
  std::unique_ptr<Backend> be_;

 public:
  explicit Model(ModelConfig cfg);  // validates the config (E_INVALID_ARGUMENT)
  ~Model();
  // Tensor parallelism: tp() ranks; rank(r) is this model for r = 0, else a peer; shard() what this rank holds
  // (the whole model at tp 1); collective() is null at tp 1.
  int tp() const { return cfg_.tp; }
  Model& rank(int r) { return r == 0 ? *this : *peers_[(size_t)r - 1]; }
  const ShardPlan& shard() const { return shard_; }
  Collective* collective() const { return coll_; }
  RankThreads& rank_threads() { return *rank_threads_; }
  void load();                      // maps files, checks every tensor (E_MODEL_FORMAT), converts and packs
  bool loaded() const { return loaded_; }
  size_t weight_bytes() const { return weight_bytes_; }
  void ensure_loaded() const;

  const ModelConfig& cfg() const { return cfg_; }
  Backend& backend() { return *be_; }
  const std::vector<float>& inv_freq() const { return inv_freq_; }
  const std::vector<float>& inv_freq_local() const { return inv_freq_local_; }  // ModelConfig::rope_local's table
  int64_t rotary_dim() const { return rotary_dim_; }

  Buffer embed, final_norm;
  std::unique_ptr<LinearWeight> lm_head;
  std::vector<LayerWeights> layers;
  std::mutex run_mutex;  // one forward at a time (the decoder's scratch is per model)
  std::unique_ptr<class Decoder> decoder;  // guarded by run_mutex
  Buffer whole_seq_cache;                  // forward/scoreTokens' temporary KV (grow-only), run_mutex
  Buffer kv_qparams;                       // cfg().kv_qparams on the backend (empty: online)
  // Calibrated K / V (scale, zero) [kv_heads, 2] of layer l on the backend; null when online.
  const float* kv_static(int64_t l, bool v) const {
    return kv_qparams.get() ? kv_qparams.as<float>() + (l * 2 + (v ? 1 : 0)) * shard_.kv_heads * 2 : nullptr;
  }

 private:
  Model(const ModelConfig& cfg, int rank);  // a peer: cfg without tensors
  void validate() const;
  void make_backend();
  void load_shard(class TensorReader& rd);

  ModelConfig cfg_;
  ShardPlan shard_;
  std::vector<std::unique_ptr<Model>> peers_;
  std::unique_ptr<Collective> own_coll_;  // rank 0 only
  Collective* coll_ = nullptr;            // every rank (tp > 1)
  std::unique_ptr<RankThreads> rank_threads_;
  std::vector<float> inv_freq_, inv_freq_local_;
  int64_t rotary_dim_ = 0;
  bool loaded_ = false;
  size_t weight_bytes_ = 0;
  std::mutex load_mutex_;
};

}  // namespace lmfleet
