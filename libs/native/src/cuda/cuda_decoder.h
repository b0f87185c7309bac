// The decoder step on the GPU, in f16: the same function as engine/decoder.cc's Decoder::forward (same StepBatch
// in, same logits [logit_rows, vocab] f32 out in backend memory), built from the f16 kernels of ops/*.cu and
// cuBLAS. Weights are the model's (f16 linears from CudaBackend::prepare_linear; norms and the embedding
// copied to f16 once). The KV cache uses the engine's KvView memory with the same layout as the CPU backend,
// [num_blocks, block_size, kv_heads, head_dim], but f16 (KvCache sizes it with CudaBackend::kv_element_bytes() = 2).
//
// Pure decode steps (every sequence has one new token) replay a CUDA graph per (batch bucket, split bucket):
// the host only fills one pinned staging buffer (tokens, positions, slots, contexts, block tables, rows), one
// copy, one graph launch. Prefill and mixed steps run eagerly (tensor-core prefill attention).
#pragma once
#include <map>
#include <set>
#include <memory>
#include <tuple>
#include <vector>

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "core/backend.h"
#include "engine/decoder.h"
#include "engine/model.h"
#include "ops/w4a16_gemm.cuh"

namespace lmfleet {

class CudaBackend;

class CudaDecoder {
 public:
  explicit CudaDecoder(Model& m);
  ~CudaDecoder();
  CudaDecoder(const CudaDecoder&) = delete;
  CudaDecoder& operator=(const CudaDecoder&) = delete;
  const Buffer& forward(const StepBatch& b, const KvView& kv);
  size_t graphs() const { return graphs_.size(); }

 private:
  struct Layout {  // offsets (in 4-byte words) of the step's arrays inside the staging buffer
    int T = 0, S = 0, R = 0, mb = 0, inv_n = 0;
    size_t tokens, positions, slots, q_starts, q_lens, ctx_lens, rows, block_tables, inv_freq, words;
  };
  struct Graph {
    cudaGraphExec_t exec = nullptr;
  };
  Layout layout(int T, int S, int R, int mb, int inv_n) const;
  const Buffer& forward_step(const StepBatch& b, const KvView& kv);
  StepBatch verify_;  // a verification step laid out as a decode step (forward)
  bool verify_step_ = false;  // forward_step is running verify_
  void ensure_capacity(int T, int R);
  void run(const Layout& L, const KvView& kv, bool decode, int max_q_len, int splits);
  // proj_ (all-reduced at tp > 1; then RMS-normed by out_norm when given: Gemma's sandwich norms) added into resid_,
  // h_ = rms_norm(resid_) * w
  void reduce_add_norm(Collective* coll, int rank, const half* w, int T, int H, float eps, const half* out_norm = nullptr);
  void moe_mlp(int l, int T, bool decode);
  void drop_graphs();

