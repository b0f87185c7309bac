// The AWQ search's per-layer session (lite auto_awq / lite calibrate on big models): one decoder layer's weights and
// the layer inputs of the samples stay in backend memory (the GPU on cuda), and the heavy questions of the search
// come back as small answers: the layer's statistics, the loss of each scale candidate of a scaling group, the clip
// per (row, group) of a linear, the quantized codes. Written once over the Backend interface (every step is an op of
// ops.def), so the cpu backend runs the same code as cuda: f32 activations on both; cuda's linears read f16 weights
// (cuBLAS, f32 out) and its attention rounds q/k/v to f16 (Backend::attention_fast: the decoder's prefill kernel).
//
// A layer is the Llama/Qwen2 block: x -> h = x + o(attn(rope(q(n1)), rope(k(n1)), v(n1))) with n1 = rms_norm(x),
// out = h + down(silu(gate(n2)) * up(n2)) with n2 = rms_norm(h). Linear names: q k v o gate up down (+ ".bias"),
// norms input_norm and post_norm (and, with qk_norm, Qwen3's per-head q_norm and k_norm before RoPE). Callers hold the lock (one call at a time; the binding takes it).
#pragma once
#include <array>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/backend.h"
#include "core/error.h"
#include "ops/rope.h"

namespace lmfleet {

struct AwqSessionConfig {
  int64_t hidden = 0, inter = 0, heads = 0, kv_heads = 0, head_dim = 0;
  float eps = 1e-6f;
  RopeParams rope;
  bool qk_norm = false;  // Qwen3: q_norm / k_norm [head_dim] RMS-norm each q / k head before RoPE
};

// Running per-column statistics of one tap (backend memory; see channel_stats).
struct TapStats {
  Buffer absmax, abssum, min, max;
  int64_t dim = 0, rows = 0;
};

class AwqSession {
 public:
  enum Tap { AttnIn = 0, OIn, MlpIn, DownIn, K, V, kTaps };
  static constexpr int kLinears = 7;  // q k v o gate up down

  AwqSession(Backend& be, const AwqSessionConfig& c);
  std::mutex& lock() { return mu_; }
  const AwqSessionConfig& cfg() const { return c_; }

  // name: a linear (q .. down), "<linear>.bias", input_norm or post_norm; host f32, `count` values (checked).
  void set_tensor(const std::string& name, const float* host, int64_t count);
  // The layer's sliding window (0: full attention), for the layers that have one (ModelConfig::layer_window).
  void set_window(int64_t window) {
    if (window < 0) fail(ErrorCode::InvalidArgument, "awq session: window must be >= 0");
    window_ = window;
  }
  // Whether the layer rotates q and k (false: a NoPE layer, ModelConfig::no_rope_layers).
  void set_rope(bool rope) { rope_ = rope; }
  // The layer input of the samples: tokens [tokens, hidden] (host f32), one length per sequence. append: add to
  // the sequences already there (the first call reserves room for `reserve` tokens in all).
  void set_input(const float* host, int64_t tokens, const std::vector<int32_t>& seq_lens, bool append, int64_t reserve);
  int64_t tokens() const { return tokens_; }

  // Runs the layer over every input sequence, batches of at most batch_tokens tokens (whole sequences).
  // stats: accumulate channel statistics of the taps (reset first); keep_taps: keep attnIn/oIn/mlpIn/downIn of
  // all tokens for the searches; advance: the layer's output becomes the input.
  void run(bool stats, bool keep_taps, bool advance, int64_t batch_tokens);
  // Host copies of the statistics of tap t: absmax, sum |x| (f64), min, max, and the rows seen.
  void tap_stats(int t, std::vector<float>& absmax, std::vector<double>& abssum, std::vector<float>& min,
                 std::vector<float>& max, int64_t& rows) const;

