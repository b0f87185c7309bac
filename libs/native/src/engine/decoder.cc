#include "engine/decoder.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <numeric>
#include <string>
#include <vector>
#include <cstring>

#include "core/env.h"
#include "core/error.h"
#include "core/collective.h"
#include "engine/host_stamps.h"
#include "ops/add.h"
#include "ops/attention.h"
#include "ops/embedding.h"
#include "ops/kv_store.h"
#include "ops/linear.h"
#include "ops/nll.h"
#include "ops/rms_norm.h"
#include "ops/rope.h"
#include "ops/silu_mul.h"

#ifdef LMFLEET_WITH_CUDA
#include "cuda/cuda_decoder.h"
#endif

namespace lmfleet {

#ifndef LMFLEET_WITH_CUDA
class CudaDecoder {};
#endif

Decoder::Decoder(Model& model) : m_(model) {
#ifdef LMFLEET_WITH_CUDA
  if (std::string(model.backend().name()) == "cuda") cuda_ = make_cuda_decoder(model);  // every rank at tp > 1
#endif
}

Decoder::~Decoder() = default;

namespace {
// LMFLEET_PROFILE=1 prints per-op wall time totals to stderr at exit (cpu backend is synchronous).
struct OpProfile {
  bool on = std::getenv("LMFLEET_PROFILE") != nullptr;
  std::map<std::string, double> ms;
  std::mutex mu;
  ~OpProfile() {
    if (!on) return;
    for (auto& [k, v] : ms) std::fprintf(stderr, "[lmfleet profile] %-12s %10.1f ms\n", k.c_str(), v);
  }
};
OpProfile g_profile;

// LMFLEET_TP_STAMPS=1 (tp > 1): for every step, when each rank's thread starts its forward and when that returns (on
// cuda: once the step's graph is launched), in us after the step began on the calling thread; medians per rank to
// stderr at exit. The ranks' GPUs start their steps about as far apart as their launches return, and the first
// exchange of the step waits for the later one.
struct TpStamps {
  bool on = env_switch("LMFLEET_TP_STAMPS", false);
  std::mutex mu;
  std::map<int, std::vector<double>> start_us, done_us;
  std::vector<double> spread_us;  // per step: the last rank's launch minus the first's
  ~TpStamps() {
    if (!on) return;
    for (auto& [r, v] : start_us)
      std::fprintf(stderr, "[lmfleet tp stamps] rank %d: starts +%.1f us, launched +%.1f us (medians over %zu steps)\n", r,
                   stamp_percentile(v, 50), stamp_percentile(done_us[r], 50), v.size());
    if (!spread_us.empty())
      std::fprintf(stderr, "[lmfleet tp stamps] last launch minus first: median %.1f us, p90 %.1f us\n", stamp_percentile(spread_us, 50),
                   stamp_percentile(spread_us, 90));
  }
};
TpStamps g_tp_stamps;
}  // namespace

#define LMF_TIMED(name, call)                                                                          \
  do {                                                                                                 \
    if (!g_profile.on) {                                                                               \
      call;                                                                                            \
    } else {                                                                                           \
      auto t0_ = std::chrono::steady_clock::now();                                                     \
      call;                                                                                            \
      std::lock_guard<std::mutex> lmf_pl_(g_profile.mu); /* tp ranks time their ops from their threads */ \
      g_profile.ms[#name] += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0_).count(); \
    }                                                                                                  \
  } while (0)

namespace {
template <typename T>
void upload_vec(Backend& be, Buffer& buf, const std::vector<T>& v) {
  buf.ensure(&be, std::max<size_t>(v.size() * sizeof(T), 4));
  be.upload(buf.get(), v.data(), v.size() * sizeof(T));
}
}  // namespace

const Buffer& Decoder::forward(const StepBatch& b, const KvView& kv) {
  if (m_.tp() == 1) return forward_rank(b, kv);
  const ModelConfig& c = m_.cfg();
  const int tp = m_.tp();
  if (b.tokens.empty()) fail(ErrorCode::InvalidArgument, "decoder: empty batch");
  for (int32_t id : b.tokens)  // checked once here: a rank must not fail alone
    if (id < 0 || id >= c.vocab)
      fail(ErrorCode::InvalidArgument, "token id " + std::to_string(id) + " is outside [0, " + std::to_string(c.vocab) + ")");
  if ((int)kv.peers.size() != tp - 1) fail(ErrorCode::Internal, "decoder: the KV cache has no view for every tensor-parallel rank");
  // Every rank ends with the whole [R, vocab] logits (all-gathered); rank 0's buffer is the answer. On cuda that is
  // the rank's CudaDecoder buffer, not this decoder's logits_ (which only the cpu path writes).
  const Buffer* out = nullptr;
  using clock = std::chrono::steady_clock;
  const bool stamps = g_tp_stamps.on;
  const clock::time_point t0 = stamps ? clock::now() : clock::time_point{};
  std::vector<double> st(stamps ? tp : 0), dn(stamps ? tp : 0);
  const auto us_since = [&](clock::time_point t) { return std::chrono::duration<double, std::micro>(t - t0).count(); };
  m_.rank_threads().run(m_.collective(), [&](int r) {
    if (stamps) st[(size_t)r] = us_since(clock::now());
    Model& rm = m_.rank(r);
    const Buffer& l = model_decoder(rm).forward_rank(b, r == 0 ? kv : kv.peers[(size_t)r - 1]);
    if (stamps) dn[(size_t)r] = us_since(clock::now());
    if (r == 0) out = &l;
  });
  if (stamps) {
    std::lock_guard<std::mutex> l(g_tp_stamps.mu);
    for (int r = 0; r < tp; r++) {
      g_tp_stamps.start_us[r].push_back(st[(size_t)r]);
      g_tp_stamps.done_us[r].push_back(dn[(size_t)r]);
    }
    g_tp_stamps.spread_us.push_back(*std::max_element(dn.begin(), dn.end()) - *std::min_element(dn.begin(), dn.end()));
  }
  if (!out) fail(ErrorCode::Internal, "decoder: rank 0 returned no logits");
  return *out;
}

const Buffer& Decoder::forward_rank(const StepBatch& b, const KvView& kv) {
  const ModelConfig& c = m_.cfg();
  Backend& be = m_.backend();
  const int64_t T = (int64_t)b.tokens.size();
  const int qp = c.kv_quant_policy;
  if (kv.quant_policy != qp || (qp && ((int64_t)kv.k_param.size() != c.layers || (int64_t)kv.v_param.size() != c.layers)))
    fail(ErrorCode::Internal, "decoder: the KV cache's quant policy differs from the model's");
#ifdef LMFLEET_WITH_CUDA
  if (cuda_) {
    for (int32_t id : b.tokens)
      if (id < 0 || id >= c.vocab)
        fail(ErrorCode::InvalidArgument, "token id " + std::to_string(id) + " is outside [0, " + std::to_string(c.vocab) + ")");
    return cuda_->forward(b, kv);
  }
#endif
  // This rank's heads / intermediate width (the model's at tp 1); coll is null at tp 1.
  const ShardPlan& sh = m_.shard();
  Collective* coll = m_.collective();
  const int rank = sh.rank;
  const int64_t H = c.hidden, D = c.head_dim, NH = sh.heads, NKV = sh.kv_heads, I = sh.inter;
  const int64_t qd = NH * D, kvd = NKV * D, qkvd = qd + 2 * kvd;
  if (T == 0) fail(ErrorCode::InvalidArgument, "decoder: empty batch");
  for (int32_t id : b.tokens)
    if (id < 0 || id >= c.vocab)
      fail(ErrorCode::InvalidArgument, "token id " + std::to_string(id) + " is outside [0, " + std::to_string(c.vocab) + ")");

  x_.ensure(&be, T * H * 4);
  h_.ensure(&be, T * H * 4);
  qkv_.ensure(&be, T * qkvd * 4);
  attn_.ensure(&be, T * qd * 4);
  const int64_t If = std::max(I, c.num_experts > 0 ? c.moe_inter : 0);  // the widest MLP: dense or an expert's
  gu_.ensure(&be, T * 2 * If * 4);
  act_.ensure(&be, T * If * 4);
  float *x = x_.as<float>(), *h = h_.as<float>(), *qkv = qkv_.as<float>(), *attn = attn_.as<float>(), *gu = gu_.as<float>(), *act = act_.as<float>();

  // RoPE frequencies: one table, or one per token for dynamic NTK (depends on each sequence's length).
  const int64_t half = m_.rotary_dim() / 2;
  int64_t inv_stride = 0;
  if (rope_per_sequence(c.rope)) {
    std::vector<float> tab((size_t)(T * half));
    for (int64_t s = 0; s < b.num_seqs(); s++) {
      auto f = rope_inv_freq(c.rope, D, b.seq_info[s * 3 + 2]);
      for (int64_t j = 0; j < b.seq_info[s * 3 + 1]; j++)
        std::memcpy(&tab[(b.seq_info[s * 3] + j) * half], f.data(), half * 4);
    }
    upload_vec(be, inv_freq_, tab);
    inv_stride = half;
  } else {
    upload_vec(be, inv_freq_, m_.inv_freq());
  }
  if (!c.no_rope_layers.empty() && !nope_inv_.get()) upload_vec(be, nope_inv_, std::vector<float>((size_t)half, 0.f));
  if (c.has_rope_local && !local_inv_.get()) upload_vec(be, local_inv_, m_.inv_freq_local());

  if (!coll) {
    LMF_TIMED(embedding, be.embedding({b.tokens.data(), T, m_.embed.as<float>(), c.vocab, H, x, c.embed_scale}));
  } else {
    // Vocabulary-parallel embedding: this rank's rows, a zero row (index sh.vocab) for the others' tokens.
    local_ids_.resize((size_t)T);
    for (int64_t t = 0; t < T; t++) {
      const int64_t id = (int64_t)b.tokens[t] - sh.vocab0;
      local_ids_[t] = (int32_t)(id >= 0 && id < sh.vocab ? id : sh.vocab);
    }
    LMF_TIMED(embedding, be.embedding({local_ids_.data(), T, m_.embed.as<float>(), sh.vocab + 1, H, x, c.embed_scale}));
    LMF_TIMED(all_reduce, coll->all_reduce_sum(rank, x, T * H));
  }
  for (int64_t l = 0; l < c.layers; l++) {
    const LayerWeights& L = m_.layers[l];
    LMF_TIMED(rms_norm, be.rms_norm({x, L.input_norm.as<float>(), h, T, H, c.eps}));
    LMF_TIMED(linear, be.linear({h, L.qkv.get(), qkv, T}));
    // q, k, v stay inside the fused projection (row stride qkvd): no copies, the same on every backend.
    float* q = qkv;
    float* k = qkv + qd;
    float* v = qkv + qd + kvd;
    // (Qwen3: each q / k head RMS-normed first, inside the rope op)
    // a NoPE layer (ModelConfig::no_rope_layers): the zero frequency table, i.e. no rotation; a local-rope layer
    // (Gemma 3's sliding layers): rope_local's table (one for every sequence: Model::validate)
    const bool rope = c.rope_on(l), local = rope && c.local_rope(l);
    const float cs = rope ? (float)rope_cs_scale(c.rope_of(l), D) : 1.f;
    const float* lf = !rope ? nope_inv_.as<float>() : local ? local_inv_.as<float>() : inv_freq_.as<float>();
    const int64_t ls = rope && !local ? inv_stride : 0;
    LMF_TIMED(rope, be.rope({q, T, NH, D, m_.rotary_dim(), b.positions.data(), lf, ls, qkvd,
                             c.qk_norm ? L.q_norm.as<float>() : nullptr, c.eps, cs}));
    LMF_TIMED(rope, be.rope({k, T, NKV, D, m_.rotary_dim(), b.positions.data(), lf, ls, qkvd,
                             c.qk_norm ? L.k_norm.as<float>() : nullptr, c.eps, cs}));
    kv_store_args st{k, v, b.slots.data(), T, kvd, kv.k[l], kv.v[l], kv.num_blocks * kv.block_size, qkvd};
    attention_args at{q, attn, kv.k[l], kv.v[l], kv.num_blocks, kv.block_size, b.block_tables.data(), b.max_blocks,
                      b.seq_info.data(), b.num_seqs(), NH, NKV, D,
                      rope ? (float)rope_attention_scale(c.rope_of(l), D) : (float)nope_attention_scale(c.rope, D), qkvd};
    at.window = c.window(l);
    at.softcap = c.attn_softcap;
    if (qp) {  // quantized cache: kv_store quantizes (online, or with the calibrated params), attention dequantizes
      st.quant_policy = at.quant_policy = qp;
      st.head_dim = D;
      st.k_param = kv.k_param[l];
      st.v_param = kv.v_param[l];
      st.k_static = m_.kv_static(l, false);
      st.v_static = m_.kv_static(l, true);
      at.k_param = kv.k_param[l];
      at.v_param = kv.v_param[l];
    }
    LMF_TIMED(kv_store, be.kv_store(st));
    LMF_TIMED(attention, be.attention(at));
    LMF_TIMED(linear, be.linear({attn, L.o.get(), h, T}));
    if (coll) LMF_TIMED(all_reduce, coll->all_reduce_sum(rank, h, T * H));  // row-parallel o
    if (c.sandwich_norms) LMF_TIMED(rms_norm, be.rms_norm({h, L.attn_out_norm.as<float>(), h, T, H, c.eps}));
    LMF_TIMED(add, be.add({x, h, x, T * H}));
    LMF_TIMED(rms_norm, be.rms_norm({x, L.post_norm.as<float>(), h, T, H, c.eps}));
    if (c.moe_layer(l)) {
      moe_mlp(l, h, T);
      if (c.sandwich_norms) LMF_TIMED(rms_norm, be.rms_norm({h, L.mlp_out_norm.as<float>(), h, T, H, c.eps}));
      LMF_TIMED(add, be.add({x, h, x, T * H}));
      continue;
    }
    LMF_TIMED(linear, be.linear({h, L.gate_up.get(), gu, T}));
    LMF_TIMED(silu_mul, be.silu_mul({gu, gu + I, 2 * I, act, T, I, c.act}));
    LMF_TIMED(linear, be.linear({act, L.down.get(), h, T}));
    if (coll) LMF_TIMED(all_reduce, coll->all_reduce_sum(rank, h, T * H));  // row-parallel down
    if (c.sandwich_norms) LMF_TIMED(rms_norm, be.rms_norm({h, L.mlp_out_norm.as<float>(), h, T, H, c.eps}));
    LMF_TIMED(add, be.add({x, h, x, T * H}));
  }
  const int64_t R = (int64_t)b.logit_rows.size();
  rows_.ensure(&be, std::max<int64_t>(R, 1) * H * 4);
  float* rows = rows_.as<float>();
  // Gather the rows that need logits: the embedding op is a row gather (table = x, vocab = T).
  LMF_TIMED(embedding, be.embedding({b.logit_rows.data(), R, x, T, H, rows}));
  LMF_TIMED(rms_norm, be.rms_norm({rows, m_.final_norm.as<float>(), rows, R, H, c.eps}));
  logits_.ensure(&be, std::max<int64_t>(R, 1) * c.vocab * 4);
  if (!coll) {
    LMF_TIMED(linear, be.linear({rows, m_.lm_head.get(), logits_.as<float>(), R}));
  } else {
    // Vocabulary-parallel lm_head: this rank's columns of the logits, all-gathered into [R, vocab].
    logits_rank_.ensure(&be, std::max<int64_t>(R, 1) * sh.vocab * 4);
    if (R > 0) LMF_TIMED(linear, be.linear({rows, m_.lm_head.get(), logits_rank_.as<float>(), R}));
    LMF_TIMED(all_gather, coll->all_gather(rank, logits_rank_.as<float>(), logits_.as<float>(), R, sh.vocab));
  }
  if (c.final_softcap > 0.f) {  // Gemma 2
    std::vector<float> lg((size_t)(R * c.vocab));
    be.download(lg.data(), logits_.get(), lg.size() * 4);
    for (float& v : lg) v = c.final_softcap * std::tanh(v / c.final_softcap);
    be.upload(logits_.get(), lg.data(), lg.size() * 4);
  }
  return logits_;
}

void Decoder::moe_mlp(int64_t l, float* h, int64_t T) {
  Backend& be = m_.backend();
  const ModelConfig& c = m_.cfg();
  const LayerWeights& L = m_.layers[(size_t)l];
  const int64_t H = c.hidden, E = c.num_experts, K = c.experts_per_tok, Im = m_.shard().moe_inter;  // (this rank's)
  // routing on the host: softmax over all experts in f32, the K best (ties: the lower index), their weights
  // renormalized to sum 1 when norm_topk_prob (transformers' Mixtral / Qwen3-MoE blocks)
  router_.ensure(&be, T * E * 4);
  be.linear({h, L.router.get(), router_.as<float>(), T});
  std::vector<float> logits((size_t)(T * E));
  be.download(logits.data(), router_.get(), logits.size() * 4);
  std::vector<std::vector<std::pair<int32_t, float>>> routed((size_t)E);  // per expert: (token row, weight)
  std::vector<int32_t> order((size_t)E);
  std::vector<double> p((size_t)E);
  for (int64_t t = 0; t < T; t++) {
    const float* r = &logits[(size_t)(t * E)];
    const float mx = *std::max_element(r, r + E);
    double sum = 0;
    for (int64_t e = 0; e < E; e++) sum += (p[(size_t)e] = std::exp((double)r[e] - mx));
    std::iota(order.begin(), order.end(), 0);
    std::partial_sort(order.begin(), order.begin() + K, order.end(), [&](int32_t a, int32_t b) { return r[a] > r[b] || (r[a] == r[b] && a < b); });
    double top = 0;
    for (int64_t k = 0; k < K; k++) top += p[(size_t)order[(size_t)k]];
    for (int64_t k = 0; k < K; k++) {
      const int32_t e = order[(size_t)k];
      routed[(size_t)e].push_back({(int32_t)t, (float)(p[(size_t)e] / (c.norm_topk_prob ? top : sum))});
    }
  }
  // each routed expert on its rows (gathered by the embedding op, a row gather), summed into `acc` with the weights
  std::vector<float> acc((size_t)(T * H), 0.f), out;
  moe_in_.ensure(&be, T * H * 4);
  moe_out_.ensure(&be, T * H * 4);  // (gu_ and act_ were sized for the experts by forward_rank)
  for (int64_t e = 0; e < E; e++) {
    const auto& rows = routed[(size_t)e];
    if (rows.empty()) continue;
    const int64_t n = (int64_t)rows.size();
    moe_rows_.resize((size_t)n);
    for (int64_t i = 0; i < n; i++) moe_rows_[(size_t)i] = rows[(size_t)i].first;
    be.embedding({moe_rows_.data(), n, h, T, H, moe_in_.as<float>()});
    be.linear({moe_in_.as<float>(), L.expert_gate_up[(size_t)e].get(), gu_.as<float>(), n});
    be.silu_mul({gu_.as<float>(), gu_.as<float>() + Im, 2 * Im, act_.as<float>(), n, Im, c.act});
    be.linear({act_.as<float>(), L.expert_down[(size_t)e].get(), moe_out_.as<float>(), n});
    out.resize((size_t)(n * H));
    be.download(out.data(), moe_out_.get(), out.size() * 4);
    for (int64_t i = 0; i < n; i++) {
      float* a = &acc[(size_t)(rows[(size_t)i].first * H)];
      const float w = rows[(size_t)i].second;
      const float* o = &out[(size_t)(i * H)];
      for (int64_t j = 0; j < H; j++) a[j] += w * o[j];
    }
  }
  be.upload(h, acc.data(), acc.size() * 4);
  // tensor parallelism: each rank summed its columns of every expert (row-parallel down), the weights alike on all
  if (Collective* coll = m_.collective()) coll->all_reduce_sum(m_.shard().rank, h, T * H);
}

namespace {

// A single sequence over a temporary contiguous cache (one block of n tokens).
struct WholeSequence {
  StepBatch batch;
  KvView kv;
  // Call with m.run_mutex held.
  WholeSequence(Model& m, const std::vector<int32_t>& ids, bool all_logits) {
    const ModelConfig& c = m.cfg();
    const int64_t n = (int64_t)ids.size();
    if (n == 0) fail(ErrorCode::InvalidArgument, "inputIds must not be empty");
    batch.tokens = ids;
    for (int64_t i = 0; i < n; i++) {
      batch.positions.push_back((int32_t)i);
      batch.slots.push_back((int32_t)i);
    }
    batch.seq_info = {0, (int32_t)n, (int32_t)n};
    batch.block_tables = {0};
    batch.max_blocks = 1;
    if (all_logits)
      for (int64_t i = 0; i < n; i++) batch.logit_rows.push_back((int32_t)i);
    for (int r = 0; r < m.tp(); r++) {  // each rank's KV heads on its own backend (tp 1: the model's)
      Model& rm = m.rank(r);
      Backend& be = rm.backend();
      const int64_t eb = (int64_t)be.kv_element_bytes(), kvh = rm.shard().kv_heads;
      const int64_t pool = kv_pool_bytes(n, kvh, c.head_dim, c.kv_quant_policy, eb);
      rm.whole_seq_cache.ensure(&be, (size_t)(2 * c.layers * pool));
      KvView v = make_kv_view(rm.whole_seq_cache.get(), c.layers, 1, n, kvh, c.head_dim, c.kv_quant_policy, eb);
      if (r == 0) kv = std::move(v);
      else kv.peers.push_back(std::move(v));
    }
  }
};

}  // namespace

Decoder& model_decoder(Model& m) {
  if (!m.decoder) m.decoder = std::make_unique<Decoder>(m);
  return *m.decoder;
}

std::vector<float> forward_logits(Model& model, const std::vector<int32_t>& ids) {
  model.ensure_loaded();
  std::lock_guard<std::mutex> lock(model.run_mutex);
  WholeSequence ws(model, ids, true);
  const Buffer& logits = model_decoder(model).forward(ws.batch, ws.kv);
  std::vector<float> out(ids.size() * (size_t)model.cfg().vocab);
  model.backend().download(out.data(), logits.get(), out.size() * 4);
  return out;
}

std::vector<float> score_tokens(Model& model, const std::vector<int32_t>& ids) {
  model.ensure_loaded();
  if (ids.size() < 2) return {};
  std::lock_guard<std::mutex> lock(model.run_mutex);
  WholeSequence ws(model, ids, false);
  const int64_t n = (int64_t)ids.size();
  for (int64_t i = 0; i + 1 < n; i++) ws.batch.logit_rows.push_back((int32_t)i);
  const Buffer& logits = model_decoder(model).forward(ws.batch, ws.kv);
  Backend& be = model.backend();
  Buffer out(&be, (size_t)(n - 1) * 4);
  be.nll({logits.as<float>(), ids.data() + 1, out.as<float>(), n - 1, model.cfg().vocab});
  std::vector<float> r((size_t)(n - 1));
  be.download(r.data(), out.get(), r.size() * 4);
  return r;
}

}  // namespace lmfleet