  Model& m_;
  CudaBackend& be_;
  cudaStream_t s_;
  // f16 copies of the f32 weights that the model keeps outside linears
  half* embed_ = nullptr;
  half* final_norm_ = nullptr;
  std::vector<half*> in_norm_, post_norm_;
  std::vector<half*> attn_out_norm_, mlp_out_norm_;  // ModelConfig::sandwich_norms (Gemma), f16 [hidden] per layer
  std::vector<half*> q_norm_, k_norm_;  // Qwen3's per-head norms (ModelConfig::qk_norm), f16 [head_dim] per layer
  float* nope_inv_ = nullptr;  // zeros [rotary_dim / 2]: a NoPE layer's frequencies (ModelConfig::no_rope_layers)
  float* local_inv_ = nullptr;  // ModelConfig::rope_local's frequencies [rotary_dim / 2] (Gemma 3's sliding layers)
  // activations (f16), grow-only; growing drops the graphs
  int cap_T_ = 0, cap_R_ = 0;
  half *resid_ = nullptr, *h_ = nullptr, *qkv_ = nullptr, *attn_ = nullptr, *proj_ = nullptr, *gu_ = nullptr,
       *act_ = nullptr, *rows_ = nullptr;
  Buffer logits_;
  // mixture of experts (ModelConfig::moe_layer; moe_mlp): router logits [T, E] f32, the routing (ops/moe.cuh: ids,
  // weights, offsets [E + 1], slot_token, pair_slot; T x K pairs), the experts' rows in sorted-pair order (input,
  // gate|up, SwiGLU, output), and a pinned copy of the offsets for the host, which launches each expert's linears
  float* moe_logits_ = nullptr;
  float* moe_w_ = nullptr;
  int *moe_ids_ = nullptr, *moe_off_ = nullptr, *moe_slot_token_ = nullptr, *moe_pair_slot_ = nullptr, *moe_active_ = nullptr;
  half *moe_x_ = nullptr, *moe_gu_ = nullptr, *moe_act_ = nullptr, *moe_y_ = nullptr;
  int* moe_host_off_ = nullptr;
  // grouped decode (moe_grouped_; no host wait, so decode steps keep their graphs). f16 experts (no bias): per MoE
  // layer device arrays of the E experts' gate|up and down weight pointers for moe_gemv_cuda
  bool moe_grouped_ = false;
  std::vector<const half**> moe_gu_w_, moe_dn_w_;
  // W4A16 experts: the same through moe_gemv_w4_cuda (device arrays of the experts' W4A16Dev)
  bool moe_w4_ = false;
  std::vector<W4A16Dev*> moe_gu_w4_, moe_dn_w4_;
  // tensor parallelism (m.tp() > 1): this rank's vocabulary slice of the logits, the all-gathered slices
  // [tp][R][vocab/tp] (reordered into logits_ [R, vocab])
  float* logits_rank_ = nullptr;
  float* logits_gather_ = nullptr;
  void* attn_ws_ = nullptr;
  size_t attn_ws_bytes_ = 0;
  // staging
  uint32_t* host_stage_ = nullptr;
  uint32_t* dev_stage_ = nullptr;
  size_t stage_words_ = 0;
  cudaEvent_t staged_ = nullptr;
  // (batch, splits, split length, mb, inv_n, a verification step: its attention loads no K / V before its wait)
  std::map<std::tuple<int, int, int, int, int, bool>, Graph> graphs_;
  const void* graph_kv_ = nullptr;                           // KvView the graphs were captured with
  bool use_graphs_ = true;
  std::set<int> tuned_T_;  // batch buckets whose GEMM shapes were tuned (see forward)
  int64_t launch_cfg_ = -1;  // the launch settings (forward's launch_cfg bits) the graphs were captured with
  int split_len_ = 128;  // set per step from the batch size (deterministic in the graph key's batch)
  // LMFLEET_STEP_STAMPS=1 (decode graph steps): where a step's time goes on this GPU, from events on its stream.
  // in: forward() entry (the stream is idle then, so the event's time is the host's call); gs: the graph's first
  // node (recorded inside the graph); end: after the graph. Per step: launch = gs - in (staging, copy, graph launch),
  // graph = end - gs, after = the next step's in - end (logits, sampling, the host's scheduling); medians per batch
  // bucket to stderr when the decoder goes.
  struct StepStamps {
    bool on = false;
    cudaEvent_t in[2] = {}, end[2] = {}, gs = nullptr;
    int64_t steps = 0;  // graph steps in the current unbroken chain
    int prev_T = 0, prev2_T = 0;  // the batch buckets of the last two steps
    std::map<int, std::vector<float>> launch_us, graph_us, after_us;
  } stamps_;
  void stamp_step_entry(int Tp, bool graph_step);
  void stamp_graph_launched();
  void print_stamps();
};

// The decoder for models on the cuda backend (engine/decoder.cc delegates to it).
std::unique_ptr<CudaDecoder> make_cuda_decoder(Model& m);

}  // namespace lmfleet
