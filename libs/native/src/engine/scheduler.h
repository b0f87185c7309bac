// Continuous batching, vLLM-v1 style: plain structs in and out, no kernels (tested that way).
//   schedule() -> SchedulerOutput: which sequences run this step and how many of their tokens
//   update(output, sampled tokens) -> events; sequences finish and leave, waiting ones join, every step.
// - One token budget per step (maxPrefillTokens): running sequences first (decode = 1 token, or the next
//   chunk of a chunked prefill), then waiting ones are admitted while there is budget, batch room and blocks.
// - A running sequence that needs a block when none is free preempts the most recently admitted one
//   (its blocks are freed and it is recomputed later: same tokens, same results).
// - Sessions (sessionId > 0) keep their tokens and KV blocks after a request ends; the next request of the
//   session appends its inputIds and continues from the cache. Idle sessions are evicted (blocks freed,
//   recomputed on next use) when a waiting request needs their blocks.
// - A request that can never fit (min(prompt + maxNewTokens, sessionLen) tokens need more blocks than the
//   cache has) ends with an E_OUT_OF_KV_CACHE error event; one longer than sessionLen with E_INVALID_ARGUMENT.
// - Prefix caching (enable_prefix_caching): a request without a session starts from the longest run of cached full
//   blocks matching its prompt (always computing at least its last prompt token, for the logits); the full blocks it
//   computes are registered for later requests as they fill. Cached blocks no one holds are evicted, least recently
//   used first, only when a grow finds no free block.
// - Speculative decoding, n-gram drafts (prompt lookup; spec_draft_tokens > 0): a decoding sequence whose last n tokens
//   (n from spec_ngram_max down to spec_ngram_min) occurred earlier in its tokens is scheduled with its last token plus
//   up to spec_draft_tokens draft tokens, the ones that followed the latest earlier occurrence. Every position is
//   sampled as a normal decode step would sample it (its own uniform, in order, from the request's RNG), and the
//   drafts are accepted while each equals the token sampled before it: so the tokens are the ones plain decoding
//   would give (for a one-hot draft this is exactly speculative sampling's accept / resample rule), 1 + accepted per
//   step. Rejected positions' K/V are simply overwritten later. Guided requests do not speculate.
#pragma once
#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "engine/kv_cache.h"
#include "ops/sample.h"

