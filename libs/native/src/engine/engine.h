// The engine: a scheduler + KV cache + executor driven by its own native batch thread. JS-side calls
// (submit/cancel/endSession) post commands to an inbox; each step the thread drains the inbox, schedules,
// executes and hands that step's events to `emit` in one batch (the binding forwards them through a
// ThreadSafeFunction).
#pragma once
#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <thread>

#include "engine/executor.h"
#include "engine/kv_cache.h"
#include "engine/model.h"
#include "engine/scheduler.h"

namespace lmfleet {

struct EngineOptions {
  int64_t max_batch_size = 8;
  int64_t block_size = 64;
  int64_t num_blocks = 0;
  double cache_max_entry_count = 0;
  int64_t session_len = 2048;
  int64_t max_prefill_tokens = 0;  // 0: max(sessionLen, 2048)
  bool enable_prefix_caching = false;  // SchedulerOptions::enable_prefix_caching
  int64_t spec_draft_tokens = 0;       // SchedulerOptions::spec_* (speculative decoding, n-gram drafts)
  int64_t spec_ngram_max = 4, spec_ngram_min = 1;
  // a step's events held until the next step is queued: -1 the default (cuda on, cpu off; LMFLEET_HOLD_EVENTS=0/1
  // overrides it), 0 off, 1 on (EngineCore::loop)
  int hold_events = -1;
};

struct EngineStatsSnapshot {
  int64_t running = 0, waiting = 0, blocks_total = 0, blocks_free = 0, block_size = 0, sessions = 0, steps = 0;
  int64_t blocks_cached = 0;  // prefix caching: blocks registered under their content (held or evictable)
  int64_t spec_draft_tokens = 0, spec_accepted_tokens = 0;  // speculative decoding: drafts verified / accepted so far
};

class EngineCore {
 public:
  using Emit = std::function<void(std::vector<Event>&&)>;
  EngineCore(std::shared_ptr<Model> model, const EngineOptions& opts);
  ~EngineCore();
  void start(Emit emit);
  void submit(RequestSpec req);  // validates (E_INVALID_ARGUMENT) on the caller's thread
  // Several requests into the inbox at once (the batch thread takes them in the same step, so the first step's batch
  // does not depend on how fast the caller submits); all are validated first: one bad request queues none.
  void submit_many(std::vector<RequestSpec> reqs);
  void cancel(int64_t id);
  void end_session(int64_t session_id);
  // Guided requests: the allowed tokens for request `id`'s next token (E_INVALID_ARGUMENT for a wrong size or an
  // empty set; ignored once the request has ended).
  void set_allowed(int64_t id, std::vector<uint32_t> mask);
  EngineStatsSnapshot stats();
  void stop();  // cancels everything, joins the thread; idempotent
  bool stopped() const { return stopped_; }

 private:
  void validate(const RequestSpec& req) const;  // E_INVALID_ARGUMENT for a request no step could run
  void validate_mask(int64_t id, const std::vector<uint32_t>& mask) const;
  struct Command {
    enum Kind { Submit, Cancel, EndSession, SetAllowed } kind;
    RequestSpec req;
    std::vector<uint32_t> mask;
    int64_t id = 0;
    Clock::time_point at;
  };
  void loop();
  void snapshot();

  std::shared_ptr<Model> model_;
  EngineOptions opts_;
  KvCache cache_;
  Scheduler sched_;
  Executor exec_;
  Emit emit_;
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Command> inbox_;
  std::set<int64_t> active_ids_;
  EngineStatsSnapshot stats_;
  bool stopping_ = false;
  std::atomic<bool> stopped_{false};
  bool started_ = false;
};

}  // namespace lmfleet
