// rope: rotary position embedding, rotate-half (GPT-NeoX / HF Llama) layout, in place on x [tokens, heads,
// head_dim], optionally after a per-head RMSNorm (rope_args::norm_w). Only the first rotary_dim dims of each head rotate. The frequency table carries the RoPE
// variant (default / linear / dynamic NTK / llama3): see rope_inv_freq().
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace lmfleet {

struct RopeParams {
  std::string type = "default";  // default | linear | dynamic | llama3 | longrope | yarn
  double theta = 10000.0;
  double factor = 1.0;
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  int64_t original_max_position = 0;  // llama3 (and dynamic when set; else max_position)
  int64_t max_position = 2048;
  double rotary = 0;  // <= 1: fraction of head_dim; > 1: number of dims; 0: full head
  // longrope (Phi-3 128k, Phi-3.5): per-pair divisors of the frequencies, short_factor for sequences up to
  // original_max_position tokens, long_factor beyond; attention_factor multiplies cos and sin (HF), which for a full
  // rotary head is the attention logits times attention_factor^2 (rope_attention_scale).
  std::vector<float> short_factor, long_factor;
  double attention_factor = 1.0;
  // yarn (Qwen2.5 / Qwen3 long context, DeepSeek): frequencies interpolated by `factor` below the band set by
  // beta_fast / beta_slow rotations over original_max_position tokens, kept above it, a linear ramp between
  // (truncate: the band's ends rounded outwards to whole pairs, as HF's default); attention_factor as for longrope.
  double beta_fast = 32.0, beta_slow = 1.0;
  bool truncate = true;
  // > 0: the attention softmax scale itself, in place of 1/sqrt(head_dim) (Granite's attention_multiplier); it sits
  // here because every path that computes the scale (decoders, AWQ session) carries the rope parameters
  double attention_scale = 0;
};

// Whether the frequency table depends on each sequence's length (dynamic NTK, longrope): one table per token then.
inline bool rope_per_sequence(const RopeParams& p) { return p.type == "dynamic" || p.type == "longrope"; }
// longrope / yarn multiply cos and sin by attention_factor (HF). On a fully rotated head that is the attention logits
// times attention_factor^2, so the softmax scale carries it (rope_attention_scale: 1/sqrt(head_dim) times
// attention_factor^2) and the rope stays plain. On a partially rotated head (Phi-4-mini) only the rotated dims carry
// it: the rope multiplies cos and sin by it (rope_cs_scale) and the softmax scale stays 1/sqrt(head_dim).
double rope_attention_scale(const RopeParams& p, int64_t head_dim);
double rope_cs_scale(const RopeParams& p, int64_t head_dim);
// The softmax scale of a layer without RoPE (SmolLM3's NoPE layers): attention_scale, or 1/sqrt(head_dim).
double nope_attention_scale(const RopeParams& p, int64_t head_dim);

int64_t rope_rotary_dim(const RopeParams& p, int64_t head_dim);
// rotary_dim/2 inverse frequencies for a sequence of `seq_len` tokens (seq_len matters only for dynamic NTK).
std::vector<float> rope_inv_freq(const RopeParams& p, int64_t head_dim, int64_t seq_len);

struct rope_args {
  float* x;  // [tokens, heads, head_dim]
  int64_t tokens, heads, head_dim, rotary_dim;
  const int32_t* positions;  // [tokens]
  const float* inv_freq;     // [rotary_dim/2], or [tokens, rotary_dim/2] when inv_freq_stride != 0
  int64_t inv_freq_stride;
  int64_t ld = 0;  // floats between consecutive tokens' rows (0: heads * head_dim), e.g. q inside a fused qkv
  // Qwen3's q_norm / k_norm: when set, every head is first RMS-normalized over its head_dim values with this weight
  // [head_dim] (f32 math, eps norm_eps), then rotated.
  const float* norm_w = nullptr;
  float norm_eps = 1e-6f;
  // cos and sin are multiplied by this (HF's attention_scaling for longrope / yarn on a partially rotated head:
  // rope_cs_scale); 1 otherwise
  float cs_scale = 1.f;
};

}  // namespace lmfleet
