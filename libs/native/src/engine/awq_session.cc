#include "engine/awq_session.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "core/dtype.h"
#include "core/env.h"
#include "core/error.h"
#include "ops/add.h"
#include "ops/attention.h"
#include "ops/awq_clip_search.h"
#include "ops/awq_fake_quant.h"
#include "ops/channel_stats.h"
#include "ops/embedding.h"
#include "ops/linear.h"
#include "ops/rms_norm.h"
#include "ops/rope.h"
#include "ops/silu_mul.h"
#include "ops/sq_err.h"

namespace lmfleet {

namespace {
const char* const kLinNames[AwqSession::kLinears] = {"q", "k", "v", "o", "gate", "up", "down"};
enum { LQ = 0, LK, LV, LO, LGate, LUp, LDown };
// scaling groups: their linears and the tap they read
const std::vector<int> kGroupLinears[4] = {{LQ, LK, LV}, {LO}, {LGate, LUp}, {LDown}};
const int kGroupTap[4] = {AwqSession::AttnIn, AwqSession::OIn, AwqSession::MlpIn, AwqSession::DownIn};
int tap_of_linear(int l) {
  switch (l) {
    case LQ: case LK: case LV: return AwqSession::AttnIn;
    case LO: return AwqSession::OIn;
    case LGate: case LUp: return AwqSession::MlpIn;
    default: return AwqSession::DownIn;
  }
}
}  // namespace

AwqSession::AwqSession(Backend& be, const AwqSessionConfig& c) : be_(be), c_(c) {
  if (c.hidden <= 0 || c.inter <= 0 || c.heads <= 0 || c.kv_heads <= 0 || c.head_dim <= 0)
    fail(ErrorCode::InvalidArgument, "awq session: hidden, intermediate, heads, kv heads and head_dim must be > 0");
  if (c.heads % c.kv_heads) fail(ErrorCode::InvalidArgument, "awq session: heads must be a multiple of kv heads");
  if (c.head_dim % 2) fail(ErrorCode::InvalidArgument, "awq session: head_dim must be even");
  f32_attention_ = env_switch("LMFLEET_AWQ_F32_ATTENTION", false);
}

int AwqSession::linear_index(const std::string& name) {
  for (int l = 0; l < kLinears; l++)
    if (name == kLinNames[l]) return l;
  return -1;
}

std::array<int64_t, 2> AwqSession::linear_shape(int l) const {
  const int64_t H = c_.hidden, A = c_.heads * c_.head_dim, KV = c_.kv_heads * c_.head_dim, I = c_.inter;
  switch (l) {
    case LQ: return {A, H};
    case LK: case LV: return {KV, H};
    case LO: return {H, A};
    case LGate: case LUp: return {I, H};
    default: return {H, I};
  }
}

float* AwqSession::scratch(int slot, size_t floats) {
  scratch_[slot].ensure(&be_, std::max<size_t>(floats, 1) * 4);
  return scratch_[slot].as<float>();
}

void AwqSession::set_tensor(const std::string& name, const float* host, int64_t count) {
  auto put = [&](Buffer& b, int64_t want, const std::string& what) {
    if (count != want)
      fail(ErrorCode::InvalidArgument, "awq session: " + what + " needs " + std::to_string(want) + " values, got " + std::to_string(count));
    b.ensure(&be_, (size_t)want * 4);
    be_.upload(b.get(), host, (size_t)want * 4);
  };
  if (name == "input_norm" || name == "post_norm") {
    put(name == "input_norm" ? in_norm_ : post_norm_, c_.hidden, name);
    (name == "input_norm" ? has_in_norm_ : has_post_norm_) = true;
    return;
  }
  if (name == "q_norm" || name == "k_norm") {
    if (!c_.qk_norm) fail(ErrorCode::InvalidArgument, "awq session: " + name + " given, but the session was created without qkNorm");
    put(name == "q_norm" ? q_norm_ : k_norm_, c_.head_dim, name);
    (name == "q_norm" ? has_q_norm_ : has_k_norm_) = true;
    return;
  }
  const bool bias = name.size() > 5 && name.compare(name.size() - 5, 5, ".bias") == 0;
  const int l = linear_index(bias ? name.substr(0, name.size() - 5) : name);
  if (l < 0)
    fail(ErrorCode::InvalidArgument, "awq session: unknown tensor '" + name + "' (q k v o gate up down [.bias], input_norm, post_norm, q_norm, k_norm)");
  const auto s = linear_shape(l);
  Lin& L = lin_[l];
  if (bias) {
    put(L.b, s[0], name);
    L.has_b = true;
  } else {
    put(L.w, s[0] * s[1], name);
    L.has_w = true;
  }
  L.dirty = true;
}

void AwqSession::set_input(const float* host, int64_t tokens, const std::vector<int32_t>& seq_lens, bool append,
                           int64_t reserve) {
  int64_t sum = 0;
  for (int32_t l : seq_lens) {
    if (l <= 0) fail(ErrorCode::InvalidArgument, "awq session: sequence lengths must be > 0");
    sum += l;
  }
  if (sum != tokens)
    fail(ErrorCode::InvalidArgument, "awq session: the sequence lengths add up to " + std::to_string(sum) + ", the input has " + std::to_string(tokens) + " tokens");
  const int64_t H = c_.hidden, at = append ? tokens_ : 0, need = at + tokens;
  if (need > cap_) {
    if (append && tokens_ > 0)
      fail(ErrorCode::InvalidArgument, "awq session: appending " + std::to_string(tokens) + " tokens to " + std::to_string(tokens_) +
                                           " exceeds the " + std::to_string(cap_) + " reserved by the first setInput");
    cap_ = std::max(need, reserve);
    x_ = Buffer(&be_, (size_t)(cap_ * H) * 4);
  }
  be_.upload(x_.as<float>() + at * H, host, (size_t)(tokens * H) * 4);
  if (!append) seq_lens_.clear();
  seq_lens_.insert(seq_lens_.end(), seq_lens.begin(), seq_lens.end());
  tokens_ = need;
  taps_valid_ = false;
}

const LinearWeight& AwqSession::weight(int l) {
  Lin& L = lin_[l];
  if (!L.has_w) fail(ErrorCode::InvalidArgument, std::string("awq session: no weight for ") + kLinNames[l] + " (setTensors first)");
  if (L.dirty || !L.prepared) {
    const auto s = linear_shape(l);
    L.prepared = be_.prepare_linear_resident(L.w.as<float>(), L.has_b ? L.b.as<float>() : nullptr, s[0], s[1]);
    L.dirty = false;
  }
  return *L.prepared;
}

void AwqSession::check_ready() const {
  for (int l = 0; l < kLinears; l++)
    if (!lin_[l].has_w) fail(ErrorCode::InvalidArgument, std::string("awq session: no weight for ") + kLinNames[l] + " (setTensors first)");
  if (!has_in_norm_ || !has_post_norm_) fail(ErrorCode::InvalidArgument, "awq session: input_norm / post_norm not set");
  if (c_.qk_norm && (!has_q_norm_ || !has_k_norm_)) fail(ErrorCode::InvalidArgument, "awq session: q_norm / k_norm not set (qkNorm)");
  if (tokens_ == 0) fail(ErrorCode::InvalidArgument, "awq session: no input (setInput first)");
}

std::vector<int32_t> AwqSession::batch_lens(const Batch& b) const {
  return std::vector<int32_t>(seq_lens_.begin() + b.s0, seq_lens_.begin() + b.s1);
}

void AwqSession::attn_block(const float* attn_in, const std::vector<int32_t>& lens, const LinearWeight* wq,
                            const LinearWeight* wk, const LinearWeight* wv, const LinearWeight* wo, float* out,
                            float* k_tap, float* v_tap, float* o_tap) {
  const int64_t NH = c_.heads, NKV = c_.kv_heads, D = c_.head_dim;
  int64_t T = 0, maxL = 0;
  for (int32_t l : lens) {
    T += l;
    maxL = std::max<int64_t>(maxL, l);
  }
  const int64_t S = (int64_t)lens.size();
  float* q = scratch(9, (size_t)(T * NH * D));
  float* k = k_tap ? k_tap : scratch(10, (size_t)(T * NKV * D));
  float* v = v_tap ? v_tap : scratch(11, (size_t)(T * NKV * D));
  float* o_in = o_tap ? o_tap : scratch(12, (size_t)(T * NH * D));
  be_.linear({attn_in, wq, q, T});
  be_.linear({attn_in, wk, k, T});
  be_.linear({attn_in, wv, v, T});
  std::vector<int32_t> pos((size_t)T);
  std::vector<int32_t> info((size_t)S * 3);
  bool uniform = true;
  for (int64_t s = 0, t = 0; s < S; s++) {
    info[3 * s] = (int32_t)t;
    info[3 * s + 1] = info[3 * s + 2] = lens[s];
    uniform = uniform && lens[s] == maxL;
    for (int32_t j = 0; j < lens[s]; j++) pos[t++] = j;
  }
  // RoPE table of the longest sequence (as block-forward.ts: seqLen = the longest; it matters for 'dynamic' only)
  const int64_t rot = rope_rotary_dim(c_.rope, D);
  const std::vector<float> inv = rope_inv_freq(c_.rope, D, maxL);
  float* inv_d = scratch(13, inv.size());
  be_.upload(inv_d, inv.data(), inv.size() * 4);
  if (c_.qk_norm) {  // Qwen3: each head RMS-normed over head_dim (q / k are [T, heads * D]: rows of D)
    be_.rms_norm({q, q_norm_.as<float>(), q, T * NH, D, c_.eps});
    be_.rms_norm({k, k_norm_.as<float>(), k, T * NKV, D, c_.eps});
  }
  rope_args rq{q, T, NH, D, rot, pos.data(), inv_d, 0, 0}, rk{k, T, NKV, D, rot, pos.data(), inv_d, 0, 0};
  rq.cs_scale = rk.cs_scale = (float)rope_cs_scale(c_.rope, D);
  if (rope_) {  // (a NoPE layer leaves q and k as they are)
    be_.rope(rq);
    be_.rope(rk);
  }
  // K/V of the batch as a cache: one block per sequence when all have the same length, else one block per token
  std::vector<int32_t> tables;
  int64_t num_blocks, block_size, max_blocks;
  if (uniform) {
    num_blocks = S, block_size = maxL, max_blocks = 1;
    for (int64_t s = 0; s < S; s++) tables.push_back((int32_t)s);
  } else {
    num_blocks = T, block_size = 1, max_blocks = maxL;
    tables.assign((size_t)(S * maxL), 0);
    for (int64_t s = 0; s < S; s++)
      for (int32_t j = 0; j < lens[s]; j++) tables[s * maxL + j] = info[3 * s] + j;
  }
  attention_args aa{};
  aa.q = q;
  aa.out = o_in;
  aa.k_cache = k;
  aa.v_cache = v;
  aa.num_blocks = num_blocks;
  aa.block_size = block_size;
  aa.block_tables = tables.data();
  aa.max_blocks = max_blocks;
  aa.seq_info = info.data();
  aa.num_seqs = S;
  aa.heads = NH;
  aa.kv_heads = NKV;
  aa.head_dim = D;
  aa.scale = rope_ ? (float)rope_attention_scale(c_.rope, D) : (float)nope_attention_scale(c_.rope, D);
  aa.window = window_;
  if (f32_attention_) be_.attention(aa);
  else be_.attention_fast(aa);
  be_.linear({o_in, wo, out, T});
}

void AwqSession::mlp_block(const float* mlp_in, int64_t T, const LinearWeight* wg, const LinearWeight* wu,
                           const LinearWeight* wd, float* out, float* down_tap) {
  const int64_t I = c_.inter;
  float* g = scratch(14, (size_t)(T * I));
  float* u = scratch(15, (size_t)(T * I));
  float* d = down_tap ? down_tap : scratch(20, (size_t)(T * I));
  be_.linear({mlp_in, wg, g, T});
  be_.linear({mlp_in, wu, u, T});
  be_.silu_mul({g, u, I, d, T, I});
  be_.linear({d, wd, out, T});
}

void AwqSession::gather(const float* src, int64_t dim, const std::vector<int32_t>& rows, float* dst) {
  be_.embedding({rows.data(), (int64_t)rows.size(), src, tokens_, dim, dst});
}

void AwqSession::run(bool stats, bool keep_taps, bool advance, int64_t batch_tokens) {
  check_ready();
  const int64_t H = c_.hidden, A = c_.heads * c_.head_dim, KV = c_.kv_heads * c_.head_dim, I = c_.inter;
  const int64_t dims[kTaps] = {H, A, H, I, KV, KV};
  if (stats) {
    for (int t = 0; t < kTaps; t++) {
      TapStats& st = stats_[t];
      st.dim = dims[t];
      st.rows = 0;
      const std::vector<float> zero((size_t)dims[t], 0.f), lo((size_t)dims[t], INFINITY), hi((size_t)dims[t], -INFINITY);
      const std::vector<double> zsum((size_t)dims[t], 0.0);
      st.absmax.ensure(&be_, zero.size() * 4);
      st.abssum.ensure(&be_, zsum.size() * 8);
      st.min.ensure(&be_, lo.size() * 4);
      st.max.ensure(&be_, hi.size() * 4);
      be_.upload(st.absmax.get(), zero.data(), zero.size() * 4);
      be_.upload(st.abssum.get(), zsum.data(), zsum.size() * 8);
      be_.upload(st.min.get(), lo.data(), lo.size() * 4);
      be_.upload(st.max.get(), hi.data(), hi.size() * 4);
    }
  }
  if (keep_taps) {
    for (int t = 0; t < 4; t++) taps_[t].ensure(&be_, (size_t)(tokens_ * dims[t]) * 4);
  }
  taps_valid_ = false;
  const LinearWeight &wq = weight(LQ), &wk = weight(LK), &wv = weight(LV), &wo = weight(LO), &wg = weight(LGate),
                     &wu = weight(LUp), &wd = weight(LDown);
  int64_t s = 0, t0 = 0;
  const int64_t S = (int64_t)seq_lens_.size();
  while (s < S) {
    Batch b{s, s, t0, 0};
    while (b.s1 < S && (b.s1 == b.s0 || b.T + seq_lens_[b.s1] <= batch_tokens)) b.T += seq_lens_[b.s1++];
    const std::vector<int32_t> lens = batch_lens(b);
    const int64_t T = b.T;
    float* x = x_.as<float>() + t0 * H;
    float* attn_in = keep_taps ? taps_[AttnIn].as<float>() + t0 * H : scratch(0, (size_t)(T * H));
    float* o_in = keep_taps ? taps_[OIn].as<float>() + t0 * A : scratch(1, (size_t)(T * A));
    float* k_tap = scratch(2, (size_t)(T * KV));
    float* v_tap = scratch(3, (size_t)(T * KV));
    float* attn_out = scratch(4, (size_t)(T * H));
    float* h = scratch(5, (size_t)(T * H));
    float* mlp_in = keep_taps ? taps_[MlpIn].as<float>() + t0 * H : scratch(6, (size_t)(T * H));
    float* down_in = keep_taps ? taps_[DownIn].as<float>() + t0 * I : scratch(7, (size_t)(T * I));
    float* mlp_out = scratch(8, (size_t)(T * H));
    be_.rms_norm({x, in_norm_.as<float>(), attn_in, T, H, c_.eps});
    attn_block(attn_in, lens, &wq, &wk, &wv, &wo, attn_out, k_tap, v_tap, o_in);
    be_.add({x, attn_out, h, T * H});
    be_.rms_norm({h, post_norm_.as<float>(), mlp_in, T, H, c_.eps});
    mlp_block(mlp_in, T, &wg, &wu, &wd, mlp_out, down_in);
    if (stats) {
      const float* src[kTaps] = {attn_in, o_in, mlp_in, down_in, k_tap, v_tap};
      for (int t = 0; t < kTaps; t++) {
        TapStats& st = stats_[t];
        be_.channel_stats({src[t], T, st.dim, st.absmax.as<float>(), st.abssum.as<double>(), st.min.as<float>(), st.max.as<float>()});
        st.rows += T;
      }
    }
    if (advance) be_.add({h, mlp_out, x, T * H});
    s = b.s1;
    t0 += T;
  }
  be_.synchronize();
  taps_valid_ = keep_taps;
}

void AwqSession::tap_stats(int t, std::vector<float>& absmax, std::vector<double>& abssum, std::vector<float>& min,
                           std::vector<float>& max, int64_t& rows) const {
  if (t < 0 || t >= kTaps) fail(ErrorCode::InvalidArgument, "awq session: tap index out of range");
  const TapStats& st = stats_[t];
  if (st.dim == 0) fail(ErrorCode::InvalidArgument, "awq session: no statistics (run with stats first)");
  absmax.resize((size_t)st.dim);
  abssum.resize((size_t)st.dim);
  min.resize((size_t)st.dim);
  max.resize((size_t)st.dim);
  be_.download(absmax.data(), st.absmax.get(), absmax.size() * 4);
  be_.download(abssum.data(), st.abssum.get(), abssum.size() * 8);
  be_.download(min.data(), st.min.get(), min.size() * 4);
  be_.download(max.data(), st.max.get(), max.size() * 4);
  rows = st.rows;
}

std::vector<double> AwqSession::scale_losses(int g, const float* cands, int n, int64_t seqs, const std::vector<int32_t>& rows,
                                             int bits, int group) {
  if (g < 0 || g > 3) fail(ErrorCode::InvalidArgument, "awq session: scaling group must be 0..3");
  if (!taps_valid_) fail(ErrorCode::InvalidArgument, "awq session: no kept taps (run with taps first)");
  if (bits != 4 && bits != 8) fail(ErrorCode::InvalidArgument, "awq session: bits must be 4 or 8");
  if (group != 32 && group != 64 && group != 128) fail(ErrorCode::InvalidArgument, "awq session: group must be 32, 64 or 128");
  const std::vector<int>& ls = kGroupLinears[g];
  const int64_t in = linear_shape(ls[0])[1], H = c_.hidden;
  for (int l : ls)
    if (linear_shape(l)[1] % group) fail(ErrorCode::InvalidArgument, "awq session: input width is not a multiple of the group size");
  const float* inp;
  int64_t T = 0;
  std::vector<int32_t> lens;
  if (g == 0) {
    if (seqs < 1 || seqs > (int64_t)seq_lens_.size()) fail(ErrorCode::InvalidArgument, "awq session: seqs out of range");
    lens.assign(seq_lens_.begin(), seq_lens_.begin() + seqs);
    for (int32_t l : lens) T += l;
    inp = taps_[AttnIn].as<float>();
  } else {
    if (rows.empty()) fail(ErrorCode::InvalidArgument, "awq session: no rows to measure on");
    for (int32_t r : rows)
      if (r < 0 || r >= tokens_) fail(ErrorCode::InvalidArgument, "awq session: row " + std::to_string(r) + " out of range");
    T = (int64_t)rows.size();
    float* gx = scratch(16, (size_t)(T * in));
    gather(taps_[kGroupTap[g]].as<float>(), in, rows, gx);
    inp = gx;
  }
  float* ref = scratch(17, (size_t)(T * H));
  float* cand = scratch(18, (size_t)(T * H));
  float* sv = scratch(19, (size_t)in);
  sums_.ensure(&be_, (size_t)H * 8);
  const LinearWeight* cur[kLinears];
  for (int l = 0; l < kLinears; l++) cur[l] = &weight(l);
  auto block = [&](const LinearWeight* const* w, float* out) {
    switch (g) {
      case 0: attn_block(inp, lens, w[LQ], w[LK], w[LV], w[LO], out, nullptr, nullptr, nullptr); break;
      case 1: be_.linear({inp, w[LO], out, T}); break;
      case 2: mlp_block(inp, T, w[LGate], w[LUp], w[LDown], out, nullptr); break;
      default: be_.linear({inp, w[LDown], out, T}); break;
    }
  };
  block(cur, ref);
  std::vector<double> losses((size_t)n), sums((size_t)H);
  const std::vector<double> zero((size_t)H, 0.0);
  for (int i = 0; i < n; i++) {
    be_.upload(sv, cands + (size_t)i * in, (size_t)in * 4);
    const LinearWeight* w[kLinears];
    std::copy(cur, cur + kLinears, w);
    std::unique_ptr<LinearWeight> held[kLinears];
    for (int l : ls) {
      const auto s = linear_shape(l);
      fq_[l].ensure(&be_, (size_t)(s[0] * s[1]) * 4);
      be_.awq_fake_quant({lin_[l].w.as<float>(), sv, nullptr, fq_[l].as<float>(), nullptr, nullptr, nullptr, s[0], s[1], bits, group});
      held[l] = be_.prepare_linear_resident(fq_[l].as<float>(), lin_[l].has_b ? lin_[l].b.as<float>() : nullptr, s[0], s[1]);
      w[l] = held[l].get();
    }
    block(w, cand);
    be_.upload(sums_.get(), zero.data(), zero.size() * 8);
    be_.sq_err({cand, ref, T, H, sums_.as<double>()});
    be_.download(sums.data(), sums_.get(), sums.size() * 8);
    double tot = 0;
    for (double v : sums) tot += v;
    losses[i] = tot / ((double)T * (double)H);
  }
  return losses;
}

void AwqSession::clip_search(int l, const std::vector<int32_t>& rows, int bits, int group, int n_grid, double max_shrink,
                             std::vector<float>& clip, std::vector<float>& err) {
  if (l < 0 || l >= kLinears) fail(ErrorCode::InvalidArgument, "awq session: linear index out of range");
  if (!taps_valid_) fail(ErrorCode::InvalidArgument, "awq session: no kept taps (run with taps first)");
  if (!lin_[l].has_w) fail(ErrorCode::InvalidArgument, std::string("awq session: no weight for ") + kLinNames[l]);
  if (bits != 4 && bits != 8) fail(ErrorCode::InvalidArgument, "awq session: bits must be 4 or 8");
  if (group != 32 && group != 64 && group != 128) fail(ErrorCode::InvalidArgument, "awq session: group must be 32, 64 or 128");
  if (!(n_grid >= 1 && n_grid <= 1000) || !(max_shrink > 0 && max_shrink <= 1))
    fail(ErrorCode::InvalidArgument, "awq session: nGrid must be in [1, 1000] and maxShrink in (0, 1]");
  const auto s = linear_shape(l);
  if (s[1] % group) fail(ErrorCode::InvalidArgument, "awq session: input width is not a multiple of the group size");
  if (rows.empty()) fail(ErrorCode::InvalidArgument, "awq session: no rows to measure on");
  for (int32_t r : rows)
    if (r < 0 || r >= tokens_) fail(ErrorCode::InvalidArgument, "awq session: row " + std::to_string(r) + " out of range");
  const int64_t T = (int64_t)rows.size(), groups = s[1] / group;
  float* x = scratch(16, (size_t)(T * s[1]));
  gather(taps_[tap_of_linear(l)].as<float>(), s[1], rows, x);
  float* cb = scratch(21, (size_t)(s[0] * groups));
  float* eb = scratch(22, (size_t)(s[0] * groups));
  const int steps = std::max(1, (int)std::lround(max_shrink * n_grid));
  be_.awq_clip_search({lin_[l].w.as<float>(), x, cb, eb, s[0], s[1], T, bits, group, steps, n_grid});
  clip.resize((size_t)(s[0] * groups));
  err.resize(clip.size());
  be_.download(clip.data(), cb, clip.size() * 4);
  be_.download(err.data(), eb, err.size() * 4);
}

void AwqSession::quantize(int l, const std::vector<float>& clip, int bits, int group, std::vector<uint8_t>& codes,
                          std::vector<uint8_t>& zeros, std::vector<float>& scales) {
  if (l < 0 || l >= kLinears) fail(ErrorCode::InvalidArgument, "awq session: linear index out of range");
  if (!lin_[l].has_w) fail(ErrorCode::InvalidArgument, std::string("awq session: no weight for ") + kLinNames[l]);
  if (bits != 4 && bits != 8) fail(ErrorCode::InvalidArgument, "awq session: bits must be 4 or 8");
  if (group != 32 && group != 64 && group != 128) fail(ErrorCode::InvalidArgument, "awq session: group must be 32, 64 or 128");
  const auto s = linear_shape(l);
  if (s[1] % group) fail(ErrorCode::InvalidArgument, "awq session: input width is not a multiple of the group size");
  const int64_t groups = s[1] / group, n = s[0] * s[1];
  if (!clip.empty() && (int64_t)clip.size() != s[0] * groups)
    fail(ErrorCode::InvalidArgument, "awq session: clip must be [" + std::to_string(s[0]) + ", " + std::to_string(groups) + "]");
  float* cb = nullptr;
  if (!clip.empty()) {
    cb = scratch(21, clip.size());
    be_.upload(cb, clip.data(), clip.size() * 4);
  }
  Buffer deq(&be_, (size_t)n * 4), q(&be_, (size_t)n), z(&be_, (size_t)(s[0] * groups)), sc(&be_, (size_t)(s[0] * groups) * 4);
  be_.awq_fake_quant({lin_[l].w.as<float>(), nullptr, cb, deq.as<float>(), q.as<uint8_t>(), z.as<uint8_t>(), sc.as<float>(), s[0], s[1], bits, group});
  codes.resize((size_t)n);
  zeros.resize((size_t)(s[0] * groups));
  scales.resize(zeros.size());
  be_.download(codes.data(), q.get(), codes.size());
  be_.download(zeros.data(), z.get(), zeros.size());
  be_.download(scales.data(), sc.get(), scales.size() * 4);
  lin_[l].w = std::move(deq);
  lin_[l].dirty = true;
}

void AwqSession::pack_awq_gemm(const std::vector<uint8_t>& codes, const std::vector<uint8_t>& zeros,
                               const std::vector<float>& scales, int64_t out, int64_t in, int group,
                               std::vector<int32_t>& qweight, std::vector<int32_t>& qzeros,
                               std::vector<uint16_t>& scales16) {
  static const int kOrder[8] = {0, 2, 4, 6, 1, 3, 5, 7};
  if (out % 8 || in % group) fail(ErrorCode::InvalidArgument, "awq packing: out must be a multiple of 8 and in of the group");
  const int64_t words = out / 8, groups = in / group;
  // a word column c packs rows 8c .. 8c + 7 of every input column: walk those 8 rows together along `in`
  auto pack = [&](const uint8_t* src, int64_t cols, std::vector<int32_t>& dst) {
    dst.assign((size_t)(cols * words), 0);
    for (int64_t c = 0; c < words; c++) {
      const uint8_t* rows[8];
      for (int j = 0; j < 8; j++) rows[j] = src + (8 * c + kOrder[j]) * cols;
      for (int64_t i = 0; i < cols; i++) {
        uint32_t w = 0;
        for (int j = 0; j < 8; j++) {
          const uint8_t v = rows[j][i];
          if (v > 15) fail(ErrorCode::InvalidArgument, "awq packing: 4-bit code out of range");
          w |= (uint32_t)v << (4 * j);
        }
        dst[(size_t)(i * words + c)] = (int32_t)w;
      }
    }
  };
  pack(codes.data(), in, qweight);
  pack(zeros.data(), groups, qzeros);
  scales16.resize((size_t)(groups * out));
  for (int64_t o = 0; o < out; o++)
    for (int64_t g = 0; g < groups; g++) scales16[(size_t)(g * out + o)] = f32_to_f16(scales[(size_t)(o * groups + g)]);
}

std::vector<float> AwqSession::input() const {
  std::vector<float> out((size_t)(tokens_ * c_.hidden));
  if (!out.empty()) be_.download(out.data(), x_.get(), out.size() * 4);
  return out;
}

}  // namespace lmfleet
