// sample: one token per row with repetition penalty (HF rule: l > 0 ? l / p : l * p over the distinct
// tokens of `history`), then OpenAI's presence/frequency penalties over history[penalty_from:] (the generated
// tokens: l -= frequency * count + presence, once per distinct token, computed in double and rounded to float),
// temperature (<= 0: greedy), top-k, top-p, min-p (Hugging Face's order: each keeps a prefix of the sorted candidates,
// min-p the tokens whose probability is >= min_p x the largest), then inverse-CDF sampling with the
// uniform number `u` that the caller drew from the request's own RNG (so results do not depend on the
// batch a request is in). Candidates are ordered by (logit desc, index asc); probabilities in double.
// Runs on the host (backends that compute logits elsewhere download them first).
#pragma once
#include <cstdint>

namespace lmfleet {

struct SamplingRow {
  float temperature = 0.f;
  int32_t top_k = 0;   // <= 0: off
  float top_p = 1.f;   // >= 1: off
  float min_p = 0.f;   // <= 0: off
  float repetition_penalty = 1.f;
  float presence_penalty = 0.f;
  float frequency_penalty = 0.f;
  double u = 0.0;      // uniform in [0, 1)
  const int32_t* history = nullptr;  // tokens seen so far (prompt + generated)
  int64_t history_len = 0;
  int64_t penalty_from = 0;  // presence/frequency penalties count history[penalty_from:]
  // guided decoding: bit t % 32 of word t / 32 set = token t may be drawn ((vocab + 31) / 32 words, at least one token
  // allowed); the others count as -inf logits before everything above. null: every token.
  const uint32_t* allowed = nullptr;
  // OpenAI's logit_bias (and min_tokens' stop suppression): bias_vals[i] added to the logit of bias_ids[i] (distinct ids
  // in [0, vocab); -inf bans the token), after the mask and before the penalties.
  const int32_t* bias_ids = nullptr;
  const float* bias_vals = nullptr;
  int32_t n_bias = 0;
};

struct sample_args {
  const float* logits;  // [rows, vocab]
  int64_t rows, vocab;
  const SamplingRow* params;  // [rows]
  int32_t* out;               // [rows]
};

// splitmix64: the per-request RNG. uniform() takes the top 53 bits.
struct Rng {
  uint64_t state;
  explicit Rng(uint64_t seed) : state(seed) {}
  uint64_t next() {
    uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  double uniform() { return (double)(next() >> 11) * (1.0 / 9007199254740992.0); }
};

int32_t sample_row(const float* logits, int64_t vocab, const SamplingRow& p);

}  // namespace lmfleet
