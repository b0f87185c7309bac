#include "ops/sample.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "core/backend_cpu.h"
#include "core/op_call.h"
#include "ops/argmax.h"

namespace lmfleet {

int32_t sample_row(const float* logits, int64_t vocab, const SamplingRow& p) {
  std::vector<float> l(logits, logits + vocab);
  if (p.allowed)
    for (int64_t t = 0; t < vocab; t++)
      if (!((p.allowed[t >> 5] >> (t & 31)) & 1u)) l[(size_t)t] = -INFINITY;
  for (int32_t i = 0; i < p.n_bias; i++) {
    const int32_t t = p.bias_ids[i];
    if (t >= 0 && t < vocab) l[(size_t)t] += p.bias_vals[i];
  }
  if (p.repetition_penalty != 1.f && p.repetition_penalty > 0.f) {
    std::vector<uint8_t> seen((size_t)vocab, 0);
    for (int64_t i = 0; i < p.history_len; i++) {
      int32_t t = p.history[i];
      if (t < 0 || t >= vocab || seen[t]) continue;
      seen[t] = 1;
      l[t] = l[t] > 0 ? l[t] / p.repetition_penalty : l[t] * p.repetition_penalty;
    }
  }
  if ((p.presence_penalty != 0.f || p.frequency_penalty != 0.f) && p.history_len > p.penalty_from) {
    std::vector<int32_t> count((size_t)vocab, 0);
    const int64_t from = std::max<int64_t>(0, p.penalty_from);
    for (int64_t i = from; i < p.history_len; i++) {
      int32_t t = p.history[i];
      if (t >= 0 && t < vocab) count[t]++;
    }
    for (int64_t i = from; i < p.history_len; i++) {
      int32_t t = p.history[i];
      if (t < 0 || t >= vocab || count[t] == 0) continue;
      l[t] = (float)((double)l[t] - ((double)p.frequency_penalty * count[t] + (double)p.presence_penalty));
      count[t] = 0;
    }
  }
  if (!(p.temperature > 0.f)) return argmax_row(l.data(), vocab);
  for (auto& x : l) x = x / p.temperature;
  std::vector<int32_t> idx((size_t)vocab);
  std::iota(idx.begin(), idx.end(), 0);
  auto cmp = [&](int32_t a, int32_t b) { return l[a] > l[b] || (l[a] == l[b] && a < b); };
  int64_t n = vocab;
  if (p.top_k > 0 && p.top_k < vocab) {
    n = p.top_k;
    std::partial_sort(idx.begin(), idx.begin() + n, idx.end(), cmp);
  } else {
    std::sort(idx.begin(), idx.end(), cmp);
  }
  std::vector<double> prob((size_t)n);
  double mx = l[idx[0]], sum = 0;
  for (int64_t i = 0; i < n; i++) sum += (prob[i] = std::exp((double)l[idx[i]] - mx));
  for (auto& x : prob) x /= sum;
  int64_t keep = n;
  if (p.top_p > 0.f && p.top_p < 1.f) {
    double cum = 0;
    for (int64_t i = 0; i < n; i++) {
      cum += prob[i];
      if (cum >= (double)p.top_p) { keep = i + 1; break; }
    }
  }
  if (p.min_p > 0.f) {
    // probabilities relative to the largest: prob[i] / prob[0] = exp(l[i] - mx), the same test as the GPU's
    int64_t k = 1;
    while (k < keep && std::exp((double)l[idx[k]] - mx) >= (double)p.min_p) k++;
    keep = k;
  }
  double total = 0;
  for (int64_t i = 0; i < keep; i++) total += prob[i];
  double r = p.u * total, cum = 0;
  for (int64_t i = 0; i < keep; i++) {
    cum += prob[i];
    if (r < cum) return idx[i];
  }
  return idx[keep - 1];
}

void sample_cpu(const sample_args& a, ThreadPool& pool) {
  pool.run(a.rows, [&](int64_t r) { a.out[r] = sample_row(a.logits + r * a.vocab, a.vocab, a.params[r]); });
}

// inputs: logits [rows, vocab], optional history i32 [rows, n] (-1 = padding; [rows, 0] for none), optional allowed
// i32 [rows, (vocab + 31) / 32] (SamplingRow::allowed's bits; a row of all ones for an unguided row), optional bias f32
// [rows, vocab] (its nonzero entries become SamplingRow's logit bias list)
// params: temperature, topK, topP, minP, repetitionPenalty, presencePenalty, frequencyPenalty, penaltyFrom (history
// columns before it are the prompt), seed (one Rng(seed); row r uses its r-th draw)
void sample_run(Backend& be, OpCall& call) {
  call.expect_inputs(1, 4);
  auto x = call.in_f32(0, 2, "logits");
  int64_t rows = call.inputs[0].shape[0], vocab = call.inputs[0].shape[1];
  std::vector<int32_t> hist, allowed;
  int64_t hlen = 0, words = (vocab + 31) / 32;
  if (call.inputs.size() >= 2) {
    hist = call.in_i32(1, 2, "history");
    if (call.inputs[1].shape[0] != rows) call.bad("history must have one row per logits row");
    hlen = call.inputs[1].shape[1];
  }
  std::vector<float> bias;
  std::vector<int32_t> bias_ids;
  std::vector<float> bias_vals;
  std::vector<int64_t> bias_at((size_t)rows + 1, 0);
  if (call.inputs.size() == 4) {
    bias = call.in_f32(3, 2, "bias");
    if (call.inputs[3].shape[0] != rows || call.inputs[3].shape[1] != vocab) call.bad("bias must be [rows, vocab] like the logits");
    for (int64_t r = 0; r < rows; r++) {
      for (int64_t t = 0; t < vocab; t++)
        if (bias[(size_t)(r * vocab + t)] != 0.f) bias_ids.push_back((int32_t)t), bias_vals.push_back(bias[(size_t)(r * vocab + t)]);
      bias_at[(size_t)r + 1] = (int64_t)bias_ids.size();
    }
  }
  if (call.inputs.size() >= 3 && call.inputs[2].shape[1] > 0) {
    allowed = call.in_i32(2, 2, "allowed");
    if (call.inputs[2].shape[0] != rows || call.inputs[2].shape[1] != words)
      call.bad("allowed must be [rows, " + std::to_string(words) + "] (one bit per token)");
    for (int64_t r = 0; r < rows; r++) {
      bool any = false;
      for (int64_t t = 0; t < vocab && !any; t++) any = (allowed[(size_t)(r * words + (t >> 5))] >> (t & 31)) & 1;
      if (!any) call.bad("allowed row " + std::to_string(r) + " allows no token");
    }
  }
  Rng rng((uint64_t)call.num("seed", 0));
  std::vector<SamplingRow> ps((size_t)rows);
  for (int64_t r = 0; r < rows; r++) {
    ps[r].temperature = (float)call.num("temperature", 1.0);
    ps[r].top_k = (int32_t)call.num("topK", 0);
    ps[r].top_p = (float)call.num("topP", 1.0);
    ps[r].min_p = (float)call.num("minP", 0.0);
    ps[r].repetition_penalty = (float)call.num("repetitionPenalty", 1.0);
    ps[r].presence_penalty = (float)call.num("presencePenalty", 0.0);
    ps[r].frequency_penalty = (float)call.num("frequencyPenalty", 0.0);
    ps[r].penalty_from = (int64_t)call.num("penaltyFrom", 0.0);
    ps[r].u = rng.uniform();
    ps[r].history = hlen ? hist.data() + r * hlen : nullptr;
    ps[r].history_len = hlen;
    if (!allowed.empty()) ps[r].allowed = reinterpret_cast<const uint32_t*>(allowed.data() + r * words);
    ps[r].n_bias = (int32_t)(bias_at[(size_t)r + 1] - bias_at[(size_t)r]);
    if (ps[r].n_bias) ps[r].bias_ids = bias_ids.data() + bias_at[(size_t)r], ps[r].bias_vals = bias_vals.data() + bias_at[(size_t)r];
  }
  auto& out = call.add_output(DType::I32, {rows});
  Buffer bx = stage(be, x);
  be.sample({bx.as<float>(), rows, vocab, ps.data(), reinterpret_cast<int32_t*>(out.bytes.data())});
}

}  // namespace lmfleet
