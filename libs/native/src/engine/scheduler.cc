#include "engine/scheduler.h"

#include <algorithm>
#include <random>

#include "core/env.h"
#include "core/error.h"

namespace lmfleet {

namespace {
double ms_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}
}  // namespace

Scheduler::Scheduler(BlockAllocator& blocks, SchedulerOptions opts) : blocks_(blocks), opts_(opts) {
  if (opts_.max_batch_size <= 0) fail(ErrorCode::InvalidArgument, "maxBatchSize must be > 0");
  if (opts_.session_len <= 0) fail(ErrorCode::InvalidArgument, "sessionLen must be > 0");
  if (opts_.max_prefill_tokens <= 0) fail(ErrorCode::InvalidArgument, "maxPrefillTokens must be > 0");
  if (opts_.spec_draft_tokens < 0 || opts_.spec_draft_tokens > kMaxDraftTokens)
    fail(ErrorCode::InvalidArgument, "speculative numDraftTokens must be in [0, " + std::to_string(kMaxDraftTokens) + "], got " +
                                         std::to_string(opts_.spec_draft_tokens));
  if (opts_.spec_draft_tokens > 0 && !(opts_.spec_ngram_min >= 1 && opts_.spec_ngram_min <= opts_.spec_ngram_max && opts_.spec_ngram_max <= 64))
    fail(ErrorCode::InvalidArgument, "speculative promptLookupMin / promptLookupMax must satisfy 1 <= min <= max <= 64, got " +
                                         std::to_string(opts_.spec_ngram_min) + " / " + std::to_string(opts_.spec_ngram_max));
  blocks_.set_prefix_caching(opts_.enable_prefix_caching);
}

void Scheduler::add(RequestSpec req, Clock::time_point now) {
  auto s = std::make_unique<Sequence>();
  uint64_t seed = req.sampling.has_seed ? req.sampling.seed
                                        : ((uint64_t)std::random_device{}() << 32) ^ std::random_device{}() ^ (uint64_t)req.id;
  s->rng = Rng(seed);
  s->req = std::move(req);
  s->submitted = now;
  waiting_.push_back(std::move(s));
}

bool Scheduler::attach_session(Sequence& s) {
  if (s.attached) return true;
  std::vector<int32_t> tokens;
  if (s.req.session_id > 0) {
    auto it = sessions_.find(s.req.session_id);
    if (it != sessions_.end()) {
      Session& ss = it->second;
      if (ss.busy) return false;
      ss.busy = true;
      tokens = std::move(ss.tokens);
      s.blocks = std::move(ss.blocks);
      s.num_computed = ss.num_computed;
      ss.tokens.clear();
      ss.blocks.clear();
    } else {
      Session& ss = sessions_[s.req.session_id];
      ss.busy = true;
    }
  }
  tokens.insert(tokens.end(), s.req.input_ids.begin(), s.req.input_ids.end());
  s.tokens = std::move(tokens);
  s.prompt_len = (int64_t)s.tokens.size();
  s.attached = true;
  return true;
}

void Scheduler::fail_request(std::unique_ptr<Sequence> s, const char* code, const std::string& msg, std::vector<Event>& events) {
  blocks_.release(s->blocks);
  if (s->req.session_id > 0) {
    auto it = sessions_.find(s->req.session_id);
    if (it != sessions_.end()) {
      blocks_.release(it->second.blocks);
      sessions_.erase(it);
    }
  }
  Event e;
  e.kind = Event::Error;
  e.id = s->req.id;
  e.code = code;
  e.message = msg;
  events.push_back(std::move(e));
}

void Scheduler::finish(std::unique_ptr<Sequence> s, const std::string& reason, std::vector<Event>& events, Clock::time_point now) {
  Event e;
  e.kind = Event::Done;
  e.id = s->req.id;
  e.finish_reason = reason;
  e.prompt_tokens = (int64_t)s->req.input_ids.size();
  e.completion_tokens = s->generated;
  e.cached_tokens = s->cached_tokens;
  e.draft_tokens = s->draft_total;
  e.accepted_tokens = s->accepted_total;
  e.queued_ms = s->admitted_once ? ms_between(s->submitted, s->admitted) : ms_between(s->submitted, now);
  e.first_token_ms = s->generated > 0 ? ms_between(s->submitted, s->first_token) : 0;
  e.total_ms = ms_between(s->submitted, now);
  if (reason != "cancelled" && s->num_computed >= s->prompt_len) attach_prompt_logprobs(*s, e);
  events.push_back(std::move(e));
  const int64_t sid = s->req.session_id;
  auto it = sid > 0 && s->attached ? sessions_.find(sid) : sessions_.end();
  if (it == sessions_.end()) {
    // No session, or a request cancelled before it took its session over: only its own blocks.
    blocks_.release(s->blocks);
  } else if (reason != "cancelled" && !it->second.ended) {
    Session& ss = it->second;
    ss.busy = false;
    ss.num_computed = std::min<int64_t>(s->num_computed, (int64_t)s->tokens.size());
    ss.tokens = std::move(s->tokens);
    ss.blocks = std::move(s->blocks);
    ss.last_used = ++tick_;
  } else {
    // Cancelled requests free everything at once, their session included; so does endSession while busy.
    blocks_.release(s->blocks);
    blocks_.release(it->second.blocks);
    sessions_.erase(it);
  }
}

