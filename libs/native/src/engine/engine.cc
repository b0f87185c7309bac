#include "engine/engine.h"

#include <algorithm>
#include <cmath>
#include <unordered_set>

#include "core/env.h"
#include "core/error.h"
#include "engine/host_stamps.h"

namespace lmfleet {

namespace {
KvCacheOptions cache_options(const ModelConfig& c, const EngineOptions& o) {
  if (o.block_size <= 0) fail(ErrorCode::InvalidArgument, "blockSize must be > 0");
  if (o.session_len <= 0) fail(ErrorCode::InvalidArgument, "sessionLen must be > 0");
  if (o.max_batch_size <= 0) fail(ErrorCode::InvalidArgument, "maxBatchSize must be > 0");
  KvCacheOptions k;
  k.block_size = o.block_size;
  k.num_blocks = o.num_blocks;
  k.cache_max_entry_count = o.cache_max_entry_count;
  // cpu: memory is shared with everything else, so the fraction rule is capped at what a full batch of
  // full-length sequences (plus as many kept sessions) can use.
  k.max_useful_blocks = 2 * o.max_batch_size * ((o.session_len + o.block_size - 1) / o.block_size);
  k.quant_policy = c.kv_quant_policy;
  k.head_dim = c.head_dim;
  // tp ranks whose caches come out of one memory: cpu (host memory), or cuda ranks all on one GPU
  bool one_gpu = c.backend == "cuda" && !c.devices.empty();
  for (int d : c.devices) one_gpu = one_gpu && d == c.devices[0];
  if (c.tp > 1 && (c.backend == "cpu" || one_gpu)) k.memory_shared_by = c.tp;
  return k;
}
SchedulerOptions sched_options(const EngineOptions& o) {
  SchedulerOptions s;
  s.max_batch_size = o.max_batch_size;
  s.session_len = o.session_len;
  s.max_prefill_tokens = o.max_prefill_tokens > 0 ? o.max_prefill_tokens : std::max<int64_t>(o.session_len, 2048);
  s.enable_prefix_caching = o.enable_prefix_caching;
  s.spec_draft_tokens = o.spec_draft_tokens;
  s.spec_ngram_max = o.spec_ngram_max;
  s.spec_ngram_min = o.spec_ngram_min;
  return s;
}
}  // namespace

EngineCore::EngineCore(std::shared_ptr<Model> model, const EngineOptions& opts)
    : model_((model->ensure_loaded(), model)),
      opts_(opts),
      cache_(model_->backend(), model_->cfg().layers, model_->shard().kv_heads * model_->cfg().head_dim,
             cache_options(model_->cfg(), opts)),
      sched_(cache_.blocks(), sched_options(opts)),
      exec_(*model_, cache_) {
  if (model_->tp() > 1) cache_.add_rank_pools(*model_, model_->cfg().head_dim, model_->cfg().kv_quant_policy);
  snapshot();
}

EngineCore::~EngineCore() { stop(); }

void EngineCore::snapshot() {
  stats_.running = sched_.running();
  stats_.waiting = sched_.waiting();
  stats_.blocks_total = sched_.blocks().total();
  stats_.blocks_free = sched_.blocks().free_count();
  stats_.blocks_cached = sched_.blocks().cached_blocks();
  stats_.spec_draft_tokens = sched_.spec_draft_tokens();
  stats_.spec_accepted_tokens = sched_.spec_accepted_tokens();
  stats_.block_size = sched_.blocks().block_size();
  stats_.sessions = sched_.sessions();
}

void EngineCore::start(Emit emit) {
  std::lock_guard<std::mutex> lock(mu_);
  if (stopping_) fail(ErrorCode::Disposed, "engine was disposed");
  if (started_) fail(ErrorCode::InvalidArgument, "engine already started");
  emit_ = std::move(emit);
  started_ = true;
  thread_ = std::thread([this] { loop(); });
}

void EngineCore::submit(RequestSpec req) {
  std::vector<RequestSpec> one;
  one.push_back(std::move(req));
  submit_many(std::move(one));
}

void EngineCore::validate(const RequestSpec& req) const {
  const ModelConfig& c = model_->cfg();
  if (req.id < 0) fail(ErrorCode::InvalidArgument, "request id must be >= 0");
  if (req.input_ids.empty() && req.session_id <= 0) fail(ErrorCode::InvalidArgument, "request " + std::to_string(req.id) + ": inputIds is empty");
  if (req.max_new_tokens < 0) fail(ErrorCode::InvalidArgument, "maxNewTokens must be >= 0");
  for (size_t i = 0; i < req.input_ids.size(); i++)
    if (req.input_ids[i] < 0 || req.input_ids[i] >= c.vocab)
      fail(ErrorCode::InvalidArgument, "request " + std::to_string(req.id) + ": token id " + std::to_string(req.input_ids[i]) +
                                           " at " + std::to_string(i) + " is outside [0, " + std::to_string(c.vocab) + ")");
  const auto& sp = req.sampling;
  if (sp.temperature < 0 || !(sp.top_p > 0 && sp.top_p <= 1) || !(sp.min_p >= 0 && sp.min_p <= 1) || sp.top_k < 0 || !(sp.repetition_penalty > 0) ||
      !(sp.presence_penalty >= -2 && sp.presence_penalty <= 2) || !(sp.frequency_penalty >= -2 && sp.frequency_penalty <= 2))
    fail(ErrorCode::InvalidArgument, "request " + std::to_string(req.id) + ": bad sampling params");
  if (req.guided) validate_mask(req.id, req.allowed_tokens);
  if (req.prompt_logprobs >= 0 && req.session_id > 0)
    fail(ErrorCode::InvalidArgument, "request " + std::to_string(req.id) + ": promptLogprobs cannot be combined with a session (its history is cached)");
  std::vector<int32_t> seen;
  for (const auto& [t, v] : req.logit_bias) {
    if (t < 0 || t >= c.vocab)
      fail(ErrorCode::InvalidArgument, "request " + std::to_string(req.id) + ": logit bias token id " + std::to_string(t) + " is outside [0, " +
                                           std::to_string(c.vocab) + ")");
    if (!std::isfinite(v)) fail(ErrorCode::InvalidArgument, "request " + std::to_string(req.id) + ": logit bias values must be finite");
    seen.push_back(t);
  }
  std::sort(seen.begin(), seen.end());
  if (std::adjacent_find(seen.begin(), seen.end()) != seen.end())
    fail(ErrorCode::InvalidArgument, "request " + std::to_string(req.id) + ": a token id appears twice in the logit bias");
  if (req.min_new_tokens < 0) fail(ErrorCode::InvalidArgument, "request " + std::to_string(req.id) + ": minNewTokens must be >= 0");
  if (req.min_new_tokens > 0 && req.guided)
    fail(ErrorCode::InvalidArgument, "request " + std::to_string(req.id) + ": minNewTokens cannot be combined with guided decoding (the grammar decides where the output ends)");
}

void EngineCore::validate_mask(int64_t id, const std::vector<uint32_t>& mask) const {
  const int64_t V = model_->cfg().vocab, words = (V + 31) / 32;
  if ((int64_t)mask.size() != words)
    fail(ErrorCode::InvalidArgument, "request " + std::to_string(id) + ": the allowed-token mask has " + std::to_string(mask.size()) +
                                         " words, the vocabulary of " + std::to_string(V) + " needs " + std::to_string(words));
  for (int64_t w = 0; w < words; w++) {
    const uint32_t in_vocab = w + 1 < words || V % 32 == 0 ? ~0u : (1u << (V % 32)) - 1;
    if (mask[(size_t)w] & in_vocab) return;
  }
  fail(ErrorCode::InvalidArgument, "request " + std::to_string(id) + ": the allowed-token mask allows no token");
}

void EngineCore::submit_many(std::vector<RequestSpec> reqs) {
  for (const RequestSpec& r : reqs) validate(r);
  std::lock_guard<std::mutex> lock(mu_);
  if (stopping_) fail(ErrorCode::Disposed, "engine was disposed");
  if (!started_) fail(ErrorCode::InvalidArgument, "engine not started (call start(onEvent) first)");
  std::unordered_set<int64_t> ids;
  for (const RequestSpec& r : reqs)
    if (active_ids_.count(r.id) || !ids.insert(r.id).second)
      fail(ErrorCode::InvalidArgument, "request id " + std::to_string(r.id) + " is already active");
  const auto now = Clock::now();
  for (RequestSpec& r : reqs) {
    active_ids_.insert(r.id);
    inbox_.push_back(Command{Command::Submit, std::move(r), {}, 0, now});
  }
  if (!reqs.empty()) cv_.notify_one();
}

void EngineCore::cancel(int64_t id) {
  std::lock_guard<std::mutex> lock(mu_);
  if (stopping_) fail(ErrorCode::Disposed, "engine was disposed");
  inbox_.push_back({Command::Cancel, {}, {}, id, Clock::now()});
  cv_.notify_one();
}

void EngineCore::end_session(int64_t sid) {
  std::lock_guard<std::mutex> lock(mu_);
  if (stopping_) fail(ErrorCode::Disposed, "engine was disposed");
  inbox_.push_back({Command::EndSession, {}, {}, sid, Clock::now()});
  cv_.notify_one();
}

void EngineCore::set_allowed(int64_t id, std::vector<uint32_t> mask) {
  validate_mask(id, mask);
  std::lock_guard<std::mutex> lock(mu_);
  if (stopping_) fail(ErrorCode::Disposed, "engine was disposed");
  Command c{Command::SetAllowed, {}, {}, id, Clock::now()};
  c.mask = std::move(mask);
  inbox_.push_back(std::move(c));
  cv_.notify_one();
}

EngineStatsSnapshot EngineCore::stats() {
  std::lock_guard<std::mutex> lock(mu_);
  if (stopping_) fail(ErrorCode::Disposed, "engine was disposed");
  return stats_;
}

void EngineCore::loop() {
  std::vector<int32_t> sampled;
  std::vector<LogprobInfo> logprobs;
  HostStamps& hs = HostStamps::get();
  // cuda: a step's events are held back while another step follows, and emitted once that step is queued on the GPU
  // (Executor::run's launched hook): handing them to JavaScript costs the engine thread ~10 us, which then overlaps
  // the GPU's work instead of sitting between two steps. Order is kept: held events go out before any newer ones. Not
  // on cpu, where the decoder returns only when the step is done (the events would wait a whole step).
  // EngineOptions::hold_events sets it; by default LMFLEET_HOLD_EVENTS=0 / 1, else on for cuda only.
  std::vector<Event> held;
  const bool hold = opts_.hold_events >= 0 ? opts_.hold_events == 1 : env_switch("LMFLEET_HOLD_EVENTS", model_->cfg().backend == "cuda");
  const auto flush = [&] {
    if (!held.empty() && emit_) emit_(std::move(held));
    held.clear();
  };
  // stalled: the last schedule ran nothing while guided requests waited for their next allowed-token sets; only the
  // inbox (a set, a submit, a cancel) can change that, so the thread sleeps until it has something.
  bool stalled = false;
  // Guided requests' next sets come back from JavaScript (the grammar) a fraction of a millisecond after their token
  // events go out. A step started without them leaves those requests out until the step after, so guided requests
  // in a busy batch would run every other step: the thread waits up to this long for the missing sets first
  // (LMFLEET_GUIDED_WAIT_US, default 5 ms; 0: never).
  const auto guided_wait = std::chrono::microseconds(std::max(0, env_int("LMFLEET_GUIDED_WAIT_US", 5000)));
  for (;;) {
    std::vector<Event> events;
    bool stop = false;
    hs.mark(HostStamps::kLoopTop);
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || !inbox_.empty() || (!sched_.idle() && !stalled); });
      stop = stopping_;
      auto now = Clock::now();
      const auto drain = [&] {
        while (!inbox_.empty()) {
          Command cmd = std::move(inbox_.front());
          inbox_.pop_front();
          if (cmd.kind == Command::Submit) sched_.add(std::move(cmd.req), cmd.at);
          else if (cmd.kind == Command::Cancel) sched_.cancel(cmd.id, events, now);
          else if (cmd.kind == Command::SetAllowed) sched_.set_allowed(cmd.id, std::move(cmd.mask));
          else sched_.end_session(cmd.id);
        }
      };
      drain();
      if (!stop && sched_.awaiting_masks() > 0) {
        const auto until = Clock::now() + guided_wait;
        while (!stopping_ && sched_.awaiting_masks() > 0 && cv_.wait_until(lock, until, [&] { return stopping_ || !inbox_.empty(); })) {
          now = Clock::now();
          drain();
        }
        stop = stopping_;
      }
      if (stop) sched_.cancel_all(events, now);
    }
    hs.mark(HostStamps::kInbox);
    if (!stop) {
      SchedulerOutput out = sched_.schedule(events, Clock::now());
      stalled = out.empty() && sched_.awaiting_masks() > 0;
      hs.mark(HostStamps::kScheduled);
      if (!out.empty()) {
        std::string code, message;
        try {
          exec_.run(out, sampled, logprobs, flush);
          sched_.update(out, sampled, &logprobs, events, Clock::now());
          hs.mark(HostStamps::kUpdated);
        } catch (const Error& e) {
          code = error_code_name(e.code);
          message = e.message;
        } catch (const std::exception& e) {  // e.g. bad_alloc: never let it terminate the process
          code = "E_INTERNAL";
          message = e.what();
        }
        if (!code.empty()) {
          // A failed step fails the requests in it (the engine keeps running).
          std::vector<int64_t> ids;
          for (const auto& sc : out.seqs) ids.push_back(sc.seq->req.id);
          for (int64_t id : ids) {
            Event ev;
            ev.kind = Event::Error;
            ev.id = id;
            ev.code = code;
            ev.message = message;
            events.push_back(ev);
            sched_.cancel(id, events, Clock::now());
            events.pop_back();  // the 'cancelled' done event: the error event ends it
          }
        }
      }
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (const auto& e : events)
        if (e.kind != Event::Tokens) active_ids_.erase(e.id);
      if (!stop) stats_.steps++;
      snapshot();
    }
    hs.mark(HostStamps::kSnapshot);
    flush();  // no step was queued this time (none scheduled, or it failed first)
    // Held only while another step can follow at once: a guided request's next step waits for JavaScript to see
    // this step's token, so its events must go out now.
    if (hold && !stop && !sched_.idle() && sched_.awaiting_masks() == 0) held = std::move(events);
    else if (!events.empty() && emit_) emit_(std::move(events));
    hs.mark(HostStamps::kEmitted);
    hs.end_step();
    if (stop) return;
  }
}

void EngineCore::stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) {
      if (!thread_.joinable()) return;
    }
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  stopped_ = true;
}

}  // namespace lmfleet