  // Scale search of group g (0: input_norm -> q,k,v on the attention block, over the first `seqs` sequences;
  // 1: v -> o on o; 2: post_norm -> gate,up on the MLP; 3: up -> down on down; 1-3 on the kept-tap rows `rows`):
  // for each candidate s (cands [n, in]) the group's linears become Q(W diag s) diag(s)^-1 and the MSE of the
  // block's output against the current weights' output is returned.
  std::vector<double> scale_losses(int g, const float* cands, int n, int64_t seqs, const std::vector<int32_t>& rows,
                                   int bits, int group);
  // Clip search of linear l on its kept tap's rows `rows` (awq_clip_search): clip and err [out, in / group].
  void clip_search(int l, const std::vector<int32_t>& rows, int bits, int group, int n_grid, double max_shrink,
                   std::vector<float>& clip, std::vector<float>& err);
  // The final round to nearest of linear l (awq_fake_quant with codes) with clip [out, in / group] (or empty: no
  // clip): codes [out, in], zeros and scales [out, in / group] to the host; the session's weight becomes the
  // dequantized one (what the next layer's input is computed with).
  void quantize(int l, const std::vector<float>& clip, int bits, int group, std::vector<uint8_t>& codes,
                std::vector<uint8_t>& zeros, std::vector<float>& scales);

  // AutoAWQ GEMM packing of 4-bit codes [out, in], zeros and scales [out, in / group] (host): qweight i32 [in, out / 8]
  // and qzeros i32 [in / group, out / 8] with nibble j of a word = column 8c + {0,2,4,6,1,3,5,7}[j], scales f16
  // [in / group, out] (quant/pack.ts toAwqGemm, in C++).
  static void pack_awq_gemm(const std::vector<uint8_t>& codes, const std::vector<uint8_t>& zeros,
                            const std::vector<float>& scales, int64_t out, int64_t in, int group,
                            std::vector<int32_t>& qweight, std::vector<int32_t>& qzeros, std::vector<uint16_t>& scales16);
  // The current input (host f32 [tokens, hidden]).
  std::vector<float> input() const;

  static int linear_index(const std::string& name);  // -1 when unknown
  std::array<int64_t, 2> linear_shape(int l) const;  // [out, in]

 private:
  int64_t window_ = 0;
  bool rope_ = true;
  struct Batch {  // sequences [s0, s1) of the input: tokens [t0, t0 + T)
    int64_t s0, s1, t0, T;
  };
  struct Lin {
    Buffer w, b;  // f32 backend copies ([out, in], [out])
    bool has_w = false, has_b = false, dirty = true;
    std::unique_ptr<LinearWeight> prepared;
  };
  const LinearWeight& weight(int l);
  void check_ready() const;
  // attention sub-block: attn_in [T, hidden] -> out [T, hidden] (o's output); q/k/v/o: the weights to use;
  // k_out/v_out/o_in: taps (null: scratch).
  void attn_block(const float* attn_in, const std::vector<int32_t>& lens, const LinearWeight* wq, const LinearWeight* wk,
                  const LinearWeight* wv, const LinearWeight* wo, float* out, float* k_tap, float* v_tap, float* o_tap);
  void mlp_block(const float* mlp_in, int64_t T, const LinearWeight* wg, const LinearWeight* wu, const LinearWeight* wd,
                 float* out, float* down_tap);
  void gather(const float* src, int64_t dim, const std::vector<int32_t>& rows, float* dst);
  std::vector<int32_t> batch_lens(const Batch& b) const;
  float* scratch(int slot, size_t floats);

  Backend& be_;
  AwqSessionConfig c_;
  std::mutex mu_;
  std::array<Lin, kLinears> lin_;
  Buffer in_norm_, post_norm_, q_norm_, k_norm_;
  bool has_in_norm_ = false, has_post_norm_ = false, has_q_norm_ = false, has_k_norm_ = false;
  Buffer x_;  // input [cap_, hidden]
  int64_t tokens_ = 0, cap_ = 0;
  std::vector<int32_t> seq_lens_;
  std::array<Buffer, kTaps> taps_;  // kept taps (attnIn, oIn, mlpIn, downIn) of all tokens
  bool taps_valid_ = false;
  std::array<TapStats, kTaps> stats_;
  bool f32_attention_ = false;  // LMFLEET_AWQ_F32_ATTENTION=1: the f32 attention op instead of attention_fast
  std::array<Buffer, 24> scratch_;
  std::array<Buffer, kLinears> fq_;  // candidate weights (f32) of scale_losses
  Buffer sums_;
};

}  // namespace lmfleet