void Scheduler::cancel(int64_t id, std::vector<Event>& events, Clock::time_point now) {
  for (auto it = waiting_.begin(); it != waiting_.end(); ++it) {
    if ((*it)->req.id == id) {
      auto s = std::move(*it);
      waiting_.erase(it);
      finish(std::move(s), "cancelled", events, now);
      return;
    }
  }
  for (size_t i = 0; i < running_.size(); i++) {
    if (running_[i]->req.id == id) {
      auto s = std::move(running_[i]);
      running_.erase(running_.begin() + i);
      finish(std::move(s), "cancelled", events, now);
      return;
    }
  }
}

void Scheduler::set_allowed(int64_t id, std::vector<uint32_t> mask) {
  const auto take = [&](Sequence& s) {
    if (s.req.id != id || !s.req.guided) return false;
    s.req.allowed_tokens = std::move(mask);
    s.awaiting_mask = false;
    return true;
  };
  for (auto& s : running_)
    if (take(*s)) return;
  for (auto& s : waiting_)
    if (take(*s)) return;
}

int64_t Scheduler::awaiting_masks() const {
  int64_t n = 0;
  for (const auto& s : running_) n += s->awaiting_mask;
  for (const auto& s : waiting_) n += s->awaiting_mask;
  return n;
}

void Scheduler::cancel_all(std::vector<Event>& events, Clock::time_point now) {
  while (!running_.empty()) cancel(running_.back()->req.id, events, now);
  while (!waiting_.empty()) cancel(waiting_.front()->req.id, events, now);
}

void Scheduler::end_session(int64_t sid) {
  auto it = sessions_.find(sid);
  if (it == sessions_.end()) return;
  if (it->second.busy) {
    it->second.ended = true;
    return;
  }
  blocks_.release(it->second.blocks);
  sessions_.erase(it);
}

void Scheduler::preempt(size_t i) {
  auto s = std::move(running_[i]);
  running_.erase(running_.begin() + i);
  blocks_.release(s->blocks);
  s->num_computed = 0;
  s->chain = PrefixChain{};
  waiting_.push_front(std::move(s));
}

bool Scheduler::evict_idle_session() {
  Session* victim = nullptr;
  for (auto& [sid, ss] : sessions_)
    if (!ss.busy && !ss.blocks.empty() && (!victim || ss.last_used < victim->last_used)) victim = &ss;
  if (!victim) return false;
  blocks_.release(victim->blocks);
  victim->num_computed = 0;  // tokens are kept: the next turn recomputes them
  return true;
}

// Grows s's table to `tokens` tokens, evicting idle sessions and (if allowed) preempting running sequences
// admitted after running_[self_index].
bool Scheduler::grow(Sequence& s, int64_t tokens, size_t self_index, bool allow_preempt) {
  for (;;) {
    if (blocks_.grow(s.blocks, tokens)) return true;
    if (evict_idle_session()) continue;
    if (allow_preempt && running_.size() > self_index + 1) {
      preempt(running_.size() - 1);
      continue;
    }
    return false;
  }
}

std::vector<int32_t> Scheduler::propose_ngram(const std::vector<int32_t>& tokens, int64_t k, int64_t nmin, int64_t nmax) {
  const int64_t L = (int64_t)tokens.size();
  if (k <= 0 || nmin < 1 || nmax < nmin || L < nmin + 1) return {};
  // One backward pass over the earlier positions i that could end an occurrence of the suffix (tokens[i] == the last
  // token, i < L - 1): the match length m there (up to nmax), and the continuation tokens[i + 1 ..]. Best: the longest
  // match, then a full continuation of k tokens, then the latest; a full-length match with a full continuation stops it.
  const int32_t last = tokens[(size_t)(L - 1)];
  int64_t best_i = -1, best_m = 0, best_c = 0;
  for (int64_t i = L - 2; i >= nmin - 1; i--) {
    if (tokens[(size_t)i] != last) continue;
    int64_t m = 1;
    while (m < nmax && i - m >= 0 && tokens[(size_t)(i - m)] == tokens[(size_t)(L - 1 - m)]) m++;
    if (m < nmin) continue;
    const int64_t c = std::min(k, L - 1 - i);
    if (m > best_m || (m == best_m && c > best_c)) best_i = i, best_m = m, best_c = c;
    if (best_m == nmax && best_c == k) break;
  }
  if (best_i < 0) return {};
  return std::vector<int32_t>(tokens.begin() + best_i + 1, tokens.begin() + best_i + 1 + best_c);
}

