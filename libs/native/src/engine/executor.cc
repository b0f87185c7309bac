#include "engine/executor.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <mutex>
#include <thread>

#include "core/env.h"
#include "engine/host_stamps.h"
#include "ops/log_softmax.h"
#include "ops/sample.h"

namespace lmfleet {

// token's log-prob under the row's log-softmax, and the top `top` tokens (logit desc, index asc on ties)
LogprobInfo Executor::logprob_info(const float* row, int64_t V, int32_t token, int32_t top, std::vector<int32_t>& top_ids, bool rank) {
  LogprobInfo lp;
  float mx;
  double lse;
  row_logsumexp(row, V, &mx, &lse);
  lp.logprob = (float)((double)(row[token] - mx) - lse);
  if (rank) {
    int32_t above = 0;
    for (int64_t i = 0; i < V; i++) above += row[i] > row[token];
    lp.rank = above + 1;
  }
  if (top > 0) {
    // one scan keeping the best n in order (n is small: most tokens cost one comparison; prompt log-probs score
    // hundreds of rows a step)
    const int64_t n = std::min<int64_t>(top, V);
    auto before = [&](int32_t a, int32_t c) { return row[a] > row[c] || (row[a] == row[c] && a < c); };
    top_ids.clear();
    for (int32_t i = 0; i < (int32_t)V; i++) {
      if ((int64_t)top_ids.size() == n && !before(i, top_ids.back())) continue;
      top_ids.insert(std::upper_bound(top_ids.begin(), top_ids.end(), i, before), i);
      if ((int64_t)top_ids.size() > n) top_ids.pop_back();
    }
    for (int32_t t : top_ids) lp.top.push_back({t, (float)((double)(row[t] - mx) - lse)});
  }
  return lp;
}

void Executor::run(const SchedulerOutput& out, std::vector<int32_t>& sampled, std::vector<LogprobInfo>& logprobs,
                   const std::function<void()>& launched) {
  sampled.clear();
  logprobs.clear();
  if (out.empty()) return;
  const int64_t bs = cache_.view().block_size;
  StepBatch& b = batch_;
  b.tokens.clear();
  b.positions.clear();
  b.slots.clear();
  b.seq_info.clear();
  b.block_tables.clear();
  b.logit_rows.clear();
  b.max_blocks = 1;
  for (const auto& sc : out.seqs) b.max_blocks = std::max<int64_t>(b.max_blocks, (int64_t)sc.seq->blocks.size());
  std::vector<const ScheduledSeq*> sampling;
  prompt_rows_.clear();
  std::vector<int32_t> prompt_logit_rows;
  for (const auto& sc : out.seqs) {
    const Sequence& s = *sc.seq;
    const int32_t q_start = (int32_t)b.tokens.size();
    const int64_t known = (int64_t)s.tokens.size();  // positions past it are this step's drafts
    for (int64_t j = 0; j < sc.count; j++) {
      const int64_t pos = sc.start + j;
      b.tokens.push_back(pos < known ? s.tokens[pos] : s.draft[(size_t)(pos - known)]);
      b.positions.push_back((int32_t)pos);
      b.slots.push_back((int32_t)(s.blocks[pos / bs] * bs + pos % bs));
    }
    b.seq_info.push_back(q_start);
    b.seq_info.push_back((int32_t)sc.count);
    b.seq_info.push_back((int32_t)(sc.start + sc.count));
    for (int64_t k = 0; k < b.max_blocks; k++) b.block_tables.push_back(k < (int64_t)s.blocks.size() ? s.blocks[k] : 0);
    // one sampled row per position from the last known token on (a speculative step samples after each draft too)
    for (int64_t r = sc.rows(); r > 0; r--) {
      b.logit_rows.push_back(q_start + (int32_t)(sc.count - r));
      sampling.push_back(&sc);
    }
    // prompt log-probs: position j's logits give token j + 1's; positions in order, each once (a preempted request's
    // recomputed prompt adds nothing new, nor does one whose log-probs went out with its first event)
    if (s.req.prompt_logprobs >= 0 && !s.prompt_lps_sent) {
      int64_t next = (int64_t)s.prompt_lps.size();
      for (int64_t j = sc.start; j < sc.start + sc.count && j + 1 < s.prompt_len; j++)
        if (j == next) {
          prompt_logit_rows.push_back(q_start + (int32_t)(j - sc.start));
          prompt_rows_.push_back({sc.seq, j + 1});
          next++;
        }
    }
  }
  // after the sampled rows, so the sampler reads rows [0, R) as before
  b.logit_rows.insert(b.logit_rows.end(), prompt_logit_rows.begin(), prompt_logit_rows.end());
  const int64_t V = model_.cfg().vocab;
  const int64_t R = (int64_t)sampling.size();
  // Sampling parameters and uniforms in the order the rows come back: one draw per sampled token from the
  // request's own RNG, whatever the batch (and whatever the backend).
  std::vector<SamplingRow>& rows = rows_;
  rows.assign((size_t)R, SamplingRow{});
  // A speculative sequence's rows come together: row j was computed after j drafts, so as plain decoding it has
  // generated j more tokens and draws the j-th next uniform of its RNG (from a copy: the scheduler advances the RNG by
  // the tokens it takes). Only penalties read the history; with drafts it is the tokens and the drafts before the row,
  // copied (an inner vector's data stays put as spec_hist_ grows) for a request that has a penalty.
  spec_hist_.clear();
  std::vector<int64_t> row_j((size_t)R, 0);
  bool want_logits = false;
  for (int64_t r = 0; r < R;) {
    Sequence& s = *sampling[r]->seq;
    const SamplingConfig& sp = s.req.sampling;
    const int64_t n = sampling[r]->rows();
    Rng draws = s.rng;
    const bool penalized = sp.repetition_penalty != 1.f || sp.presence_penalty != 0.f || sp.frequency_penalty != 0.f;
    const int32_t* hist = s.tokens.data();
    if (n > 1 && penalized) {
      spec_hist_.emplace_back(s.tokens);
      spec_hist_.back().insert(spec_hist_.back().end(), s.draft.begin(), s.draft.end());
      hist = spec_hist_.back().data();
    }
    for (int64_t j = 0; j < n; j++) {
      SamplingRow& p = rows[(size_t)(r + j)];
      row_j[(size_t)(r + j)] = j;
      p.temperature = sp.temperature;
      p.top_k = sp.top_k;
      p.top_p = sp.top_p;
      p.min_p = sp.min_p;
      p.repetition_penalty = sp.repetition_penalty;
      p.presence_penalty = sp.presence_penalty;
      p.frequency_penalty = sp.frequency_penalty;
      p.penalty_from = s.prompt_len;  // presence/frequency count this request's generated tokens only
      p.u = n > 1 ? draws.uniform() : s.rng.uniform();
      p.history = hist;
      p.history_len = (int64_t)s.tokens.size() + (hist == s.tokens.data() ? 0 : j);
      // guided: the backend's sampler draws among the allowed tokens (masked where the logits are, on the device for cuda)
      p.allowed = s.req.guided ? s.req.allowed_tokens.data() : nullptr;
    }
    want_logits = want_logits || s.req.logprobs >= 0;
    r += n;
  }
  // logit bias per row: the request's, plus -inf on its stop ids while fewer than min_new_tokens were generated (flat
  // arrays, pointers taken once every row is in)
  bias_ids_.clear();
  bias_vals_.clear();
  bias_at_.assign((size_t)R + 1, 0);
  for (int64_t r = 0; r < R; r++) {
    const Sequence& s = *sampling[r]->seq;
    const size_t from = bias_ids_.size();
    for (const auto& [t, v] : s.req.logit_bias) bias_ids_.push_back(t), bias_vals_.push_back(v);
    if (s.generated + row_j[(size_t)r] < s.req.min_new_tokens)
      for (int32_t t : s.req.stop_ids) {
        if (t < 0 || t >= V) continue;
        const auto at = std::find(bias_ids_.begin() + (std::ptrdiff_t)from, bias_ids_.end(), t);
        if (at != bias_ids_.end()) bias_vals_[(size_t)(at - bias_ids_.begin())] = -INFINITY;
        else bias_ids_.push_back(t), bias_vals_.push_back(-INFINITY);
      }
    bias_at_[(size_t)r + 1] = bias_ids_.size();
  }
  for (int64_t r = 0; r < R; r++) {
    rows[r].n_bias = (int32_t)(bias_at_[(size_t)r + 1] - bias_at_[(size_t)r]);
    if (rows[r].n_bias) rows[r].bias_ids = bias_ids_.data() + bias_at_[(size_t)r], rows[r].bias_vals = bias_vals_.data() + bias_at_[(size_t)r];
  }
  sampled.assign((size_t)R, 0);
  HostStamps& hs = HostStamps::get();
  {
    std::lock_guard<std::mutex> lock(model_.run_mutex);
    hs.mark(HostStamps::kBuilt);
    const Buffer& logits = model_decoder(model_).forward(b, cache_.view());
    hs.mark(HostStamps::kForwarded);
    if (launched) launched();
    if (R > 0) {
      // Logits come to the host only for the rows whose request asked for logprobs (raw logits, before
      // penalty/temperature: downloaded before sampling).
      if (want_logits) {
        logits_.resize((size_t)R * (size_t)V);
        for (int64_t r = 0; r < R; r++)
          if (sampling[r]->seq->req.logprobs >= 0)
            model_.backend().download(logits_.data() + r * V, logits.as<float>() + r * V, (size_t)V * 4);
      }
      model_.backend().sample({logits.as<float>(), R, V, rows.data(), sampled.data()});
    }
    if (!prompt_rows_.empty()) {
      prompt_logits_.resize(prompt_rows_.size() * (size_t)V);
      model_.backend().download(prompt_logits_.data(), logits.as<float>() + R * V, prompt_logits_.size() * 4);
    }
  }
  if (!prompt_rows_.empty()) {
    // each row is a pass over the vocabulary (log-sum-exp, top-N): on a few threads of the executor's own pool when
    // there are many (a 256-token chunk of a 152k vocabulary is ~40M exps)
    const int64_t P = (int64_t)prompt_rows_.size();
    std::vector<LogprobInfo> got((size_t)P);
    auto score = [&](int64_t k, std::vector<int32_t>& scratch) {
      const Sequence& s = *prompt_rows_[(size_t)k].first;
      got[(size_t)k] = logprob_info(prompt_logits_.data() + k * V, V, s.tokens[(size_t)prompt_rows_[(size_t)k].second], s.req.prompt_logprobs, scratch, true);
    };
    // LMFLEET_LP_THREADS: the pool's threads (default half the cores, at most 8; 1: the batch thread alone)
    static const int lp_threads = env_int("LMFLEET_LP_THREADS", std::max(1, std::min(8, (int)std::thread::hardware_concurrency() / 2)));
    if (P * V >= (int64_t)1 << 22 && lp_threads > 1) {
      if (!lp_pool_) lp_pool_ = std::make_unique<ThreadPool>(lp_threads);
      lp_pool_->parallel_for(P, [&](int64_t b, int64_t e) {
        std::vector<int32_t> scratch;
        for (int64_t k = b; k < e; k++) score(k, scratch);
      });
    } else {
      for (int64_t k = 0; k < P; k++) score(k, idx_);
    }
    for (int64_t k = 0; k < P; k++) prompt_rows_[(size_t)k].first->prompt_lps.push_back(std::move(got[(size_t)k]));
  }
  hs.mark(HostStamps::kSampled);
  for (int64_t r = 0; r < R; r++) {
    const Sequence& s = *sampling[r]->seq;
    const int32_t tok = sampled[r];
    logprobs.push_back(s.req.logprobs >= 0 ? logprob_info(logits_.data() + r * V, V, tok, s.req.logprobs, idx_) : LogprobInfo{});
  }
  hs.mark(HostStamps::kRan);
}

}  // namespace lmfleet