namespace lmfleet {

using Clock = std::chrono::steady_clock;

struct LogprobInfo {
  float logprob = 0.f;
  std::vector<std::pair<int32_t, float>> top;
  int32_t rank = 0;  // prompt log-probs: 1 + the tokens with a larger logit (vLLM's rank); 0: not computed
};

// Prompt log-probs (RequestSpec::prompt_logprobs) come from the logits of every prompt position: prefill chunks of such
// requests are at most this many tokens (their logits rows go to the host each step).
constexpr int64_t kPromptLogprobChunk = 256;

// Speculative decoding: at most this many draft tokens per sequence and step.
constexpr int64_t kMaxDraftTokens = 15;

struct SamplingConfig {
  float temperature = 0.f;
  int32_t top_k = 0;
  float top_p = 1.f;
  float min_p = 0.f;  // <= 0: off
  float repetition_penalty = 1.f;
  float presence_penalty = 0.f;   // OpenAI's: subtracted once from each token generated so far
  float frequency_penalty = 0.f;  // OpenAI's: subtracted per occurrence among the tokens generated so far
  bool has_seed = false;
  uint64_t seed = 0;
};

struct RequestSpec {
  int64_t id = 0;
  int64_t session_id = 0;
  std::vector<int32_t> input_ids;
  int64_t max_new_tokens = 0;
  std::vector<int32_t> stop_ids;
  SamplingConfig sampling;
  int32_t logprobs = -1;  // < 0: none; >= 0: logprob of the sampled token + this many alternatives
  // < 0: none; >= 0: the log-prob of each prompt token after the first given the ones before it (raw logits), + this
  // many alternatives, on the request's first event. No prefix-cache reuse (every position is computed), no session.
  int32_t prompt_logprobs = -1;
  // Guided decoding (response_format): each token is sampled only among the allowed ones, a bitmask over the
  // vocabulary (bit t % 32 of word t / 32). `allowed_tokens` is the first token's; after each sampled token the
  // request waits, unscheduled, until Scheduler::set_allowed brings the next one (the caller's grammar decides it).
  bool guided = false;
  std::vector<uint32_t> allowed_tokens;
  // OpenAI's logit_bias: (token id, value) pairs, distinct ids, added to the logits before sampling (not to log-probs)
  std::vector<std::pair<int32_t, float>> logit_bias;
  // vLLM's min_tokens / LMDeploy's min_new_tokens: the stop ids are banned until this many tokens were generated
  int64_t min_new_tokens = 0;
};

struct Sequence {
  RequestSpec req;
  std::vector<int32_t> tokens;  // session history + inputIds + generated
  int64_t prompt_len = 0;       // tokens before generation started
  int64_t num_computed = 0;     // tokens whose K/V are in the cache
  std::vector<int32_t> blocks;  // block table
  int64_t generated = 0;
  Rng rng{0};
  PrefixChain chain;             // prefix caching: leading blocks matched or registered
  int64_t cached_tokens = 0;     // prompt tokens taken from the prefix cache at (first) admission
  bool awaiting_mask = false;    // guided: a token was sampled and the next one's allowed set has not come yet
  std::vector<LogprobInfo> prompt_lps;  // prompt_logprobs: entry k is token k + 1's (filled as prefill chunks run)
  bool prompt_lps_sent = false;
  std::vector<int32_t> draft;    // speculative: this step's draft tokens (after tokens), cleared by update()
  int64_t draft_total = 0, accepted_total = 0;
  bool attached = false;  // session history merged in
  bool admitted_once = false;
  Clock::time_point submitted, admitted, first_token;
};

struct ScheduledSeq {
  Sequence* seq;
  int64_t start;  // first token index computed this step (== num_computed)
  int64_t count;  // tokens computed this step (speculative: 1 + seq->draft.size(), the drafts after seq->tokens)
  bool sample;    // a token is sampled after this step (speculative: one per computed position)
  int64_t rows() const { return sample ? 1 + (int64_t)seq->draft.size() : 0; }
};

struct SchedulerOutput {
  std::vector<ScheduledSeq> seqs;
  int64_t num_tokens = 0;
  bool empty() const { return seqs.empty(); }
};

struct Event {
  enum Kind { Tokens, Done, Error } kind = Tokens;
  int64_t id = 0;
  std::vector<int32_t> tokens;
  std::vector<LogprobInfo> logprobs;
  bool has_logprobs = false;
  std::vector<LogprobInfo> prompt_logprobs;  // the request's first event (Tokens or Done) when it asked for them
  bool has_prompt_logprobs = false;
  std::string finish_reason;
  int64_t prompt_tokens = 0, completion_tokens = 0;
  int64_t cached_tokens = 0;  // of prompt_tokens, how many came from the prefix cache
  int64_t draft_tokens = 0, accepted_tokens = 0;  // speculative decoding: drafts verified / accepted (Done events)
  double queued_ms = 0, first_token_ms = 0, total_ms = 0;
  std::string code, message;
};

struct SchedulerOptions {
  int64_t max_batch_size = 8;
  int64_t session_len = 2048;
  int64_t max_prefill_tokens = 2048;
  // Requests without a session reuse the K/V of cached prompt prefixes (BlockAllocator::match); sessions keep their
  // own history as before.
  bool enable_prefix_caching = false;
  // Speculative decoding with n-gram drafts (vLLM's method "ngram"): at most this many draft tokens per step (0: off),
  // from a match of the sequence's last spec_ngram_max .. spec_ngram_min tokens.
  int64_t spec_draft_tokens = 0;
  int64_t spec_ngram_max = 4;
  int64_t spec_ngram_min = 1;
};

class Scheduler {
 public:
  Scheduler(BlockAllocator& blocks, SchedulerOptions opts);
  void add(RequestSpec req, Clock::time_point now);
  void cancel(int64_t id, std::vector<Event>& events, Clock::time_point now);
  void end_session(int64_t session_id);
  // Guided requests: the allowed tokens for the next token of request `id` (ignored once it has ended).
  void set_allowed(int64_t id, std::vector<uint32_t> mask);
  void cancel_all(std::vector<Event>& events, Clock::time_point now);
  SchedulerOutput schedule(std::vector<Event>& events, Clock::time_point now);
  // `sampled` holds one token per ScheduledSeq with sample == true, in order (logprobs likewise, optional).
  void update(const SchedulerOutput& out, const std::vector<int32_t>& sampled, const std::vector<LogprobInfo>* logprobs,
              std::vector<Event>& events, Clock::time_point now);