void Scheduler::propose(Sequence& s, int64_t budget) {
  s.draft.clear();
  if (opts_.spec_draft_tokens <= 0 || s.req.guided || s.req.max_new_tokens <= 0 || s.generated < 1) return;
  const int64_t len = (int64_t)s.tokens.size();
  if (s.num_computed != len - 1) return;  // not a decode step (a prefill chunk, or a session's new input)
  // 1 + k tokens may come out of the step: no more than the request may still generate, the session holds, or the
  // step's token budget allows
  const int64_t k = std::min({opts_.spec_draft_tokens, s.req.max_new_tokens - s.generated - 1, opts_.session_len - len - 1, budget - 1});
  if (k <= 0) return;
  s.draft = propose_ngram(s.tokens, k, opts_.spec_ngram_min, opts_.spec_ngram_max);
  // LMFLEET_SPEC_FORCE=1 (benchmarks only): without a match, the last k tokens as the draft, so every step verifies k
  // drafts whatever the text (what a verification step costs when drafts fail; the tokens stay plain decoding's)
  static const bool force = env_switch("LMFLEET_SPEC_FORCE", false);
  if (s.draft.empty() && force && len >= k) s.draft.assign(s.tokens.end() - k, s.tokens.end());
  if (s.draft.empty()) return;
  // drafts never preempt or evict: they take free blocks, else what the table already holds
  if (!blocks_.grow(s.blocks, s.num_computed + 1 + (int64_t)s.draft.size())) {
    const int64_t room = (int64_t)s.blocks.size() * blocks_.block_size() - s.num_computed - 1;
    s.draft.resize((size_t)std::max<int64_t>(0, std::min<int64_t>(room, (int64_t)s.draft.size())));
  }
}

SchedulerOutput Scheduler::schedule(std::vector<Event>& events, Clock::time_point now) {
  SchedulerOutput out;
  int64_t budget = opts_.max_prefill_tokens;
  // 1. Running sequences, oldest first.
  for (size_t i = 0; i < running_.size() && budget > 0;) {
    Sequence& s = *running_[i];
    if (s.awaiting_mask) {  // guided: its next token's allowed set has not come yet
      i++;
      continue;
    }
    int64_t remaining = (int64_t)s.tokens.size() - s.num_computed;
    int64_t n = chunk_cap(s, std::min(remaining, budget));
    if (!grow(s, s.num_computed + n, i, true)) {
      // Nothing left to preempt after it: preempt this one (it resumes when blocks free up).
      preempt(i);
      continue;
    }
    propose(s, budget);
    n += (int64_t)s.draft.size();
    out.seqs.push_back({&s, s.num_computed, n, s.num_computed + n - (int64_t)s.draft.size() == (int64_t)s.tokens.size() && s.req.max_new_tokens > 0});
    budget -= n;
    out.num_tokens += n;
    i++;
  }
  // 2. Waiting requests, in order, while there is room.
  for (auto it = waiting_.begin(); it != waiting_.end() && budget > 0 && (int64_t)running_.size() < opts_.max_batch_size;) {
    Sequence& s = **it;
    if (s.awaiting_mask) {  // preempted while it waited for its allowed set: resumes once that comes
      ++it;
      continue;
    }
    if (!attach_session(s)) {
      ++it;  // its session is busy with an earlier request
      continue;
    }
    const int64_t len = (int64_t)s.tokens.size();
    if (len > opts_.session_len || len == 0) {
      auto owned = std::move(*it);
      it = waiting_.erase(it);
      fail_request(std::move(owned), "E_INVALID_ARGUMENT",
                   len == 0 ? "request has no tokens"
                            : "sequence of " + std::to_string(len) + " tokens is longer than sessionLen " + std::to_string(opts_.session_len),
                   events);
      continue;
    }
    const int64_t need = std::min(len + s.req.max_new_tokens, opts_.session_len);
    if (blocks_.blocks_for(need) > blocks_.total()) {
      auto owned = std::move(*it);
      it = waiting_.erase(it);
      fail_request(std::move(owned), "E_OUT_OF_KV_CACHE",
                   "request needs " + std::to_string(blocks_.blocks_for(need)) + " KV blocks (" + std::to_string(need) +
                       " tokens) but the cache has " + std::to_string(blocks_.total()),
                   events);
      continue;
    }
    int64_t matched = 0;
    if (caches_prefix(s) && s.blocks.empty()) {
      // Full blocks only, and never the last prompt token: its logits are needed, and the block it lands in is written.
      matched = blocks_.match(s.tokens.data(), (len - 1) / blocks_.block_size(), s.blocks, s.chain) * blocks_.block_size();
      s.num_computed = matched;
    }
    int64_t n = chunk_cap(s, std::min(len - s.num_computed, budget));
    if (n <= 0 && len > 0) {
      // Everything already cached (session turn with no new input): recompute the last token for its logits.
      s.num_computed = len - 1;
      n = 1;
    }
    if (!grow(s, s.num_computed + n, running_.size(), false)) {
      if (matched) {  // hand the matched blocks back while it waits (they stay cached)
        blocks_.release(s.blocks);
        s.num_computed = 0;
        s.chain = PrefixChain{};
      }
      break;  // wait for blocks (FCFS)
    }
    auto owned = std::move(*it);
    it = waiting_.erase(it);
    if (!owned->admitted_once) {
      owned->admitted_once = true;
      owned->admitted = now;
      owned->cached_tokens = matched;
    }
    out.seqs.push_back({owned.get(), owned->num_computed, n, owned->num_computed + n == len && owned->req.max_new_tokens > 0});
    budget -= n;
    out.num_tokens += n;
    running_.push_back(std::move(owned));
  }
  return out;
}

