#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace lmfleet {

// Per-row sampling parameters, device arrays of length batch (the engine keeps one slot per running request).
struct SampleParamsDevice {
  const float* temperature;  // <= 0: greedy (arg-max)
  const int* top_k;          // <= 0 or >= vocab: off
  const float* top_p;        // >= 1 or <= 0: off
  const uint64_t* seed;      // the request's seed
  uint64_t* counter;         // the request's draw counter: Philox counter, incremented by each call (graph-safe)
  const double* u;           // nullable: the caller's uniforms in [0, 1) (e.g. the request's host RNG); else Philox
  const float* min_p = nullptr;  // nullable (off); <= 0: off for that row
};

// Hugging Face order: (repetition penalty, applied separately) -> temperature -> top-k -> top-p -> min-p -> draw.
// top-k keeps every token whose logit is >= the k-th largest (ties kept); top-p keeps the largest tokens
// whose mass, counted before each token, is < top_p (the token that crosses top_p is kept); min-p keeps the tokens
// with expf((logit - max) / temperature) >= min_p (probability relative to the largest). The draw uses one
// uniform from Philox4x32-10(key = seed, counter = counter[b]) and an inverse-CDF walk in index order, so the
// result depends only on (logits, params, seed, counter). logprob (nullable): log_softmax(logits[b])[token].
void sample_cuda(const float* logits, int ld, int vocab, int batch, SampleParamsDevice p, int* out, float* logprob,
                 cudaStream_t s);

// Repetition penalty (HF/CTRL): for each distinct id in the row's history, logit /= penalty if > 0 else *= penalty.
// hist_ids: all rows' histories back to back; hist_starts: [batch + 1] offsets. bitmap: device workspace of
// sample_bitmap_bytes(batch, vocab) bytes, zeroed once at allocation (the kernel leaves it zeroed).
size_t sample_bitmap_bytes(int batch, int vocab);
void repetition_penalty_cuda(float* logits, int ld, int vocab, int batch, const int* hist_ids, const int* hist_starts,
                             const float* penalty, unsigned* bitmap, cudaStream_t s);

// OpenAI's presence/frequency penalties over each row's generated tokens hist_ids[gen_starts[b], hist_starts[b+1]):
// logit -= frequency[b] * count + presence[b], once per distinct id, in double rounded to float (as the CPU).
// counts: device workspace of batch * vocab ints, zeroed (the kernel leaves it zeroed).
void presence_frequency_penalty_cuda(float* logits, int ld, int vocab, int batch, const int* hist_ids, const int* gen_starts,
                                     const int* hist_starts, const float* presence, const float* frequency, int* counts,
                                     cudaStream_t s);

// Guided decoding: row b's tokens whose bit is clear in masks[mask_row[b] * words ...] (bit t % 32 of word t / 32) set to
// -inf in place; rows with mask_row[b] < 0 untouched. Runs before the penalties and sample_cuda (-inf stays -inf).
void token_mask_cuda(float* logits, int ld, int vocab, int batch, const uint32_t* masks, int words, const int* mask_row,
                     cudaStream_t s);

// OpenAI's logit_bias: logits[rows[i] * ld + ids[i]] += vals[i] for i < n ((row, id) pairs distinct).
void logit_bias_cuda(float* logits, int ld, const int* rows, const int* ids, const float* vals, int n, cudaStream_t s);

// Philox4x32-10 on the host, for tests and the CPU backend to reproduce the GPU's draws.
void philox4x32_10(uint32_t ctr[4], uint32_t key[2]);
double philox_uniform(uint64_t seed, uint64_t counter);

}  // namespace lmfleet