  int64_t running() const { return (int64_t)running_.size(); }
  int64_t waiting() const { return (int64_t)waiting_.size(); }
  int64_t sessions() const { return (int64_t)sessions_.size(); }
  bool idle() const { return running_.empty() && waiting_.empty(); }
  // Guided requests waiting for their next allowed-token set (they are not scheduled until it comes).
  int64_t awaiting_masks() const;
  const BlockAllocator& blocks() const { return blocks_; }
  // Speculative decoding so far: draft tokens verified, and of those accepted.
  int64_t spec_draft_tokens() const { return spec_drafted_; }
  int64_t spec_accepted_tokens() const { return spec_accepted_; }
  // The n-gram proposal for `tokens` (exposed for tests): up to `k` tokens that followed the latest earlier occurrence
  // of the last n tokens, for the largest n in [nmin, nmax] that has one; empty when none matches.
  static std::vector<int32_t> propose_ngram(const std::vector<int32_t>& tokens, int64_t k, int64_t nmin, int64_t nmax);

 private:
  struct Session {
    std::vector<int32_t> tokens;
    std::vector<int32_t> blocks;
    int64_t num_computed = 0;
    bool busy = false;
    bool ended = false;  // endSession while busy: drop when the request ends
    uint64_t last_used = 0;
  };
  bool attach_session(Sequence& s);  // false: session busy, try later
  void finish(std::unique_ptr<Sequence> s, const std::string& reason, std::vector<Event>& events, Clock::time_point now);
  void fail_request(std::unique_ptr<Sequence> s, const char* code, const std::string& msg, std::vector<Event>& events);
  void preempt(size_t running_index);
  bool evict_idle_session();
  bool grow(Sequence& s, int64_t tokens, size_t self_index, bool allow_preempt);
  bool caches_prefix(const Sequence& s) const { return opts_.enable_prefix_caching && s.req.session_id <= 0 && s.req.prompt_logprobs < 0; }
  // prompt_logprobs: a prompt chunk at most kPromptLogprobChunk tokens long
  static int64_t chunk_cap(const Sequence& s, int64_t n) {
    return s.req.prompt_logprobs >= 0 && s.num_computed < s.prompt_len ? std::min(n, kPromptLogprobChunk) : n;
  }
  // The request's prompt log-probs onto its first event, once.
  static void attach_prompt_logprobs(Sequence& s, Event& e) {
    if (s.req.prompt_logprobs < 0 || s.prompt_lps_sent) return;
    s.prompt_lps_sent = true;
    e.has_prompt_logprobs = true;
    e.prompt_logprobs = std::move(s.prompt_lps);
  }

  BlockAllocator& blocks_;
  SchedulerOptions opts_;
  std::deque<std::unique_ptr<Sequence>> waiting_;
  std::vector<std::unique_ptr<Sequence>> running_;
  std::map<int64_t, Session> sessions_;
  uint64_t tick_ = 0;
  int64_t spec_drafted_ = 0, spec_accepted_ = 0;
  void propose(Sequence& s, int64_t budget);  // sets s.draft (speculative decoding), within the step's budget
};

}  // namespace lmfleet