void Scheduler::update(const SchedulerOutput& out, const std::vector<int32_t>& sampled, const std::vector<LogprobInfo>* logprobs,
                       std::vector<Event>& events, Clock::time_point now) {
  size_t si = 0;
  std::vector<std::pair<Sequence*, std::string>> done;
  for (const auto& sc : out.seqs) {
    Sequence& s = *sc.seq;
    const int64_t rows = sc.rows(), drafts = (int64_t)s.draft.size();
    // Each row's token in order. A plain decode step has one row; a speculative one goes on while the token just
    // sampled equals the draft the next row was computed from (that row's input), so the tokens are plain decoding's.
    int64_t accepted = 0;
    const char* reason = nullptr;
    Event e;
    e.kind = Event::Tokens;
    e.id = s.req.id;
    for (int64_t j = 0; j < rows; j++) {
      const int32_t tok = sampled[si + (size_t)j];
      const LogprobInfo* lp = logprobs && si + (size_t)j < logprobs->size() ? &(*logprobs)[si + (size_t)j] : nullptr;
      s.tokens.push_back(tok);
      s.generated++;
      if (s.generated == 1) s.first_token = now;
      if (std::find(s.req.stop_ids.begin(), s.req.stop_ids.end(), tok) != s.req.stop_ids.end()) {
        reason = "stop";
        break;
      }
      e.tokens.push_back(tok);
      if (lp && s.req.logprobs >= 0) {
        e.has_logprobs = true;
        e.logprobs.push_back(*lp);
      }
      if (s.generated >= s.req.max_new_tokens || (int64_t)s.tokens.size() >= opts_.session_len) {
        reason = "length";
        break;
      }
      if (j == drafts || tok != s.draft[(size_t)j]) break;
      accepted++;
    }
    si += (size_t)rows;
    // K/V are valid through the last row whose input was accepted; a rejected draft's rows are recomputed later
    s.num_computed = sc.start + sc.count - (drafts - accepted);
    if (drafts) {
      s.draft_total += drafts;
      s.accepted_total += accepted;
      spec_drafted_ += drafts;
      spec_accepted_ += accepted;
      s.draft.clear();
      // the executor drew this step's uniforms from a copy of the RNG: advance it by the tokens taken, as plain decoding
      for (int64_t j = 0; j <= accepted; j++) s.rng.uniform();
    }
    if (caches_prefix(s)) blocks_.commit(s.blocks, s.tokens.data(), s.num_computed / blocks_.block_size(), s.chain);
    if (!sc.sample) {
      if (s.req.max_new_tokens == 0 && s.num_computed == (int64_t)s.tokens.size()) done.push_back({&s, "length"});
      continue;
    }
    s.awaiting_mask = s.req.guided;
    if (!e.tokens.empty() || !reason) {
      attach_prompt_logprobs(s, e);
      events.push_back(std::move(e));
    }
    if (reason) done.push_back({&s, reason});
  }
  for (auto& [ptr, reason] : done) {
    auto it = std::find_if(running_.begin(), running_.end(), [&](const auto& p) { return p.get() == ptr; });
    if (it == running_.end()) continue;
    auto owned = std::move(*it);
    running_.erase(it);
    finish(std::move(owned), reason, events, now);
  }
}

}  // namespace lmfleet
