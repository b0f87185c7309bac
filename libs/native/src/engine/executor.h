// Runs one scheduled step on the model's backend: builds the step batch (tokens, positions, cache slots,
// block tables), runs the decoder, and samples one token for every sequence that asked for one on the
// backend (Backend::sample; only token ids come back, logits only for logprobs requests), each
// with its own RNG (so a request's tokens don't depend on what else is in the batch). Guided rows (a request's
// allowed-token mask) and logit biases are applied by the backend's sampler. Requests that want prompt log-probs add
// their prompt positions' rows after the sampled ones; those rows come to the host and are scored there.
#pragma once
#include <functional>
#include <memory>
#include <vector>

#include "core/thread_pool.h"

#include "engine/decoder.h"
#include "engine/kv_cache.h"
#include "engine/model.h"
#include "engine/scheduler.h"
#include "ops/sample.h"

namespace lmfleet {

class Executor {
 public:
  Executor(Model& model, KvCache& cache) : model_(model), cache_(cache) {}
  // launched (optional) runs once the decoder has been called and before sampling waits for its logits: on cuda the
  // step is then queued on the GPU, so host work done there (the engine emits the previous step's events) overlaps it.
  void run(const SchedulerOutput& out, std::vector<int32_t>& sampled, std::vector<LogprobInfo>& logprobs,
           const std::function<void()>& launched = {});

 private:
  Model& model_;
  KvCache& cache_;
  StepBatch batch_;
  static LogprobInfo logprob_info(const float* row, int64_t V, int32_t token, int32_t top, std::vector<int32_t>& scratch, bool rank = false);
  std::vector<float> logits_;      // host copies of the rows whose request wants logprobs
  std::vector<float> prompt_logits_;  // host copies of the prompt positions' rows (prompt_logprobs requests)
  std::vector<std::pair<Sequence*, int64_t>> prompt_rows_;  // their (sequence, prompt position whose token they score)
  std::vector<int32_t> idx_;                               // logprob_info's scratch (the batch thread's)
  std::unique_ptr<ThreadPool> lp_pool_;                    // prompt log-probs of many rows (made on first use)
  std::vector<SamplingRow> rows_;  // per sampled row: params + the request's uniform
  std::vector<std::vector<int32_t>> spec_hist_;  // speculative sequences with penalties: tokens + drafts (their history)
  std::vector<int32_t> bias_ids_;  // the rows' logit bias entries back to back (bias_at_[r] .. bias_at_[r + 1])
  std::vector<float> bias_vals_;
  std::vector<size_t> bias_at_;
};

}  // namespace lmfleet
