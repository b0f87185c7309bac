#pragma once
// LMFLEET_STEP_STAMPS=1: where the engine thread's time goes between two steps, by phase of EngineCore::loop and
// Executor::run (host clock); medians per phase to stderr at exit. A diagnostic for the host gap between decode steps
// (the cuda decoder prints the GPU side under the same variable). One engine loop at a time is assumed.
#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdio>
#include <vector>

#include "core/env.h"

namespace lmfleet {

// The p-th percentile (v[size * p / 100] in sorted order; 0 when empty) of the stamps' samples: the medians and p90s
// the diagnostics print (HostStamps, the tp stamps of engine/decoder.cc, CudaDecoder's step stamps).
template <typename T>
T stamp_percentile(std::vector<T> v, int p) {
  if (v.empty()) return T(0);
  const size_t i = std::min(v.size() - 1, v.size() * (size_t)p / 100);
  std::nth_element(v.begin(), v.begin() + (std::ptrdiff_t)i, v.end());
  return v[i];
}

struct HostStamps {
  // each phase ends at its mark; kLoopTop starts the step
  enum Phase { kLoopTop, kInbox, kScheduled, kBuilt, kForwarded, kSampled, kRan, kUpdated, kSnapshot, kEmitted, kPhases };
  bool on = env_switch("LMFLEET_STEP_STAMPS", false);
  std::chrono::steady_clock::time_point t[kPhases];
  bool marked[kPhases] = {};
  std::vector<float> us[kPhases];

  void mark(Phase p) {
    if (!on) return;
    t[p] = std::chrono::steady_clock::now();
    marked[p] = true;
  }
  // a step that ran the model: every phase marked
  void end_step() {
    if (!on) return;
    bool all = true;
    for (int p = 0; p < kPhases; p++) all = all && marked[p];
    if (all)
      for (int p = 1; p < kPhases; p++) us[p].push_back(std::chrono::duration<float, std::micro>(t[p] - t[p - 1]).count());
    std::fill(std::begin(marked), std::end(marked), false);
  }
  ~HostStamps() {
    if (!on || us[1].empty()) return;
    static const char* names[kPhases] = {"", "inbox", "schedule", "build batch", "forward", "sample", "logprobs",
                                         "update", "snapshot", "emit"};
    std::fprintf(stderr, "[lmfleet host stamps] medians over %zu steps:", us[1].size());
    for (int p = 1; p < kPhases; p++)
      std::fprintf(stderr, " %s %.1f us%s", names[p], stamp_percentile(us[p], 50), p + 1 < kPhases ? "," : "\n");
  }
  static HostStamps& get() {
    static HostStamps s;
    return s;
  }
};

}  // namespace lmfleet
