// Device test of every CUDA kernel against a straightforward float64 CPU reference, on fresh random inputs
// (seed printed; pass one to reproduce), outputs poisoned first (NaN), guard regions checked.
//   nvcc -std=c++17 -arch=sm_90 -I src [-DLMF_HAVE_CUBLAS -lcublas] src/cuda/test_kernels.cu src/ops/*.cu ...
// See scripts/device-test.sh. Exit code = number of failed cases.
#include <algorithm>
#include <chrono>
#include <map>
#include <numeric>

#include "cuda/test_harness.h"
#include "ops/add.cuh"
#include "ops/argmax.cuh"
#include "ops/attention.cuh"
#include "ops/awq_clip_search.cuh"
#include "ops/awq_fake_quant.cuh"
#include "ops/channel_stats.cuh"
#include "ops/kv_quant.h"
#include "ops/embedding.cuh"
#include "ops/linear.cuh"
#include "ops/log_softmax.cuh"
#include "ops/moe.cuh"
#include "ops/nll.cuh"
#include "ops/rms_norm.cuh"
#include "ops/rope.cuh"
#include "cuda/rope_freq.h"
#include "ops/sample.cuh"
#include "ops/silu_mul.cuh"
#include "ops/sq_err.cuh"
#include "ops/w4a16_gemm.cuh"
#ifdef LMF_HAVE_CUBLAS
#include "cuda/gemm.h"
#endif

using namespace lmfleet;
using namespace lmfleet::testing;

static Table T;
static cudaStream_t S = 0;

static std::string dims(std::initializer_list<long long> d) {
  std::string s;
  for (auto x : d) s += (s.empty() ? "" : "x") + std::to_string(x);
  return s;
}

static void test_embedding(Rng& r, float scale) {
  const int vocab = 1000, hidden = 4096, n = 37;
  auto tab = r.normals((size_t)vocab * hidden);
  std::vector<int> ids(n);
  for (auto& i : ids) i = r.integer(0, vocab - 1);
  ids[5] = -1;  // invalid -> zero row
  DevBuf<half> dt(tab.size()), dout((size_t)n * hidden);
  DevBuf<int> di(n);
  dt.upload(to_half(tab));
  di.upload(ids);
  dout.poison();
  embedding_cuda(di.p, dt.p, dout.p, n, hidden, vocab, S, scale);
  auto out = to_double(dout.download());
  std::vector<double> ref((size_t)n * hidden, 0.0);
  for (int i = 0; i < n; i++)
    if (ids[i] >= 0)
      for (int c = 0; c < hidden; c++) ref[(size_t)i * hidden + c] = (double)__half2float(__float2half(tab[(size_t)ids[i] * hidden + c])) * scale;
  // scale 1: a copy, exact; else the f16 row times the scale, rounded once (Gemma's embedding scale)
  T.add(scale == 1.f ? "embedding" : "embedding*scale", dims({n, hidden}), rel_err(out, ref), scale == 1.f ? 0 : 1e-3, dout.guards_ok());
}

static void test_rms_norm(Rng& r, int rows, int cols, bool add) {
  const float eps = 1e-5f;
  auto x = r.normals((size_t)rows * cols), res = r.normals((size_t)rows * cols), w = r.normals(cols);
  for (auto& v : w) v = __half2float(__float2half(1.f + 0.3f * v));
  DevBuf<half> dx(x.size()), dres(res.size()), dw(cols), dy(x.size());
  dx.upload(to_half(x));
  dres.upload(to_half(res));
  dw.upload(to_half(w));
  dy.poison();
  if (add)
    add_rms_norm_cuda(dres.p, dx.p, dw.p, dy.p, rows, cols, eps, S);
  else
    rms_norm_cuda(dx.p, dw.p, dy.p, rows, cols, eps, S);
  auto y = to_double(dy.download());
  std::vector<double> ref(y.size()), rref(res.size());
  for (int i = 0; i < rows; i++) {
    double ss = 0;
    std::vector<double> h(cols);
    for (int c = 0; c < cols; c++) {
      const size_t k = (size_t)i * cols + c;
      h[c] = add ? (double)__half2float(__float2half(res[k] + x[k])) : x[k];
      rref[k] = h[c];
      ss += h[c] * h[c];
    }
    const double inv = 1.0 / std::sqrt(ss / cols + eps);
    for (int c = 0; c < cols; c++) ref[(size_t)i * cols + c] = h[c] * inv * w[c];
  }
  const std::string name = add ? "add_rms_norm" : "rms_norm";
  T.add(name, dims({rows, cols}), rel_err(y, ref), 2e-3, dy.guards_ok() && dres.guards_ok());
  if (add) T.add(name + ".residual", dims({rows, cols}), rel_err(to_double(dres.download()), rref), 0, dres.guards_ok());
}

static void test_silu_mul(Rng& r, Activation act, int inter) {
  const int rows = 9, ld = 2 * inter;
  auto gu = r.normals((size_t)rows * ld, 2.f);
  DevBuf<half> dg(gu.size()), dout((size_t)rows * inter);
  dg.upload(to_half(gu));
  dout.poison();
  silu_mul_cuda(dg.p, ld, dout.p, rows, inter, S, act);
  auto out = to_double(dout.download());
  std::vector<double> ref(out.size());
  for (int i = 0; i < rows; i++)
    for (int c = 0; c < inter; c++) {
      const double g = gu[(size_t)i * ld + c], u = gu[(size_t)i * ld + inter + c];
      ref[(size_t)i * inter + c] = (act == Activation::Gelu       ? 0.5 * g * (1 + std::erf(g / std::sqrt(2.0)))
                                    : act == Activation::GeluTanh ? 0.5 * g * (1 + std::tanh(std::sqrt(2 / M_PI) * (g + 0.044715 * g * g * g)))
                                                                  : g / (1 + std::exp(-g))) * u;
    }
  T.add(act == Activation::Gelu ? "gelu_mul(erf)" : act == Activation::GeluTanh ? "gelu_mul(tanh)" : "silu_mul", dims({rows, inter}),
        rel_err(out, ref), 2e-3, dout.guards_ok());
}

static void test_add(Rng& r) {
  const int n = 100003;
  auto a = r.normals(n), b = r.normals(n);
  DevBuf<half> da(n), db(n), dout(n);
  da.upload(to_half(a));
  db.upload(to_half(b));
  dout.poison();
  add_cuda(da.p, db.p, dout.p, n, S);
  auto out = to_double(dout.download());
  std::vector<double> ref(n);
  for (int i = 0; i < n; i++) ref[i] = (double)a[i] + b[i];
  T.add("add", dims({n}), rel_err(out, ref), 2e-3, dout.guards_ok());
  const int rows = 7, cols = 1000, ld = 1024;
  auto y = r.normals((size_t)rows * ld), bias = r.normals(cols);
  DevBuf<half> dy(y.size()), dbias(cols);
  dy.upload(to_half(y));
  dbias.upload(to_half(bias));
  add_bias_cuda(dy.p, ld, dbias.p, rows, cols, S);
  auto yo = to_double(dy.download());
  std::vector<double> yref(y.begin(), y.end());
  for (int i = 0; i < rows; i++)
    for (int c = 0; c < cols; c++) yref[(size_t)i * ld + c] += bias[c];
  T.add("add_bias", dims({rows, cols}) + " ld" + std::to_string(ld), rel_err(yo, yref), 2e-3, dy.guards_ok());
}

// float64 reference of y = x W^T + bias: x row i at x + i * ldx, W [n, k] row-major; row i of the result at i * ldy
// (columns n..ldy zero).
template <typename W>  // the weights: float, or double (W4Case's dequantized values)
static std::vector<double> linear_ref(const float* x, int ldx, const W* w, const float* bias, int m, int n, int k, int ldy) {
  std::vector<double> ref((size_t)m * ldy, 0.0);
  for (int i = 0; i < m; i++)
    for (int j = 0; j < n; j++) {
      double s = bias[j];
      for (int q = 0; q < k; q++) s += (double)x[(size_t)i * ldx + q] * w[(size_t)j * k + q];
      ref[(size_t)i * ldy + j] = s;
    }
  return ref;
}

static void test_gemv(Rng& r, int m, int n, int k, bool f32out) {
  const int ldx = k + 8, ldy = n + 3;
  auto x = r.normals((size_t)m * ldx), w = r.normals((size_t)n * k, 0.05f), bias = r.normals(n);
  DevBuf<half> dx(x.size()), dw(w.size()), db(n);
  dx.upload(to_half(x));
  dw.upload(to_half(w));
  db.upload(to_half(bias));
  const std::vector<double> ref = linear_ref(x.data(), ldx, w.data(), bias.data(), m, n, k, ldy);
  std::vector<double> out;
  bool guards;
  if (f32out) {
    DevBuf<float> dy((size_t)m * ldy);
    dy.poison();
    gemv_f32out_cuda(dx.p, ldx, dw.p, db.p, dy.p, ldy, m, n, k, S);
    out = to_double(dy.download());
    guards = dy.guards_ok();
  } else {
    DevBuf<half> dy((size_t)m * ldy);
    dy.poison();
    gemv_cuda(dx.p, ldx, dw.p, db.p, dy.p, ldy, m, n, k, S);
    out = to_double(dy.download());
    guards = dy.guards_ok();
  }
  // compare only the written columns; the ld padding must stay poisoned
  std::vector<double> o2, r2;
  bool pad_ok = true;
  for (int i = 0; i < m; i++)
    for (int j = 0; j < ldy; j++) {
      if (j < n) { o2.push_back(out[(size_t)i * ldy + j]); r2.push_back(ref[(size_t)i * ldy + j]); }
      else if (i < m - 1 && !std::isnan(out[(size_t)i * ldy + j])) pad_ok = false;
    }
  T.add(f32out ? "gemv_f32out" : "gemv", dims({m, n, k}), rel_err(o2, r2), f32out ? 1e-5 : 2e-3, guards && pad_ok);
}

// The fused gate_up GEMV + silu_mul (gemv_silu_cuda, decode): against a float64 reference (x W^T + b; g and u each
// rounded to f16 as the GEMV stores them; then silu(g) * u), and bit for bit against gemv_cuda + silu_mul_cuda on the
// same inputs (what CudaDecoder runs when the fusion is off). Strided x and out, out's padding must stay poisoned.
static void test_gemv_silu(Rng& r, int m, int inter, int k, bool with_bias = true) {
  const int n = 2 * inter, ldx = k + 8, ldo = inter + 3;
  auto x = r.normals((size_t)m * ldx), w = r.normals((size_t)n * k, 0.05f), bias = r.normals(n);
  if (!with_bias) std::fill(bias.begin(), bias.end(), 0.f);
  DevBuf<half> dx(x.size()), dw(w.size()), db(n), dout((size_t)m * ldo), dgu((size_t)m * n), dtwo((size_t)m * inter);
  dx.upload(to_half(x));
  dw.upload(to_half(w));
  db.upload(to_half(bias));
  dout.poison();
  dgu.poison();
  dtwo.poison();
  const half* bp = with_bias ? db.p : nullptr;
  gemv_silu_cuda(dx.p, ldx, dw.p, bp, dout.p, ldo, m, inter, k, S);
  gemv_cuda(dx.p, ldx, dw.p, bp, dgu.p, n, m, n, k, S);
  silu_mul_cuda(dgu.p, n, dtwo.p, m, inter, S);
  const std::vector<half> out = dout.download(), two = dtwo.download();
  const std::vector<double> gu = linear_ref(x.data(), ldx, w.data(), bias.data(), m, n, k, n);
  std::vector<double> o2, r2;
  bool pad_ok = true;
  size_t diff = 0;
  for (int i = 0; i < m; i++)
    for (int j = 0; j < ldo; j++) {
      const half v = out[(size_t)i * ldo + j];
      if (j < inter) {
        const double g = __half2float(__float2half((float)gu[(size_t)i * n + j]));
        const double u = __half2float(__float2half((float)gu[(size_t)i * n + inter + j]));
        o2.push_back(__half2float(v));
        r2.push_back(g / (1 + std::exp(-g)) * u);
        diff += std::memcmp(&v, &two[(size_t)i * inter + j], sizeof(half)) != 0;
      } else if (!std::isnan(__half2float(v))) {
        pad_ok = false;
      }
    }
  const bool guards = dout.guards_ok() && dgu.guards_ok() && dtwo.guards_ok();
  T.add("gemv_silu", dims({m, inter, k}) + (with_bias ? "" : " nobias"), rel_err(o2, r2), 2e-3, guards && pad_ok && diff == 0,
        diff ? std::to_string(diff) + " outputs differ from gemv + silu_mul" : pad_ok ? "" : "padding written");
}

// qk_norm: Qwen3's per-head RMSNorm of every q and k head (random weights) before the rotation, reference in float64
static void test_rope(Rng& r, const std::string& type, int rot_dim, bool qk_norm = false) {
  const int ntok = 19, nh = 8, nkv = 2, hd = 128, bs = 16, nblocks = 8;
  const int ld = (nh + 2 * nkv) * hd;
  RopeFreqParams p;
  p.type = type;
  p.theta = type == "llama3" ? 500000.0 : 10000.0;
  p.factor = type == "default" ? 1.0 : (type == "llama3" ? 8.0 : 2.0);
  p.original_max_position = type == "llama3" ? 8192 : 2048;
  p.rot_dim = rot_dim;
  auto inv = rope_inv_freq_table(p, 6000);
  auto qkv = r.normals((size_t)ntok * ld);
  std::vector<int> pos(ntok), slots(nblocks * bs);
  for (auto& x : pos) x = r.integer(0, 8000);
  std::iota(slots.begin(), slots.end(), 0);
  std::shuffle(slots.begin(), slots.end(), r.gen);
  slots.resize(ntok);
  slots[3] = -1;  // not stored
  DevBuf<half> dq(qkv.size()), dk((size_t)nblocks * nkv * bs * hd), dv(dk.n);
  DevBuf<int> dp(ntok), ds(ntok);
  DevBuf<float> df(inv.size());
  dq.upload(to_half(qkv));
  dp.upload(pos);
  ds.upload(slots);
  df.upload(inv);
  dk.poison();
  dv.poison();
  const float eps = 1e-6f;
  std::vector<float> qw, kw;  // f16-exact values: the kernel's weights are f16
  DevBuf<half> dqw(hd), dkw(hd);
  QkNormArgs qn;
  if (qk_norm) {
    for (int d = 0; d < hd; d++)
      qw.push_back(__half2float(__float2half(1.f + 0.2f * r.normal()))), kw.push_back(__half2float(__float2half(1.f + 0.2f * r.normal())));
    dqw.upload(to_half(qw));
    dkw.upload(to_half(kw));
    qn = QkNormArgs{dqw.p, dkw.p, eps};
  }
  rope_kv_store_cuda(dq.p, ld, dp.p, df.p, 0, rot_dim, ntok, nh, nkv, hd, dk.p, dv.p, ds.p, bs, S, KvQuantArgs(), qn);
  auto oq = to_double(dq.download());
  auto ok = to_double(dk.download()), ov = to_double(dv.download());
  std::vector<double> ref = to_double(qkv);  // f16-exact: what the kernel reads
  if (qk_norm)
    for (int t = 0; t < ntok; t++)
      for (int h = 0; h < nh + nkv; h++) {
        double* x = &ref[(size_t)t * ld + h * hd];
        double ss = 0;
        for (int d = 0; d < hd; d++) ss += x[d] * x[d];
        const double inv = 1.0 / std::sqrt(ss / hd + eps);
        for (int d = 0; d < hd; d++) x[d] *= inv * (h < nh ? qw[d] : kw[d]);
      }
  for (int t = 0; t < ntok; t++)
    for (int h = 0; h < nh + nkv; h++)
      for (int i = 0; i < rot_dim / 2; i++) {
        const double ang = (double)((float)pos[t] * inv[i]);  // f32 product, like HF
        const size_t a = (size_t)t * ld + h * hd + i, b = a + rot_dim / 2;
        const double x1 = ref[a], x2 = ref[b];
        ref[a] = x1 * std::cos(ang) - x2 * std::sin(ang);
        ref[b] = x2 * std::cos(ang) + x1 * std::sin(ang);
      }
  const std::string shape = type + " rot" + std::to_string(rot_dim) + " " + dims({ntok, nh, nkv, hd}) + (qk_norm ? " qk_norm" : "");
  T.add("rope", shape, rel_err(oq, ref), 2e-3, dq.guards_ok());
  // cache: stored slots hold rotated k / v; every other slot is still poison
  std::vector<double> cout, cref;
  bool untouched_ok = true;
  std::vector<int> slot_tok(nblocks * bs, -1);
  for (int t = 0; t < ntok; t++)
    if (slots[t] >= 0) slot_tok[slots[t]] = t;
  for (int sl = 0; sl < nblocks * bs; sl++)
    for (int h = 0; h < nkv; h++)
      for (int d = 0; d < hd; d++) {
        const size_t ci = ((size_t)sl * nkv + h) * hd + d;
        const int t = slot_tok[sl];
        if (t < 0) {
          untouched_ok &= std::isnan(ok[ci]) && std::isnan(ov[ci]);
          continue;
        }
        cout.push_back(ok[ci]);
        cref.push_back(ref[(size_t)t * ld + (nh + h) * hd + d]);
        cout.push_back(ov[ci]);
        cref.push_back(qkv[(size_t)t * ld + (nh + nkv + h) * hd + d]);
      }
  T.add("rope.kv_store", shape, rel_err(cout, cref), 2e-3, dk.guards_ok() && dv.guards_ok() && untouched_ok,
        untouched_ok ? "" : "wrote outside its slots");
}

// rope + KV store into an int8 / int4 cache (online per-row scales, or calibrated fixed ones): every stored row
// dequantizes to the float64 rotated k / v within 0.6 of its quantization step (0.5 for rounding, the rest for
// the f16 rounding of the rotated values before quantization); rows of unused slots keep their poison.
static void test_rope_kv_quant(Rng& r, int policy, bool calibrated) {
  const int ntok = 13, nh = 4, nkv = 2, hd = 128, bs = 16, nblocks = 4, rot_dim = 128;
  const int ld = (nh + 2 * nkv) * hd, nslots = nblocks * bs, rb = (int)kv_quant_row_bytes(policy, hd);
  const int qmax = kv_quant_qmax(policy);
  RopeFreqParams p;
  p.rot_dim = rot_dim;
  auto inv = rope_inv_freq_table(p, 4000);
  auto qkv = r.normals((size_t)ntok * ld);
  std::vector<int> pos(ntok), slots(nslots);
  for (auto& x : pos) x = r.integer(0, 3000);
  std::iota(slots.begin(), slots.end(), 0);
  std::shuffle(slots.begin(), slots.end(), r.gen);
  slots.resize(ntok);
  slots[5] = -1;
  std::vector<float> stat(2 * nkv * 2);  // k then v, per head (scale, zero): range [-2.5, 2.5], some values clip
  for (int i = 0; i < 2 * nkv; i++) { stat[2 * i] = 5.f / qmax; stat[2 * i + 1] = -2.5f; }
  DevBuf<half> dq(qkv.size());
  DevBuf<unsigned char> dk((size_t)nslots * nkv * rb), dv(dk.n);
  DevBuf<float> dkp((size_t)nslots * nkv * 2), dvp(dkp.n), dstat(stat.size()), df(inv.size());
  DevBuf<int> dp(ntok), ds(ntok);
  dq.upload(to_half(qkv));
  dp.upload(pos);
  ds.upload(slots);
  df.upload(inv);
  dstat.upload(stat);
  dk.poison(); dv.poison(); dkp.poison(); dvp.poison();
  KvQuantArgs qa;
  qa.policy = policy;
  qa.k_param = dkp.p;
  qa.v_param = dvp.p;
  if (calibrated) { qa.k_static = dstat.p; qa.v_static = dstat.p + 2 * nkv; }
  rope_kv_store_cuda(dq.p, ld, dp.p, df.p, 0, rot_dim, ntok, nh, nkv, hd, reinterpret_cast<half*>(dk.p),
                     reinterpret_cast<half*>(dv.p), ds.p, bs, S, qa);
  auto kb = dk.download(), vb = dv.download();
  auto kp = dkp.download(), vp = dvp.download();
  double worst = 0;
  bool untouched_ok = true;
  std::vector<int> slot_tok(nslots, -1);
  for (int t = 0; t < ntok; t++) if (slots[t] >= 0) slot_tok[slots[t]] = t;
  for (int sl = 0; sl < nslots; sl++)
    for (int h = 0; h < nkv; h++) {
      const size_t row = (size_t)sl * nkv + h;
      const int t = slot_tok[sl];
      if (t < 0) { untouched_ok &= std::isnan(kp[2 * row]) && std::isnan(vp[2 * row + 1]); continue; }
      for (int kv = 0; kv < 2; kv++) {
        // float64 reference of the stored row: rotated k, or v
        std::vector<double> x(hd);
        const float* src = &qkv[(size_t)t * ld + (nh + kv * nkv + h) * hd];
        for (int d = 0; d < hd; d++) x[d] = src[d];
        if (kv == 0)
          for (int i = 0; i < rot_dim / 2; i++) {
            const double ang = (double)((float)pos[t] * inv[i]);
            const double x1 = src[i], x2 = src[i + rot_dim / 2];
            x[i] = x1 * std::cos(ang) - x2 * std::sin(ang);
            x[i + rot_dim / 2] = x2 * std::cos(ang) + x1 * std::sin(ang);
          }
        const auto& bytes = kv ? vb : kb;
        const auto& par = kv ? vp : kp;
        const double scale = par[2 * row], zero = par[2 * row + 1];
        double mn = 1e300, mx = -1e300;
        for (double v : x) { mn = std::min(mn, v); mx = std::max(mx, v); }
        const double want_scale = calibrated ? stat[2 * (kv * nkv + h)] : (mx - mn) / qmax;
        const double want_zero = calibrated ? stat[2 * (kv * nkv + h) + 1] : mn;
        worst = std::max(worst, std::fabs(scale - want_scale) / want_scale * 10);  // params: within 5% of a step
        worst = std::max(worst, std::fabs(zero - want_zero) / want_scale * 10);
        for (int d = 0; d < hd; d++) {
          const int qv = policy == 8 ? bytes[row * rb + d] : (bytes[row * rb + d / 2] >> ((d & 1) * 4)) & 15;
          const double deq = qv * scale + zero;
          const double target = std::min(std::max(x[d], want_zero), want_zero + qmax * want_scale);  // clipped
          worst = std::max(worst, std::fabs(deq - target) / want_scale);
        }
      }
    }
  T.add(std::string("rope.kv_store int") + std::to_string(policy) + (calibrated ? " calibrated" : " online"),
        dims({ntok, nh, nkv, hd}) + " (err in steps)", worst, 0.6,
        dk.guards_ok() && dv.guards_ok() && dkp.guards_ok() && dvp.guards_ok() && untouched_ok,
        untouched_ok ? "" : "wrote outside its slots");
}

// Paged cache filled with random k/v for `ctx` tokens per sequence through shuffled block tables.
struct PagedCache {
  int nkv, hd, bs, max_blocks, nblocks;
  std::vector<float> k, v;
  std::vector<int> bt;
  const float* krow(int b, int t, int h) const {
    return &k[(((size_t)bt[b * max_blocks + t / bs] * bs + t % bs) * nkv + h) * hd];
  }
  const float* vrow(int b, int t, int h) const {
    return &v[(((size_t)bt[b * max_blocks + t / bs] * bs + t % bs) * nkv + h) * hd];
  }
};

static PagedCache make_cache(Rng& r, int batch, int max_ctx, int nkv, int hd, int bs) {
  PagedCache c{nkv, hd, bs, (max_ctx + bs - 1) / bs, 0, {}, {}, {}};
  c.nblocks = batch * c.max_blocks + 3;
  c.k = r.normals((size_t)c.nblocks * nkv * bs * hd);
  c.v = r.normals(c.k.size());
  std::vector<int> perm(c.nblocks);
  std::iota(perm.begin(), perm.end(), 0);
  std::shuffle(perm.begin(), perm.end(), r.gen);
  c.bt.assign(perm.begin(), perm.begin() + batch * c.max_blocks);
  return c;
}

// Host quantization of every row of a paged cache (ops/kv_quant.h, online per-row scales, as the kernels store
// them); the cache's float values are replaced by what the rows stand for, so the float64 reference attends over
// exactly the values the kernel must dequantize.
struct QuantCache {
  std::vector<unsigned char> kb, vb;
  std::vector<float> kp, vp;
};
static QuantCache quantize_cache(PagedCache& c, int policy) {
  QuantCache q;
  const size_t rows = c.k.size() / c.hd;
  const int rb = (int)kv_quant_row_bytes(policy, c.hd), qmax = kv_quant_qmax(policy);
  for (int kv = 0; kv < 2; kv++) {
    auto& x = kv ? c.v : c.k;
    auto& bytes = kv ? q.vb : q.kb;
    auto& par = kv ? q.vp : q.kp;
    bytes.assign(rows * rb, 0);
    par.resize(rows * 2);
    for (size_t row = 0; row < rows; row++) {
      float* v = &x[row * c.hd];
      float mn = v[0], mx = v[0];
      for (int d = 1; d < c.hd; d++) { mn = std::min(mn, v[d]); mx = std::max(mx, v[d]); }
      float scale, zero;
      kv_quant_params(mn, mx, policy, &scale, &zero);
      const float inv = kv_quant_inv_scale(scale);
      for (int d = 0; d < c.hd; d++) {
        const int qv = kv_quant_one(v[d], inv, zero, qmax);
        if (policy == 8) bytes[row * rb + d] = (unsigned char)qv;
        else bytes[row * rb + d / 2] |= (unsigned char)(qv << ((d & 1) * 4));
        v[d] = kv_dequant_one(qv, scale, zero);
      }
      par[2 * row] = scale;
      par[2 * row + 1] = zero;
    }
  }
  return q;
}

// window > 0: keys (qpos - window, qpos] only (sliding-window attention); softcap > 0: scores x -> softcap tanh(x / softcap)
static void attention_ref(const PagedCache& c, int b, const float* qrow, int qpos, int nh, double scale, double* out,
                          int window = 0, double softcap = 0) {
  const int g = nh / c.nkv, lo = window > 0 ? std::max(0, qpos + 1 - window) : 0;
  for (int h = 0; h < nh; h++) {
    const int kvh = h / g;
    std::vector<double> s(qpos + 1, 0.0);
    double mx = -1e300;
    for (int t = lo; t <= qpos; t++) {
      const float* kr = c.krow(b, t, kvh);
      double d = 0;
      for (int i = 0; i < c.hd; i++) d += (double)qrow[h * c.hd + i] * kr[i];
      s[t] = d * scale;
      if (softcap > 0) s[t] = softcap * std::tanh(s[t] / softcap);
      mx = std::max(mx, s[t]);
    }
    double sum = 0;
    for (int t = lo; t <= qpos; t++) sum += (s[t] = std::exp(s[t] - mx));
    for (int i = 0; i < c.hd; i++) {
      double o = 0;
      for (int t = lo; t <= qpos; t++) o += s[t] * c.vrow(b, t, kvh)[i];
      out[h * c.hd + i] = o / sum;
    }
  }
}

// splits: the grid's splits per sequence (0: one more than the longest context needs, which must be harmless)
static void test_attention_decode(Rng& r, std::vector<int> ctx, int nh, int nkv, int hd, int split_len, int qp = 0,
                                  int splits = 0, int window = 0, float softcap = 0.f) {
  const int batch = (int)ctx.size(), bs = 16;
  const int max_ctx = *std::max_element(ctx.begin(), ctx.end());
  const int max_splits = splits ? splits : (max_ctx + split_len - 1) / split_len + 1;
  auto c = make_cache(r, batch, max_ctx, nkv, hd, bs);
  QuantCache qc;
  if (qp) qc = quantize_cache(c, qp);
  DevBuf<unsigned char> dkb(qp ? qc.kb.size() : 1), dvb(qp ? qc.vb.size() : 1);
  DevBuf<float> dkp(qp ? qc.kp.size() : 1), dvp(qp ? qc.vp.size() : 1);
  if (qp) { dkb.upload(qc.kb); dvb.upload(qc.vb); dkp.upload(qc.kp); dvp.upload(qc.vp); }
  const int ldq = (nh + 2 * nkv) * hd, ldo = nh * hd + 8;
  auto q = r.normals((size_t)batch * ldq);
  DevBuf<half> dq(q.size()), dk(c.k.size()), dv(c.v.size()), dout((size_t)batch * ldo);
  DevBuf<int> dbt(c.bt.size()), dctx(batch);
  DevBuf<unsigned char> ws(attention_decode_workspace_bytes(batch, nh, hd, max_splits));
  dq.upload(to_half(q));
  dk.upload(to_half(c.k));
  dv.upload(to_half(c.v));
  dbt.upload(c.bt);
  dctx.upload(ctx);
  dout.poison();
  const double scale = 1.0 / std::sqrt((double)hd);
  if (qp)
    attention_decode_cuda(dq.p, ldq, reinterpret_cast<const half*>(dkb.p), reinterpret_cast<const half*>(dvb.p), dbt.p,
                          c.max_blocks, dctx.p, dout.p, ldo, batch, nh, nkv, hd, bs, (float)scale, split_len,
                          max_splits, ws.p, S, qp, dkp.p, dvp.p, window, true, softcap);
  else
    attention_decode_cuda(dq.p, ldq, dk.p, dv.p, dbt.p, c.max_blocks, dctx.p, dout.p, ldo, batch, nh, nkv, hd, bs,
                          (float)scale, split_len, max_splits, ws.p, S, 0, nullptr, nullptr, window, true, softcap);
  auto out = to_double(dout.download());
  std::vector<double> o2, r2(nh * hd);
  std::vector<double> ref;
  for (int b = 0; b < batch; b++) {
    attention_ref(c, b, &q[(size_t)b * ldq], ctx[b] - 1, nh, scale, r2.data(), window, softcap);
    ref.insert(ref.end(), r2.begin(), r2.end());
    o2.insert(o2.end(), out.begin() + (size_t)b * ldo, out.begin() + (size_t)b * ldo + nh * hd);
  }
  std::string cs;
  for (auto x : ctx) cs += (cs.empty() ? "" : ",") + std::to_string(x);
  const std::string name = std::string(attn_online() ? "attention_decode(online)" : "attention_decode") +
                           (qp ? " int" + std::to_string(qp) : "");
  T.add(name, "ctx " + cs + " h" + std::to_string(nh) + "/" + std::to_string(nkv) + " d" +
        std::to_string(hd) + " split" + std::to_string(split_len) + "x" + std::to_string(max_splits) +
        (window ? " window " + std::to_string(window) : "") + (softcap > 0 ? " softcap " + std::to_string(softcap).substr(0, 4) : ""),
        rel_err(o2, ref), 3e-3, dout.guards_ok());
}

static void test_attention_prefill(Rng& r, std::vector<int> qlens, std::vector<int> hist, int nh, int nkv, int hd,
                                   int qp = 0, int window = 0, float softcap = 0.f) {
  const int nseq = (int)qlens.size(), bs = 16;
  std::vector<int> ctx(nseq), qstart(nseq);
  int ntok = 0, max_ctx = 0, max_q = 0;
  for (int i = 0; i < nseq; i++) {
    ctx[i] = qlens[i] + hist[i];
    qstart[i] = ntok;
    ntok += qlens[i];
    max_ctx = std::max(max_ctx, ctx[i]);
    max_q = std::max(max_q, qlens[i]);
  }
  auto c = make_cache(r, nseq, max_ctx, nkv, hd, bs);
  QuantCache qc;
  if (qp) qc = quantize_cache(c, qp);
  DevBuf<unsigned char> dkb(qp ? qc.kb.size() : 1), dvb(qp ? qc.vb.size() : 1);
  DevBuf<float> dkp(qp ? qc.kp.size() : 1), dvp(qp ? qc.vp.size() : 1);
  if (qp) { dkb.upload(qc.kb); dvb.upload(qc.vb); dkp.upload(qc.kp); dvp.upload(qc.vp); }
  const int ldq = (nh + 2 * nkv) * hd, ldo = nh * hd;
  auto q = r.normals((size_t)ntok * ldq);
  DevBuf<half> dq(q.size()), dk(c.k.size()), dv(c.v.size()), dout((size_t)ntok * ldo);
  DevBuf<int> dbt(c.bt.size()), dctx(nseq), dqs(nseq), dql(nseq);
  dq.upload(to_half(q));
  dk.upload(to_half(c.k));
  dv.upload(to_half(c.v));
  dbt.upload(c.bt);
  dctx.upload(ctx);
  dqs.upload(qstart);
  dql.upload(qlens);
  dout.poison();
  const double scale = 1.0 / std::sqrt((double)hd);
  if (qp)
    attention_prefill_cuda(dq.p, ldq, reinterpret_cast<const half*>(dkb.p), reinterpret_cast<const half*>(dvb.p), dbt.p,
                           c.max_blocks, dqs.p, dql.p, dctx.p, dout.p, ldo, nseq, max_q, nh, nkv, hd, bs, (float)scale,
                           S, qp, dkp.p, dvp.p, window, softcap);
  else
    attention_prefill_cuda(dq.p, ldq, dk.p, dv.p, dbt.p, c.max_blocks, dqs.p, dql.p, dctx.p, dout.p, ldo, nseq, max_q,
                           nh, nkv, hd, bs, (float)scale, S, 0, nullptr, nullptr, window, softcap);
  auto out = to_double(dout.download());
  std::vector<double> ref((size_t)ntok * ldo);
  for (int b = 0; b < nseq; b++)
    for (int i = 0; i < qlens[b]; i++)
      attention_ref(c, b, &q[(size_t)(qstart[b] + i) * ldq], hist[b] + i, nh, scale, &ref[(size_t)(qstart[b] + i) * ldo],
                    window, softcap);
  std::string cs;
  for (int i = 0; i < nseq; i++) cs += (cs.empty() ? "" : ",") + std::to_string(qlens[i]) + "+" + std::to_string(hist[i]);
  T.add(std::string(g_attention_prefill_impl || qp || (hd != 64 && hd != 128) ? "attention_prefill(fa2)" : "attention_prefill(wmma)") +
        (qp ? " int" + std::to_string(qp) : ""), "q+hist " + cs + " h" + std::to_string(nh) + "/" + std::to_string(nkv) + " d" +
        std::to_string(hd) + (window ? " window " + std::to_string(window) : "") +
        (softcap > 0 ? " softcap " + std::to_string(softcap).substr(0, 4) : ""), rel_err(out, ref), 5e-3, dout.guards_ok());
}

static std::vector<float> random_logits(Rng& r, size_t n, float sd) {
  std::vector<float> v(n);
  for (auto& x : v) x = r.normal(sd);
  return v;
}

static double ref_logsoftmax_at(const float* x, int vocab, int idx) {
  double mx = -1e300, s = 0;
  for (int i = 0; i < vocab; i++) mx = std::max(mx, (double)x[i]);
  for (int i = 0; i < vocab; i++) s += std::exp(x[i] - mx);
  return x[idx] - mx - std::log(s);
}

static void test_argmax(Rng& r) {
  const int batch = 7, vocab = 32000, ld = 32008;
  auto x = random_logits(r, (size_t)batch * ld, 3.f);
  x[(size_t)2 * ld + 17] = 100.f;  // ties: first index wins
  x[(size_t)2 * ld + 900] = 100.f;
  DevBuf<float> dx(x.size()), dlp(batch);
  DevBuf<int> dout(batch);
  dx.upload(x);
  dout.poison();
  dlp.poison();
  argmax_cuda(dx.p, ld, vocab, batch, dout.p, dlp.p, S);
  auto out = dout.download();
  auto lp = dlp.download();
  int wrong = 0;
  std::vector<double> lpo, lpr;
  for (int b = 0; b < batch; b++) {
    const float* row = &x[(size_t)b * ld];
    const int ref = (int)(std::max_element(row, row + vocab) - row);
    wrong += out[b] != ref;
    lpo.push_back(lp[b]);
    lpr.push_back(ref_logsoftmax_at(row, vocab, ref));
  }
  T.add("argmax", dims({batch, vocab}), wrong, 0, dout.guards_ok(), std::to_string(wrong) + " wrong ids");
  T.add("argmax.logprob", dims({batch, vocab}), rel_err(to_double(lp), lpr), 1e-5, dlp.guards_ok());
}

// HF semantics on the CPU: probabilities after temperature, top-k, top-p, min-p (float64).
static std::vector<double> ref_sample_probs(const float* x, int vocab, float temp, int topk, float topp, float minp = 0.f) {
  std::vector<int> idx(vocab);
  std::iota(idx.begin(), idx.end(), 0);
  std::stable_sort(idx.begin(), idx.end(), [&](int a, int b) { return x[a] > x[b]; });
  std::vector<bool> keep(vocab, true);
  if (topk > 0 && topk < vocab) {
    const float kth = x[idx[topk - 1]];
    for (int i = 0; i < vocab; i++) keep[i] = x[i] >= kth;
  }
  const double mx = x[idx[0]];
  std::vector<double> p(vocab, 0.0);
  double z = 0;
  for (int i = 0; i < vocab; i++)
    if (keep[i]) z += (p[i] = std::exp((x[i] - mx) / temp));
  for (auto& v : p) v /= z;
  if (topp > 0 && topp < 1) {
    double above = 0;
    for (int j = 0; j < vocab; j++) {
      const int i = idx[j];
      if (!keep[i]) continue;
      if (above >= topp) keep[i] = false;
      above += p[i];
    }
    z = 0;
    for (int i = 0; i < vocab; i++) z += keep[i] ? p[i] : 0;
    for (int i = 0; i < vocab; i++) p[i] = keep[i] ? p[i] / z : 0;
  }
  if (minp > 0) {
    // relative to the largest probability: exp((x - max) / T) >= min_p
    z = 0;
    for (int i = 0; i < vocab; i++) {
      if (keep[i] && std::exp((x[i] - mx) / temp) < minp) keep[i] = false;
      z += keep[i] ? p[i] : 0;
    }
    for (int i = 0; i < vocab; i++) p[i] = keep[i] ? p[i] / z : 0;
  }
  return p;
}

struct SampleDev {
  DevBuf<float> temp, topp, minp;
  DevBuf<int> topk;
  DevBuf<uint64_t> seed, counter;
  bool with_minp = false;  // minp uploaded: pass it (else nullptr, min-p off)
  SampleDev(int batch) : temp(batch), topp(batch), minp(batch), topk(batch), seed(batch), counter(batch) {}
  SampleParamsDevice params() { return {temp.p, topk.p, topp.p, seed.p, counter.p, nullptr, with_minp ? minp.p : nullptr}; }
};

static void test_sample(Rng& r) {
  // (a) greedy and top-k=1 equal arg-max (the first index of the maximum): a vocab the 16-byte loads take whole, one
  // with a scalar tail (and rows not 16-byte aligned), Qwen's; greedy rows 1 and 2 hold the maximum twice (top-k = 1
  // keeps ties, so the sampled rows 3..5 must not)
  for (int vocab : {32000, 32003, 151936}) {
    const int batch = 6;
    auto x = random_logits(r, (size_t)batch * vocab, 3.f);
    for (int b : {1, 2}) {
      float* row = &x[(size_t)b * vocab];
      const int m = (int)(std::max_element(row, row + vocab) - row);
      row[(m + vocab / 2) % vocab] = row[m];
    }
    SampleDev sd(batch);
    std::vector<float> temp = {0.f, 0.f, 0.f, 1.f, 0.7f, 1.3f}, topp(batch, 1.f);
    std::vector<int> topk = {0, 0, 0, 1, 1, 1};
    std::vector<uint64_t> seed(batch), ctr(batch, 0);
    for (auto& s : seed) s = r.gen();
    sd.temp.upload(temp); sd.topp.upload(topp); sd.topk.upload(topk); sd.seed.upload(seed); sd.counter.upload(ctr);
    DevBuf<float> dx(x.size());
    DevBuf<int> dout(batch);
    dx.upload(x);
    dout.poison();
    sample_cuda(dx.p, vocab, vocab, batch, sd.params(), dout.p, nullptr, S);
    auto out = dout.download();
    auto c2 = sd.counter.download();
    int wrong = 0;
    for (int b = 0; b < batch; b++) {
      const float* row = &x[(size_t)b * vocab];
      wrong += out[b] != (int)(std::max_element(row, row + vocab) - row);
      wrong += c2[b] != 1;
    }
    T.add("sample.greedy_topk1", dims({batch, vocab}), wrong, 0, dout.guards_ok(), std::to_string(wrong) + " wrong");
  }
  // (a2) guided decoding's token mask (token_mask_cuda) against the same masking on the host: rows 0, 2, 4 masked (about
  // 1 token in 20 allowed), 1, 3, 5 not (mask_row -1); then greedy rows 0..3 equal the host's arg-max of the masked row,
  // and the sampled rows 4 and 5 draw an allowed token
  for (int vocab : {32003, 151936}) {
    const int batch = 6, words = (vocab + 31) / 32;
    auto x = random_logits(r, (size_t)batch * vocab, 3.f);
    std::vector<uint32_t> masks((size_t)3 * words, 0u);
    for (int k = 0; k < 3; k++) {
      for (int t = 0; t < vocab; t++)
        if (r.gen() % 20 == 0) masks[(size_t)k * words + t / 32] |= 1u << (t % 32);
      masks[(size_t)k * words + (vocab - 1) / 32] |= 1u << ((vocab - 1) % 32);  // the last token (a partial word)
    }
    std::vector<int> mask_row = {0, -1, 1, -1, 2, -1};
    DevBuf<float> dx(x.size());
    DevBuf<uint32_t> dm(masks.size());
    DevBuf<int> dmr(batch), dout(batch);
    dx.upload(x);
    dm.upload(masks);
    dmr.upload(mask_row);
    dout.poison();
    token_mask_cuda(dx.p, vocab, vocab, batch, dm.p, words, dmr.p, S);
    auto xm = dx.download();
    SampleDev sd(batch);
    std::vector<float> temp = {0.f, 0.f, 0.f, 0.f, 1.f, 1.f}, topp(batch, 1.f);
    std::vector<int> topk(batch, 0);
    std::vector<uint64_t> seed(batch), ctr(batch, 0);
    for (auto& v : seed) v = r.gen();
    sd.temp.upload(temp); sd.topp.upload(topp); sd.topk.upload(topk); sd.seed.upload(seed); sd.counter.upload(ctr);
    sample_cuda(dx.p, vocab, vocab, batch, sd.params(), dout.p, nullptr, S);
    auto out = dout.download();
    int wrong = 0;
    for (int b = 0; b < batch; b++) {
      std::vector<float> ref(&x[(size_t)b * vocab], &x[(size_t)(b + 1) * vocab]);
      const uint32_t* m = mask_row[b] >= 0 ? &masks[(size_t)mask_row[b] * words] : nullptr;
      for (int t = 0; m && t < vocab; t++)
        if (!((m[t / 32] >> (t % 32)) & 1u)) ref[t] = -INFINITY;
      for (int t = 0; t < vocab; t++) wrong += !(xm[(size_t)b * vocab + t] == ref[t]);
      if (temp[b] > 0.f) wrong += out[b] < 0 || out[b] >= vocab || (m && !((m[out[b] / 32] >> (out[b] % 32)) & 1u));
      else wrong += out[b] != (int)(std::max_element(ref.begin(), ref.end()) - ref.begin());
    }
    T.add("sample.token_mask", dims({batch, vocab}), wrong, 0, dx.guards_ok() && dout.guards_ok(), std::to_string(wrong) + " wrong");
  }
  // (a3) logit_bias_cuda: distinct (row, id) entries, values in [-100, 100] and -inf (min_tokens' ban), against the same
  // float adds on the host
  {
    const int batch = 5, vocab = 32003, n = 300;
    auto x = random_logits(r, (size_t)batch * vocab, 3.f);
    std::vector<int> rows, ids;
    std::vector<float> vals;
    std::vector<char> used((size_t)batch * vocab, 0);
    while ((int)rows.size() < n) {
      const int b = (int)(r.gen() % batch), t = (int)(r.gen() % vocab);
      if (used[(size_t)b * vocab + t]) continue;
      used[(size_t)b * vocab + t] = 1;
      rows.push_back(b);
      ids.push_back(t);
      vals.push_back(rows.size() % 7 == 0 ? -INFINITY : (float)((double)(r.gen() % 20001) / 100.0 - 100.0));
    }
    DevBuf<float> dx(x.size()), dv(n);
    DevBuf<int> dr(n), di(n);
    dx.upload(x);
    dr.upload(rows);
    di.upload(ids);
    dv.upload(vals);
    logit_bias_cuda(dx.p, vocab, dr.p, di.p, dv.p, n, S);
    auto got = dx.download();
    for (int i = 0; i < n; i++) x[(size_t)rows[i] * vocab + ids[i]] += vals[i];
    int wrong = 0;
    for (size_t i = 0; i < x.size(); i++) wrong += !(got[i] == x[i]);
    T.add("sample.logit_bias", dims({batch, vocab}), wrong, 0, dx.guards_ok(), std::to_string(wrong) + " wrong");
  }
  // (b) distribution: many independent draws (different seeds) of one row vs the HF-semantics probabilities
  struct Case { int vocab; float temp; int topk; float topp; float minp = 0.f; };
  for (Case cs : {Case{64, 0.7f, 20, 0.8f}, Case{64, 1.0f, 0, 0.5f}, Case{64, 1.5f, 10, 1.f}, Case{1000, 1.f, 0, 0.9f},
                  Case{64, 1.2f, 0, 1.f, 0.1f}, Case{64, 1.5f, 20, 0.9f, 0.05f}, Case{1000, 1.f, 0, 1.f, 0.2f}}) {
    const int draws = 16384, vocab = cs.vocab;
    auto row = random_logits(r, vocab, 1.5f);
    std::vector<float> x((size_t)draws * vocab);
    for (int b = 0; b < draws; b++) std::copy(row.begin(), row.end(), x.begin() + (size_t)b * vocab);
    SampleDev sd(draws);
    std::vector<float> temp(draws, cs.temp), topp(draws, cs.topp);
    std::vector<int> topk(draws, cs.topk);
    std::vector<uint64_t> seed(draws), ctr(draws);
    for (int b = 0; b < draws; b++) { seed[b] = r.gen(); ctr[b] = r.gen() % 1000; }
    sd.temp.upload(temp); sd.topp.upload(topp); sd.topk.upload(topk); sd.seed.upload(seed); sd.counter.upload(ctr);
    if (cs.minp > 0.f) sd.minp.upload(std::vector<float>(draws, cs.minp)), sd.with_minp = true;
    DevBuf<float> dx(x.size());
    DevBuf<int> dout(draws), dout2(draws);
    dx.upload(x);
    dout.poison();
    sample_cuda(dx.p, vocab, vocab, draws, sd.params(), dout.p, nullptr, S);
    auto out = dout.download();
    sd.counter.upload(ctr);  // same seeds and counters again: same tokens
    dout2.poison();
    sample_cuda(dx.p, vocab, vocab, draws, sd.params(), dout2.p, nullptr, S);
    auto out2 = dout2.download();
    auto p = ref_sample_probs(row.data(), vocab, cs.temp, cs.topk, cs.topp, cs.minp);
    std::vector<double> hist(vocab, 0);
    int outside = 0, nondet = 0;
    for (int b = 0; b < draws; b++) {
      if (out[b] < 0 || out[b] >= vocab || p[out[b]] == 0) { outside++; continue; }
      hist[out[b]] += 1.0 / draws;
      nondet += out[b] != out2[b];
    }
    double tv = 0;
    for (int i = 0; i < vocab; i++) tv += 0.5 * std::fabs(hist[i] - p[i]);
    char shape[112];
    std::snprintf(shape, sizeof shape, "V%d T%.1f k%d p%.1f minp %.2f %d draws", vocab, cs.temp, cs.topk, cs.topp, cs.minp, draws);
    const double bound = vocab <= 64 ? 0.03 : 0.08;  // sampling noise ~ sqrt(V/draws)/2
    T.add("sample.distribution", shape, outside || nondet ? INFINITY : tv, bound, dout.guards_ok(),
          "TV distance; " + std::to_string(outside) + " outside kept set, " + std::to_string(nondet) + " nondeterministic");
  }
  // (c) philox: host and device agree (the CPU backend can reproduce draws)
  {
    const int vocab = 2, draws = 4096;
    std::vector<float> x((size_t)draws * vocab, 0.f);  // uniform over 2 tokens: token = (u >= 0.5)
    SampleDev sd(draws);
    std::vector<float> temp(draws, 1.f), topp(draws, 1.f);
    std::vector<int> topk(draws, 0);
    std::vector<uint64_t> seed(draws), ctr(draws);
    for (int b = 0; b < draws; b++) { seed[b] = r.gen(); ctr[b] = b; }
    sd.temp.upload(temp); sd.topp.upload(topp); sd.topk.upload(topk); sd.seed.upload(seed); sd.counter.upload(ctr);
    DevBuf<float> dx(x.size());
    DevBuf<int> dout(draws);
    dx.upload(x);
    dout.poison();
    sample_cuda(dx.p, vocab, vocab, draws, sd.params(), dout.p, nullptr, S);
    auto out = dout.download();
    int wrong = 0;
    for (int b = 0; b < draws; b++) wrong += out[b] != (philox_uniform(seed[b], ctr[b]) >= 0.5 ? 1 : 0);
    T.add("sample.philox_host_match", dims({draws, vocab}), wrong, 0, dout.guards_ok(), std::to_string(wrong) + " differ");
  }
}

static void test_repetition_penalty(Rng& r) {
  const int batch = 3, vocab = 1000, ld = 1000;
  auto x = random_logits(r, (size_t)batch * ld, 2.f);
  std::vector<int> ids, starts = {0};
  std::vector<float> pen = {1.3f, 1.f, 0.8f};
  for (int b = 0; b < batch; b++) {
    const int n = 50 + 100 * b;
    for (int i = 0; i < n; i++) ids.push_back(r.integer(0, 60));  // many duplicates
    starts.push_back((int)ids.size());
  }
  DevBuf<float> dx(x.size()), dpen(batch);
  DevBuf<int> dids(ids.size()), dst(starts.size());
  DevBuf<unsigned> bm(sample_bitmap_bytes(batch, vocab) / 4);
  LMF_CUDA_CHECK(cudaMemset(bm.p, 0, bm.n * 4));
  dx.upload(x); dpen.upload(pen); dids.upload(ids); dst.upload(starts);
  repetition_penalty_cuda(dx.p, ld, vocab, batch, dids.p, dst.p, dpen.p, bm.p, S);
  repetition_penalty_cuda(dx.p, ld, vocab, batch, dids.p, dst.p, dpen.p, bm.p, S);  // twice: bitmap left clean
  auto out = to_double(dx.download());
  std::vector<double> ref(x.begin(), x.end());
  for (int rep = 0; rep < 2; rep++)
    for (int b = 0; b < batch; b++) {
      std::vector<bool> seen(vocab, false);
      for (int i = starts[b]; i < starts[b + 1]; i++) {
        const int id = ids[i];
        if (seen[id] || pen[b] == 1.f) continue;
        seen[id] = true;
        double& v = ref[(size_t)b * ld + id];
        v = (float)(v > 0 ? (float)v / pen[b] : (float)v * pen[b]);
      }
    }
  auto bmv = bm.download();
  bool clean = std::all_of(bmv.begin(), bmv.end(), [](unsigned u) { return u == 0; });
  T.add("repetition_penalty", dims({batch, vocab}), rel_err(out, ref), 1e-7, dx.guards_ok() && clean,
        clean ? "" : "bitmap not cleared");
}

static void test_presence_frequency(Rng& r) {
  const int batch = 3, vocab = 1000, ld = 1000;
  auto x = random_logits(r, (size_t)batch * ld, 2.f);
  std::vector<int> ids, starts = {0}, gstarts;
  std::vector<float> pres = {1.5f, 0.f, -0.5f}, freq = {0.5f, 0.f, 2.f};
  for (int b = 0; b < batch; b++) {
    const int n = 50 + 100 * b;
    gstarts.push_back((int)ids.size() + 7 * b);  // the first 7*b ids of the row are its prompt
    for (int i = 0; i < n; i++) ids.push_back(r.integer(0, 60));  // many duplicates
    starts.push_back((int)ids.size());
  }
  DevBuf<float> dx(x.size()), dpres(batch), dfreq(batch);
  DevBuf<int> dids(ids.size()), dst(starts.size()), dg(gstarts.size()), cnt((size_t)batch * vocab);
  LMF_CUDA_CHECK(cudaMemset(cnt.p, 0, cnt.n * 4));
  dx.upload(x); dpres.upload(pres); dfreq.upload(freq); dids.upload(ids); dst.upload(starts); dg.upload(gstarts);
  presence_frequency_penalty_cuda(dx.p, ld, vocab, batch, dids.p, dg.p, dst.p, dpres.p, dfreq.p, cnt.p, S);
  presence_frequency_penalty_cuda(dx.p, ld, vocab, batch, dids.p, dg.p, dst.p, dpres.p, dfreq.p, cnt.p, S);  // twice: counts left zeroed
  auto out = to_double(dx.download());
  std::vector<double> ref(x.begin(), x.end());
  for (int rep = 0; rep < 2; rep++)
    for (int b = 0; b < batch; b++) {
      std::vector<int> c(vocab, 0);
      for (int i = gstarts[b]; i < starts[b + 1]; i++) c[ids[i]]++;
      for (int id = 0; id < vocab; id++) {
        if (!c[id] || (pres[b] == 0.f && freq[b] == 0.f)) continue;
        double& v = ref[(size_t)b * ld + id];
        v = (float)(v - ((double)freq[b] * c[id] + (double)pres[b]));
      }
    }
  auto cv = cnt.download();
  bool clean = std::all_of(cv.begin(), cv.end(), [](int u) { return u == 0; });
  T.add("presence_frequency_penalty", dims({batch, vocab}), rel_err(out, ref), 0, dx.guards_ok() && clean, clean ? "" : "counts not cleared");
}

static void test_log_softmax_nll(Rng& r) {
  const int rows = 17, vocab = 32000, ld = 32000;
  auto x = random_logits(r, (size_t)rows * ld, 4.f);
  std::vector<int> tgt(rows);
  for (auto& t : tgt) t = r.integer(0, vocab - 1);
  DevBuf<float> dx(x.size()), dy(x.size()), dn(rows);
  DevBuf<int> dt(rows);
  dx.upload(x); dt.upload(tgt); dy.poison(); dn.poison();
  log_softmax_cuda(dx.p, dy.p, ld, rows, vocab, S);
  nll_cuda(dx.p, ld, dt.p, dn.p, rows, vocab, S);
  auto y = to_double(dy.download());
  auto n = to_double(dn.download());
  std::vector<double> yref(y.size()), nref(rows);
  for (int i = 0; i < rows; i++) {
    const float* row = &x[(size_t)i * ld];
    double mx = -1e300, s = 0;
    for (int c = 0; c < vocab; c++) mx = std::max(mx, (double)row[c]);
    for (int c = 0; c < vocab; c++) s += std::exp(row[c] - mx);
    for (int c = 0; c < vocab; c++) yref[(size_t)i * ld + c] = row[c] - mx - std::log(s);
    nref[i] = -yref[(size_t)i * ld + tgt[i]];
  }
  T.add("log_softmax", dims({rows, vocab}), rel_err(y, yref), 1e-6, dy.guards_ok());
  T.add("nll", dims({rows, vocab}), rel_err(n, nref), 1e-5, dn.guards_ok());
}

// W4A16: a random group-quantized weight packed here from the layout's description (ops/w4a16_gemm.h), a
// float64 reference on the f16-rounded dequantized weight.
struct W4Case {
  int n, k, kp, group;
  std::vector<uint8_t> q, z;      // q [n, k], z [n, k/group]
  std::vector<float> s;           // [n, k/group], f16 values
  std::vector<uint32_t> qweight;  // packed
  std::vector<half> sz;           // [kp/group][n][2]
  std::vector<double> w;          // dequantized [n, k]
};

static W4Case make_w4(Rng& r, int n, int k, int group) {
  static const int koff[8] = {0, 8, 16, 24, 1, 9, 17, 25};
  W4Case c;
  c.n = n; c.k = k; c.group = group; c.kp = (k + 127) / 128 * 128;
  const int G = k / group, KB = c.kp / 128;
  c.q.resize((size_t)n * k); c.z.resize((size_t)n * G); c.s.resize((size_t)n * G);
  for (auto& v : c.q) v = (uint8_t)r.integer(0, 15);
  for (auto& v : c.z) v = (uint8_t)r.integer(0, 15);
  for (auto& v : c.s) v = __half2float(__float2half(r.uniform(0.002f, 0.02f)));
  c.qweight.assign((size_t)(n / 8) * KB * 128, 0u);
  for (int tile = 0; tile < n / 8; tile++)
    for (int kb = 0; kb < KB; kb++)
      for (int lane = 0; lane < 32; lane++)
        for (int j = 0; j < 4; j++) {
          uint32_t word = 0;
          for (int p = 0; p < 8; p++) {
            const int col = kb * 128 + 32 * j + koff[p] + 2 * (lane & 3);
            if (col < k) word |= (uint32_t)c.q[(size_t)(tile * 8 + (lane >> 2)) * k + col] << (4 * p);
          }
          c.qweight[((size_t)(tile * KB + kb) * 32 + lane) * 4 + j] = word;
        }
  c.sz.assign((size_t)(c.kp / group) * n * 2, __float2half(0.f));
  for (int g = 0; g < G; g++)
    for (int row = 0; row < n; row++) {
      c.sz[((size_t)g * n + row) * 2] = __float2half(c.s[(size_t)row * G + g]);
      c.sz[((size_t)g * n + row) * 2 + 1] = __float2half((float)c.z[(size_t)row * G + g]);
    }
  c.w.resize((size_t)n * k);
  for (int row = 0; row < n; row++)
    for (int col = 0; col < k; col++) {
      const size_t gi = (size_t)row * G + col / group;
      c.w[(size_t)row * k + col] = __half2float(__float2half(((int)c.q[(size_t)row * k + col] - (int)c.z[gi]) * c.s[gi]));
    }
  return c;
}

struct W4Dev {
  DevBuf<uint32_t> qw;
  DevBuf<half> sz, bias;
  W4A16Dev d;
  W4Dev(const W4Case& c, const std::vector<float>& b) : qw(c.qweight.size()), sz(c.sz.size()), bias(c.n) {
    qw.upload(c.qweight);
    sz.upload(c.sz);
    bias.upload(to_half(b));
    d = {qw.p, reinterpret_cast<const half2*>(sz.p), bias.p, c.n, c.k, c.kp, c.group};
  }
};

// The fused kernel (split-k and direct-store plans), f16 and f32 out, strided x and y with poisoned padding; with
// `wide` 1..3 the wide kernel's variant instead (cluster split-k), whose second launch must give the same bits.
static void test_w4a16(Rng& r, int m, int n, int k, int group, bool f32out, int wide = 0) {
  const W4Case c = make_w4(r, n, k, group);
  const int ldx = k + 8, ldy = n + 2;
  auto x = r.normals((size_t)m * ldx);
  std::vector<float> bias(n);
  for (auto& b : bias) b = __half2float(__float2half(r.normal(0.5f)));
  W4Dev w(c, bias);
  DevBuf<half> dx(x.size());
  dx.upload(to_half(x));
  int sms = 0;
  LMF_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
  const size_t wsb = w4a16_fused_workspace_bytes(m, n, k, sms);
  DevBuf<float> ws(std::max<size_t>(wsb / 4, 1));
  LMF_CUDA_CHECK(cudaMemset(ws.p, 0, std::max<size_t>(wsb, 4)));  // split-k counters start at zero
  const std::vector<double> ref = linear_ref(x.data(), ldx, c.w.data(), bias.data(), m, n, k, n);
  std::vector<double> out, o2;
  bool guards;
  bool same = true;
  if (wide) {
    DevBuf<half> dy((size_t)m * ldy * (f32out ? 2 : 1));
    dy.poison();
    w4a16_gemm_wide_cuda(dx.p, ldx, w.d, dy.p, ldy, f32out, m, sms, wide, S);
    const auto first = dy.download();
    w4a16_gemm_wide_cuda(dx.p, ldx, w.d, dy.p, ldy, f32out, m, sms, wide, S);
    const auto second = dy.download();
    same = std::memcmp(first.data(), second.data(), first.size() * sizeof(half)) == 0;
    out.resize((size_t)m * ldy);
    for (size_t i = 0; i < out.size(); i++)
      out[i] = f32out ? (double)reinterpret_cast<const float*>(second.data())[i] : (double)__half2float(second[i]);
    guards = dy.guards_ok();
  } else if (f32out) {
    DevBuf<float> dy((size_t)m * ldy);
    dy.poison();
    w4a16_gemm_fused_f32out_cuda(dx.p, ldx, w.d, dy.p, ldy, m, ws.p, sms, S);
    out = to_double(dy.download());
    guards = dy.guards_ok() && ws.guards_ok();
  } else {
    DevBuf<half> dy((size_t)m * ldy);
    dy.poison();
    w4a16_gemm_fused_cuda(dx.p, ldx, w.d, dy.p, ldy, m, ws.p, sms, S);
    dy.poison();  // a second launch: the split-k counters must have been left at zero
    w4a16_gemm_fused_cuda(dx.p, ldx, w.d, dy.p, ldy, m, ws.p, sms, S);
    out = to_double(dy.download());
    guards = dy.guards_ok() && ws.guards_ok();
  }
  bool pad_ok = true;
  for (int i = 0; i < m; i++)
    for (int j = 0; j < ldy; j++) {
      if (j < n) o2.push_back(out[(size_t)i * ldy + j]);
      else if (!std::isnan(out[(size_t)i * ldy + j])) pad_ok = false;
    }
  if (wide) {
    const std::string v = wide == kW4WideAuto ? std::string("auto") : "v" + std::to_string(wide);
    const std::string name = std::string(f32out ? "w4a16_f32out(wide " : "w4a16(wide ") + v + ")";
    T.add(name, dims({m, n, k, group}) + " ks " + std::to_string(w4a16_wide_splits(m, n, k, wide)), rel_err(o2, ref),
          f32out ? 1e-5 : 2e-3, guards && pad_ok && same);
    return;
  }
  T.add(f32out ? "w4a16_f32out(fused)" : "w4a16(fused)", dims({m, n, k, group}) + (wsb ? " split" : ""), rel_err(o2, ref),
        f32out ? 1e-5 : 2e-3, guards && pad_ok);
}

// The decode GEMV (forced here, whatever LMFLEET_W4A16_GEMV says): every m in ms for both inner products, f16 and
// f32 out, strided x and y with poisoned padding, one weight per shape (the float64 reference is computed once for
// the largest m: a row's result does not depend on the others), and a second launch must give the same bits.
static void test_w4a16_gemv(Rng& r, int n, int k, int group, std::vector<int> ms) {
  const W4Case c = make_w4(r, n, k, group);
  const int mmax = *std::max_element(ms.begin(), ms.end()), ldx = k + 8, ldy = n + 2;
  auto x = to_double(to_half(r.normals((size_t)mmax * ldx)));  // the f16 values the kernel sees
  std::vector<float> bias(n);
  for (auto& b : bias) b = __half2float(__float2half(r.normal(0.5f)));
  W4Dev w(c, bias);
  DevBuf<half> dx(x.size());
  {
    std::vector<float> xf(x.begin(), x.end());
    dx.upload(to_half(xf));
  }
  int sms = 0;
  LMF_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
  // Two references: the f16-rounded weights (q - z) * s (Fma, Mma: they dequantize to f16), and the unrounded
  // (q - z) * s (MmaAsync, MmaQz, MmaX: exact (q - z) in the mma, the scale applied to the f32 group sums).
  std::vector<double> ref((size_t)mmax * n), ref_exact((size_t)mmax * n), wx((size_t)k);
  const int G = k / group;
  for (int j = 0; j < n; j++) {
    for (int q = 0; q < k; q++)
      wx[q] = ((double)c.q[(size_t)j * k + q] - c.z[(size_t)j * G + q / group]) * (double)c.s[(size_t)j * G + q / group];
    const double* wr = &c.w[(size_t)j * k];
    for (int i = 0; i < mmax; i++) {
      double s = bias[j], se = bias[j];
      const double* xr = &x[(size_t)i * ldx];
      for (int q = 0; q < k; q++) {
        s += xr[q] * wr[q];
        se += xr[q] * wx[q];
      }
      ref[(size_t)i * n + j] = s;
      ref_exact[(size_t)i * n + j] = se;
    }
  }
  for (int m : ms) {
    if (!w4a16_gemv_supported(m, k)) {
      std::printf("w4a16_gemv %s: not run: the x tile does not fit in this GPU's shared memory (the fused path serves it)\n",
                  dims({m, n, k, group}).c_str());
      continue;
    }
    const std::vector<double> rm(ref.begin(), ref.begin() + (size_t)m * n), rme(ref_exact.begin(), ref_exact.begin() + (size_t)m * n);
    // (inner product, weight loads per batch): u8 exists for group 128 only (other groups take u4). MmaX: the int is T,
    // tiles per warp (2 and 8 exist for group 128 only; other groups take 4)
    std::vector<std::pair<W4GemvDot, int>> variants = {
        {W4GemvDot::Fma, 4}, {W4GemvDot::Mma, 4}, {W4GemvDot::MmaAsync, 0}, {W4GemvDot::MmaQz, 4}, {W4GemvDot::MmaX, 4}};
    if (group == 128) {
      variants.push_back({W4GemvDot::Mma, 8});
      variants.push_back({W4GemvDot::MmaX, 2});
      variants.push_back({W4GemvDot::MmaX, 8});
    }
    for (auto [dot, unroll] : variants) {
      if (!w4a16_gemv_supported(m, k, dot)) {
        std::printf("w4a16_gemv %s: not run for variant %d: its shared memory does not fit\n", dims({m, n, k, group}).c_str(), (int)dot);
        continue;
      }
      const std::string name = dot == W4GemvDot::MmaX ? "w4a16_gemv(mma_x_t" + std::to_string(unroll) + ")" :
                               std::string("w4a16_gemv(") +
                               (dot == W4GemvDot::Fma ? "fma" : dot == W4GemvDot::Mma ? "mma" :
                                dot == W4GemvDot::MmaQz ? "mma_qz" : "mma_async") +
                               (unroll == 8 ? "_u8" : "") + ")";
      for (bool f32out : {false, true}) {
        std::vector<double> out, again;
        bool guards;
        if (f32out) {
          DevBuf<float> dy((size_t)m * ldy);
          dy.poison();
          w4a16_gemv_f32out_cuda(dx.p, ldx, w.d, dy.p, ldy, m, dot, sms, S, unroll);
          out = to_double(dy.download());
          w4a16_gemv_f32out_cuda(dx.p, ldx, w.d, dy.p, ldy, m, dot, sms, S, unroll);
          again = to_double(dy.download());
          guards = dy.guards_ok();
        } else {
          DevBuf<half> dy((size_t)m * ldy);
          dy.poison();
          w4a16_gemv_cuda(dx.p, ldx, w.d, dy.p, ldy, m, dot, sms, S, unroll);
          out = to_double(dy.download());
          w4a16_gemv_cuda(dx.p, ldx, w.d, dy.p, ldy, m, dot, sms, S, unroll);
          again = to_double(dy.download());
          guards = dy.guards_ok();
        }
        bool pad_ok = true, same = true;
        std::vector<double> o2;
        for (int i = 0; i < m; i++)
          for (int j = 0; j < ldy; j++) {
            const double v = out[(size_t)i * ldy + j], v2 = again[(size_t)i * ldy + j];
            if (j < n) {
              o2.push_back(v);
              if (!(v == v2)) same = false;
            } else if (!std::isnan(v)) pad_ok = false;
          }
        T.add(name + (f32out ? "_f32out" : ""), dims({m, n, k, group}), rel_err(o2, dot == W4GemvDot::MmaAsync || dot == W4GemvDot::MmaQz || dot == W4GemvDot::MmaX ? rme : rm),
              f32out ? 1e-5 : 2e-3,
              guards && pad_ok && same, same ? "" : "second launch differs");
      }
    }
  }
}

// MmaX with the decode step's fusions (w4a16_gemv_fused_cuda; the decoder's W4A16 path at tp 1), on a [gate; up]
// weight [2 inter, k]: (a) norm-in + silu (the gate_up GEMV) against float64 (rms_norm's half-rounded output times the
// unrounded (q - z) s weights, g and u rounded to half, silu(g) u) and against rms_norm + MmaX + silu_mul (the same
// arithmetic but the order of the sum of squares: within the f16 bound, not bit-equal); (b) silu alone: the same bits
// as MmaX + silu_mul; (c) residual: y += half(x W^T + b), the same bits as MmaX + add_rms_norm's residual. Strided x and
// y with poisoned padding; a second launch gives the same bits.
static void test_w4a16_gemv_fused(Rng& r, int inter, int k, int group, std::vector<int> ms) {
  const int n = 2 * inter, mmax = *std::max_element(ms.begin(), ms.end()), ldx = k + 8, ldy = n + 2, ldo = inter + 2;
  const float eps = 1e-5f;
  const W4Case c = make_w4(r, n, k, group);
  std::vector<float> bias(n), nw(k);
  for (auto& b : bias) b = __half2float(__float2half(r.normal(0.5f)));
  for (auto& v : nw) v = __half2float(__float2half(1.f + 0.3f * r.normal(1.f)));
  auto x = to_double(to_half(r.normals((size_t)mmax * ldx)));
  auto res0 = to_double(to_half(r.normals((size_t)mmax * ldy)));
  W4Dev w(c, bias);
  DevBuf<half> dx(x.size()), dnw(k);
  {
    std::vector<float> xf(x.begin(), x.end());
    dx.upload(to_half(xf));
  }
  dnw.upload(to_half(nw));
  int sms = 0;
  LMF_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
  const int G = k / group;
  std::vector<double> wx((size_t)n * k);  // the unrounded (q - z) s (MmaX's arithmetic)
  for (int j = 0; j < n; j++)
    for (int q = 0; q < k; q++)
      wx[(size_t)j * k + q] = ((double)c.q[(size_t)j * k + q] - c.z[(size_t)j * G + q / group]) * (double)c.s[(size_t)j * G + q / group];
  auto dotw = [&](const double* xr, int j) {
    double s = bias[j];
    for (int q = 0; q < k; q++) s += xr[q] * wx[(size_t)j * k + q];
    return s;
  };
  auto hr = [](double v) { return (double)__half2float(__float2half((float)v)); };
  auto silu = [](double g, double u) { return g / (1.0 + std::exp(-g)) * u; };
  // strided [m, ld] device output -> the first `cols` of each row; pad_ok: the padding still NaN
  auto rows_of = [](const std::vector<double>& v, int m, int ld, int cols, bool& pad_ok) {
    std::vector<double> o;
    for (int i = 0; i < m; i++)
      for (int j = 0; j < ld; j++) {
        if (j < cols) o.push_back(v[(size_t)i * ld + j]);
        else if (!std::isnan(v[(size_t)i * ld + j])) pad_ok = false;
      }
    return o;
  };
  for (int m : ms) {
    W4GemvFuse fn, fs, fr;
    fn.norm_w = dnw.p;
    fn.eps = eps;
    fn.silu_inter = inter;
    fs.silu_inter = inter;
    fr.residual = true;
    if (!w4a16_gemv_fuse_supported(m, w.d, fn) || !w4a16_gemv_fuse_supported(m, w.d, fr)) {
      std::printf("w4a16_gemv_fused %s: not run (the fusions do not take it here)\n", dims({m, n, k, group}).c_str());
      continue;
    }
    // (a) norm-in + silu
    {
      std::vector<double> ref((size_t)m * inter);
      for (int i = 0; i < m; i++) {
        const double* xr = &x[(size_t)i * ldx];
        double ss = 0;
        for (int q = 0; q < k; q++) ss += xr[q] * xr[q];
        const double inv = 1.0 / std::sqrt(ss / k + eps);
        std::vector<double> xh(k);
        for (int q = 0; q < k; q++) xh[q] = hr(xr[q] * inv * nw[q]);
        for (int j = 0; j < inter; j++) ref[(size_t)i * inter + j] = silu(hr(dotw(xh.data(), j)), hr(dotw(xh.data(), inter + j)));
      }
      DevBuf<half> dy((size_t)m * ldo), h((size_t)m * k), gu((size_t)m * n), act((size_t)m * inter);
      dy.poison();
      w4a16_gemv_fused_cuda(dx.p, ldx, w.d, dy.p, ldo, m, fn, sms, S);
      const auto out = to_double(dy.download());
      w4a16_gemv_fused_cuda(dx.p, ldx, w.d, dy.p, ldo, m, fn, sms, S);
      bool pad_ok = true;
      const auto o2 = rows_of(out, m, ldo, inter, pad_ok), o3 = rows_of(to_double(dy.download()), m, ldo, inter, pad_ok);
      const bool again_ok = o2 == o3;
      T.add("w4a16_gemv_fused(norm+silu)", dims({m, inter, k, group}), rel_err(o2, ref), 2e-3,
            dy.guards_ok() && pad_ok && again_ok, again_ok ? "" : "second launch differs");
      // the unfused kernels: rms_norm, MmaX (T by shape, as the fused launch), silu_mul
      act.poison();
      for (int i = 0; i < m; i++) rms_norm_cuda(dx.p + (size_t)i * ldx, dnw.p, h.p + (size_t)i * k, 1, k, eps, S);
      w4a16_gemv_cuda(h.p, k, w.d, gu.p, n, m, W4GemvDot::MmaX, sms, S, 0);
      silu_mul_cuda(gu.p, n, act.p, m, inter, S);
      bool pad2 = true;
      const auto u2 = rows_of(to_double(act.download()), m, inter, inter, pad2);
      T.add("w4a16_gemv_fused(norm+silu) vs unfused", dims({m, inter, k, group}), rel_err(o2, u2), 2e-3, act.guards_ok());
    }
    // (b) silu alone: bit-equal to MmaX + silu_mul
    {
      DevBuf<half> dy((size_t)m * ldo), gu((size_t)m * n), act((size_t)m * inter);
      dy.poison();
      w4a16_gemv_fused_cuda(dx.p, ldx, w.d, dy.p, ldo, m, fs, sms, S);
      w4a16_gemv_cuda(dx.p, ldx, w.d, gu.p, n, m, W4GemvDot::MmaX, sms, S, 0);
      silu_mul_cuda(gu.p, n, act.p, m, inter, S);
      bool pad_ok = true, pad2 = true;
      const auto o2 = rows_of(to_double(dy.download()), m, ldo, inter, pad_ok);
      const auto u2 = rows_of(to_double(act.download()), m, inter, inter, pad2);
      T.add("w4a16_gemv_fused(silu) vs unfused", dims({m, inter, k, group}), rel_err(o2, u2), 0,
            dy.guards_ok() && act.guards_ok() && pad_ok);
    }
    // (c) residual: y += half(x W^T + b); bit-equal to MmaX + add_rms_norm's residual
    {
      std::vector<float> r0f(res0.begin(), res0.begin() + (size_t)m * ldy);
      for (int i = 0; i < m; i++)
        for (int j = n; j < ldy; j++) r0f[(size_t)i * ldy + j] = NAN;  // the padding must stay as it was
      DevBuf<half> dy((size_t)m * ldy), proj((size_t)m * n), resid((size_t)m * n), hh((size_t)m * n), dnw2(n);
      dy.upload(to_half(r0f));
      std::vector<float> r0c;
      for (int i = 0; i < m; i++) r0c.insert(r0c.end(), r0f.begin() + (size_t)i * ldy, r0f.begin() + (size_t)i * ldy + n);
      resid.upload(to_half(r0c));
      dnw2.upload(to_half(std::vector<float>(n, 1.f)));
      w4a16_gemv_fused_cuda(dx.p, ldx, w.d, dy.p, ldy, m, fr, sms, S);
      w4a16_gemv_cuda(dx.p, ldx, w.d, proj.p, n, m, W4GemvDot::MmaX, sms, S, 0);
      add_rms_norm_cuda(resid.p, proj.p, dnw2.p, hh.p, m, n, eps, S);
      bool pad_ok = true, pad2 = true;
      const auto o2 = rows_of(to_double(dy.download()), m, ldy, n, pad_ok);
      const auto u2 = rows_of(to_double(resid.download()), m, n, n, pad2);
      std::vector<double> ref((size_t)m * n);
      for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) ref[(size_t)i * n + j] = hr(r0c[(size_t)i * n + j] + hr(dotw(&x[(size_t)i * ldx], j)));
      T.add("w4a16_gemv_fused(residual)", dims({m, n, k, group}), rel_err(o2, ref), 2e-3, dy.guards_ok() && pad_ok);
      T.add("w4a16_gemv_fused(residual) vs unfused", dims({m, n, k, group}), rel_err(o2, u2), 0,
            dy.guards_ok() && resid.guards_ok() && pad_ok);
    }
  }
}

// MmaX with rope + KV store in its epilogue (W4GemvFuse::rope, the qkv projection): the same bits as MmaX followed by
// rope_kv_store_cuda, in y (q and k rotated, v) and in both caches (every slot poisoned first; padded rows with slot
// -1 store nothing); with the norm-in as well, within the f16 bound of rms_norm + MmaX + rope_kv_store.
static void test_w4a16_gemv_rope(Rng& r, int nh, int nkv, int hd, int k, int group, std::vector<int> ms) {
  const int n = (nh + 2 * nkv) * hd, mmax = *std::max_element(ms.begin(), ms.end()), ldx = k + 8, ldy = n + 2;
  const int nslots = 64;
  const W4Case c = make_w4(r, n, k, group);
  std::vector<float> bias(n), nw(k);
  for (auto& b : bias) b = __half2float(__float2half(r.normal(0.5f)));
  for (auto& v : nw) v = __half2float(__float2half(1.f + 0.3f * r.normal(1.f)));
  W4Dev w(c, bias);
  auto x = r.normals((size_t)mmax * ldx);
  DevBuf<half> dx(x.size()), dnw(k);
  dx.upload(to_half(x));
  dnw.upload(to_half(nw));
  RopeFreqParams rp;
  rp.type = "default";
  rp.theta = 10000.0;
  rp.rot_dim = hd;
  const auto inv = rope_inv_freq_table(rp, 4096);
  std::vector<int> pos(mmax), slots(mmax);
  for (int i = 0; i < mmax; i++) {
    pos[i] = r.integer(0, 4000);
    slots[i] = i == 1 ? -1 : r.integer(0, nslots - 1);  // row 1: a padded row, stored nowhere
  }
  for (int i = 0; i < mmax; i++)  // distinct slots (two rows may not write one cache row)
    for (int j = 0; j < i; j++)
      if (slots[i] >= 0 && slots[i] == slots[j]) slots[i] = (slots[i] + 1 + j) % nslots, j = -1;
  DevBuf<int> dpos(mmax), dslot(mmax);
  DevBuf<float> dinv(inv.size());
  dpos.upload(pos);
  dslot.upload(slots);
  dinv.upload(inv);
  int sms = 0;
  LMF_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
  const size_t cache = (size_t)nslots * nkv * hd;
  for (int m : ms) {
    for (bool norm : {false, true}) {
      W4GemvFuse f;
      if (norm) {
        f.norm_w = dnw.p;
        f.eps = 1e-5f;
      }
      f.rope.nh = nh;
      f.rope.nkv = nkv;
      f.rope.hd = hd;
      f.rope.positions = dpos.p;
      f.rope.inv_freq = dinv.p;
      f.rope.slots = dslot.p;
      DevBuf<half> dy((size_t)m * ldy), kc(cache), vc(cache), y2((size_t)m * n), h((size_t)m * k), kc2(cache), vc2(cache);
      f.rope.k_cache = kc.p;
      f.rope.v_cache = vc.p;
      if (!w4a16_gemv_fuse_supported(m, w.d, f)) {
        std::printf("w4a16_gemv_fused(rope) %s: not run (the fusion does not take it here)\n", dims({m, n, k, group}).c_str());
        continue;
      }
      dy.poison();
      kc.poison();
      vc.poison();
      kc2.poison();
      vc2.poison();
      w4a16_gemv_fused_cuda(dx.p, ldx, w.d, dy.p, ldy, m, f, sms, S);
      const half* xin = dx.p;
      int ldin = ldx;
      if (norm) {
        for (int i = 0; i < m; i++) rms_norm_cuda(dx.p + (size_t)i * ldx, dnw.p, h.p + (size_t)i * k, 1, k, 1e-5f, S);
        xin = h.p;
        ldin = k;
      }
      w4a16_gemv_cuda(xin, ldin, w.d, y2.p, n, m, W4GemvDot::MmaX, sms, S, 0);
      rope_kv_store_cuda(y2.p, n, dpos.p, dinv.p, 0, hd, m, nh, nkv, hd, kc2.p, vc2.p, dslot.p, 16, S);
      const auto yo = to_double(dy.download()), yr = to_double(y2.download());
      std::vector<double> o, ref;
      bool pad_ok = true;
      for (int i = 0; i < m; i++)
        for (int j = 0; j < ldy; j++) {
          if (j < n) {
            o.push_back(yo[(size_t)i * ldy + j]);
            ref.push_back(yr[(size_t)i * n + j]);
          } else if (!std::isnan(yo[(size_t)i * ldy + j])) pad_ok = false;
        }
      // caches: compare every value, NaN (never written) included
      auto same_nan = [](const std::vector<double>& a, const std::vector<double>& b) {
        for (size_t i = 0; i < a.size(); i++)
          if (!(a[i] == b[i] || (std::isnan(a[i]) && std::isnan(b[i])))) return false;
        return true;
      };
      const bool caches = same_nan(to_double(kc.download()), to_double(kc2.download())) &&
                          same_nan(to_double(vc.download()), to_double(vc2.download()));
      T.add(norm ? "w4a16_gemv_fused(norm+rope) vs unfused" : "w4a16_gemv_fused(rope) vs unfused",
            dims({m, nh, nkv, hd, k, group}), rel_err(o, ref), norm ? 2e-3 : 0,
            dy.guards_ok() && kc.guards_ok() && vc.guards_ok() && pad_ok && (norm || caches),
            caches || norm ? "" : "caches differ");
    }
  }
}

// The dequantization kernel must give exactly the reference's f16 weights.
static void test_w4a16_dequant(Rng& r, int n, int k, int group) {
  const W4Case c = make_w4(r, n, k, group);
  W4Dev w(c, std::vector<float>(n, 0.f));
  DevBuf<half> out((size_t)n * k);
  out.poison();
  w4a16_dequant_cuda(w.d, out.p, S);
  T.add("w4a16_dequant", dims({n, k, group}), rel_err(to_double(out.download()), c.w), 0, out.guards_ok());
}

#ifdef LMF_HAVE_CUBLAS
// Through CublasGemm (the decoder's entry): fused below w4a16_dense_min_rows(), dequantize + cuBLAS from there.
static void test_w4a16_gemm_entry(Rng& r, int m, int n, int k, int group) {
  CublasGemm g(S);
  const W4Case c = make_w4(r, n, k, group);
  std::vector<float> bias(n);
  for (auto& b : bias) b = __half2float(__float2half(r.normal(0.5f)));
  W4Dev w(c, bias);
  auto x = r.normals((size_t)m * k);
  DevBuf<half> dx(x.size()), dy((size_t)m * n);
  dx.upload(to_half(x));
  dy.poison();
  g.linear_w4a16(dx.p, k, w.d, dy.p, n, m);
  const std::vector<double> ref = linear_ref(x.data(), k, c.w.data(), bias.data(), m, n, k, n);
  T.add("w4a16(CublasGemm)", dims({m, n, k, group}) + (m >= w4a16_dense_min_rows() ? " dense" : use_w4a16_gemv(m, k, k) ? " gemv" : " fused"),
        rel_err(to_double(dy.download()), ref), 2e-3, dy.guards_ok());
}

static void test_cublas(Rng& r, int m, int n, int k, bool f32out) {
  CublasGemm g(S);
  auto x = r.normals((size_t)m * k), w = r.normals((size_t)n * k, 0.05f), bias = r.normals(n);
  DevBuf<half> dx(x.size()), dw(w.size()), db(n);
  dx.upload(to_half(x)); dw.upload(to_half(w)); db.upload(to_half(bias));
  const std::vector<double> ref = linear_ref(x.data(), k, w.data(), bias.data(), m, n, k, n);
  std::vector<double> out;
  bool guards;
  if (f32out) {
    DevBuf<float> dy((size_t)m * n);
    dy.poison();
    g.linear_f32out(dx.p, k, dw.p, db.p, dy.p, n, m, n, k);
    out = to_double(dy.download());
    guards = dy.guards_ok();
  } else {
    DevBuf<half> dy((size_t)m * n);
    dy.poison();
    g.linear(dx.p, k, dw.p, db.p, dy.p, n, m, n, k);
    out = to_double(dy.download());
    guards = dy.guards_ok();
  }
  T.add(f32out ? "linear_f32out(cublas)" : "linear(cublas)", dims({m, n, k}), rel_err(out, ref), f32out ? 1e-5 : 2e-3,
        guards);
}

// The tuned dense path (CublasGemm::set_tuning): the first call times cuBLAS's default against cuBLASLt's candidates
// and keeps the fastest for the shape; the second call (tuning off) replays that plan. Both outputs vs float64, with
// x and y offset from their allocations (alignments below 256 bytes select other plans) and padded leading dims.
static void test_cublas_tuned(Rng& r, int m, int n, int k, bool f32out, int x_off) {
  CublasGemm g(S);
  const int ldx = k + 8, ldy = n + 8;
  auto x = r.normals((size_t)m * ldx + x_off), w = r.normals((size_t)n * k, 0.05f), bias = r.normals(n);
  DevBuf<half> dx(x.size()), dw(w.size()), db(n);
  dx.upload(to_half(x)); dw.upload(to_half(w)); db.upload(to_half(bias));
  const std::vector<double> ref = linear_ref(x.data() + x_off, ldx, w.data(), bias.data(), m, n, k, n);
  const std::string shape = dims({m, n, k}) + (x_off ? " x+" + std::to_string(x_off) : "");
  for (int pass = 0; pass < 2; pass++) {
    g.set_tuning(pass == 0);
    std::vector<double> out, o2;
    bool guards;
    if (f32out) {
      DevBuf<float> dy((size_t)m * ldy + 4);
      dy.poison();
      g.linear_f32out(dx.p + x_off, ldx, dw.p, db.p, dy.p + 4, ldy, m, n, k);
      out = to_double(dy.download());
      guards = dy.guards_ok();
    } else {
      DevBuf<half> dy((size_t)m * ldy + 8);
      dy.poison();
      g.linear(dx.p + x_off, ldx, dw.p, db.p, dy.p + 8, ldy, m, n, k);
      out = to_double(dy.download());
      guards = dy.guards_ok();
    }
    const int y_off = f32out ? 4 : 8;
    bool pad_ok = true;
    for (int i = 0; i < m; i++)
      for (int j = 0; j < ldy; j++) {
        const double v = out[y_off + (size_t)i * ldy + j];
        if (j < n) o2.push_back(v);
        else if (i < m - 1 && !std::isnan(v)) pad_ok = false;
      }
    T.add(std::string(f32out ? "linear_f32out" : "linear") + (pass == 0 ? "(tuning)" : "(tuned plan)"), shape,
          rel_err(o2, ref), f32out ? 1e-5 : 2e-3, guards && pad_ok && g.plans() == 1,
          g.plans() == 1 ? (g.tune_log().empty() ? "" : g.tune_log().back()) : "expected one plan");
  }
}
#endif

// AWQ fake quantization: the reference below is written independently of ops/awq_fake_quant.h from the documented
// semantics (f32 column scaling, f64 group math, f16 scale by __float2half RNE, JavaScript rounding); the kernel
// must match it bit for bit (err = fraction of differing values: codes, zeros, scales, dequantized weights).
static void test_awq_fake_quant(Rng& r, int rows, int cols, int group, int bits, bool f16w, bool scale, bool clip) {
  const int groups = cols / group, qmax = (1 << bits) - 1;
  std::vector<float> w = f16w ? r.normals((size_t)rows * cols, 0.05f) : std::vector<float>((size_t)rows * cols);
  if (!f16w) for (auto& x : w) x = r.normal(0.05f);
  for (size_t i = 0; i < w.size(); i += 13) w[i] *= 25.f;
  for (int k = 0; k < group && rows > 2; k++) { w[k] = 0.25f; w[(size_t)cols + k] = 1e-9f * (k % 3); }
  // The kernel reads f16 weights: the reference must see the same (rounded) values.
  if (f16w) for (auto& x : w) x = __half2float(__float2half(x));
  std::vector<float> s(cols), c((size_t)rows * groups);
  for (auto& x : s) x = std::exp(r.normal());
  for (int o = 0; o < rows; o++)
    for (int g = 0; g < groups; g++) {
      float m = 0;
      for (int k = 0; k < group; k++) m = std::max(m, std::fabs(w[(size_t)o * cols + g * group + k] * (scale ? s[g * group + k] : 1.f)));
      c[(size_t)o * groups + g] = m * (1.f - r.integer(0, 9) / 20.f);
    }
  std::vector<float> ref_out(w.size()), ref_sc((size_t)rows * groups);
  std::vector<uint8_t> ref_q(w.size()), ref_z((size_t)rows * groups);
  auto jsround = [](double v) { const double f = std::floor(v); return v - f >= 0.5 ? f + 1 : f; };
  for (int o = 0; o < rows; o++)
    for (int g = 0; g < groups; g++) {
      const size_t base = (size_t)o * cols + g * group;
      const double cl = clip ? c[(size_t)o * groups + g] : INFINITY;
      std::vector<float> v(group);
      double mn = INFINITY, mx = -INFINITY;
      for (int k = 0; k < group; k++) {
        const float x = scale ? w[base + k] * s[g * group + k] : w[base + k];
        v[k] = (float)std::min(cl, std::max(-cl, (double)x));
        mn = std::min(mn, (double)v[k]);
        mx = std::max(mx, (double)v[k]);
      }
      float sc = __half2float(__float2half((float)(std::max(mx - mn, 1e-5) / qmax)));
      if (!(sc > 0)) sc = 6.103515625e-5f;
      const int z = (int)std::min<double>(qmax, std::max(0.0, jsround(-mn / sc)));
      ref_z[(size_t)o * groups + g] = (uint8_t)z;
      ref_sc[(size_t)o * groups + g] = sc;
      for (int k = 0; k < group; k++) {
        const int q = (int)std::min<double>(qmax, std::max(0.0, jsround((double)v[k] / sc) + z));
        ref_q[base + k] = (uint8_t)q;
        const float d = (float)(q - z) * sc;
        ref_out[base + k] = scale ? (float)((double)d / s[g * group + k]) : d;
      }
    }
  DevBuf<float> dw32(f16w ? 0 : w.size()), ds(cols), dc(c.size()), dout(w.size()), dsc(ref_sc.size());
  DevBuf<half> dw16(f16w ? w.size() : 0);
  DevBuf<uint8_t> dq(w.size()), dz(ref_z.size());
  if (f16w) dw16.upload(to_half(w)); else dw32.upload(w);
  ds.upload(s);
  dc.upload(c);
  dout.poison();
  dq.poison();
  if (f16w)
    awq_fake_quant_cuda(dw16.p, scale ? ds.p : nullptr, clip ? dc.p : nullptr, dout.p, dq.p, dz.p, dsc.p, rows, cols, bits, group, S);
  else
    awq_fake_quant_cuda(dw32.p, scale ? ds.p : nullptr, clip ? dc.p : nullptr, dout.p, dq.p, dz.p, dsc.p, rows, cols, bits, group, S);
  auto out = dout.download();
  auto q = dq.download();
  auto z = dz.download();
  auto sc = dsc.download();
  size_t diff = 0;
  for (size_t i = 0; i < w.size(); i++) diff += std::memcmp(&out[i], &ref_out[i], 4) != 0 || q[i] != ref_q[i];
  for (size_t i = 0; i < ref_z.size(); i++) diff += z[i] != ref_z[i] || sc[i] != ref_sc[i];
  T.add(std::string("awq_fake_quant") + (f16w ? ".f16" : ".f32") + (scale ? ".scale" : "") + (clip ? ".clip" : ""),
        dims({rows, cols, group, bits}), (double)diff / (w.size() + ref_z.size()), 0,
        dout.guards_ok() && dq.guards_ok() && dz.guards_ok() && dsc.guards_ok(), "bit-exact");
}

// channel_stats: two accumulating calls; absmax/min/max exact, the f64 sum vs a float64 reference.
static void test_channel_stats(Rng& r, int rows, int cols) {
  std::vector<float> am(cols, 0.f), mn(cols, INFINITY), mx(cols, -INFINITY);
  std::vector<double> sum(cols, 0.0);
  DevBuf<float> dam(cols), dmn(cols), dmx(cols);
  DevBuf<double> dsum(cols);
  dam.upload(am);
  dmn.upload(mn);
  dmx.upload(mx);
  dsum.upload(sum);
  for (int call = 0; call < 2; call++) {
    auto x = r.normals((size_t)rows * cols, 3.f);
    for (int t = 0; t < rows; t++)
      for (int c = 0; c < cols; c++) {
        const float v = x[(size_t)t * cols + c];
        am[c] = std::max(am[c], std::fabs(v));
        sum[c] += std::fabs((double)v);
        mn[c] = std::min(mn[c], v);
        mx[c] = std::max(mx[c], v);
      }
    DevBuf<float> dx(x.size());
    dx.upload(x);
    channel_stats_cuda(dx.p, rows, cols, dam.p, dsum.p, dmn.p, dmx.p, S);
    LMF_CUDA_CHECK(cudaDeviceSynchronize());
  }
  auto gam = dam.download(), gmn = dmn.download(), gmx = dmx.download();
  auto gsum = dsum.download();
  double err = 0;
  for (int c = 0; c < cols; c++) {
    if (gam[c] != am[c] || gmn[c] != mn[c] || gmx[c] != mx[c]) err = 1;
    err = std::max(err, std::fabs(gsum[c] - sum[c]) / std::max(sum[c], 1e-30));
  }
  T.add("channel_stats", dims({rows, cols}), err, 1e-12, dam.guards_ok() && dsum.guards_ok() && dmn.guards_ok() && dmx.guards_ok());
}

// awq_clip_search vs a float64 host reference written from the definition (clamp to f32(max|w| (1 - step/nGrid)),
// asymmetric group quantization with f16-rounded scales, JS rounding; dot products and squares in f64). The kernel's
// dots are f32, so: its chosen step's reference error must be within 1e-5 of the minimum, and its error within 1e-4
// of the reference error of that step.
static void test_awq_clip_search(Rng& r, int rows, int cols, int tokens, int group, int bits, int n_grid, int steps) {
  auto w = r.normals((size_t)rows * cols, 0.05f);
  for (int o = 0; o < rows; o++) w[(size_t)o * cols + (size_t)r.integer(0, cols - 1)] *= 8.f;
  auto x = r.normals((size_t)tokens * cols, 1.f);
  const int groups = cols / group, qmax = (1 << bits) - 1;
  DevBuf<float> dw(w.size()), dx(x.size()), dc((size_t)rows * groups), de((size_t)rows * groups);
  dw.upload(w);
  dx.upload(x);
  awq_clip_search_cuda(dw.p, dx.p, dc.p, de.p, rows, cols, tokens, bits, group, steps, n_grid, S);
  LMF_CUDA_CHECK(cudaDeviceSynchronize());
  auto gc = dc.download(), ge = de.download();
  double err = 0;
  for (int o = 0; o < rows; o++)
    for (int g = 0; g < groups; g++) {
      const float* wg = &w[(size_t)o * cols + (size_t)g * group];
      float org = 0.f;
      for (int k = 0; k < group; k++) org = std::max(org, std::fabs(wg[k]));
      std::vector<double> e(steps);
      double mn_e = INFINITY;
      int chosen = -1;
      for (int step = 0; step < steps; step++) {
        const float c = (float)((double)org * (1.0 - (double)step / n_grid));
        if (c == gc[(size_t)o * groups + g] && chosen < 0) chosen = step;
        float mn = INFINITY, mx = -INFINITY;
        for (int k = 0; k < group; k++) {
          const float v = std::min(c, std::max(-c, wg[k]));
          mn = std::min(mn, v);
          mx = std::max(mx, v);
        }
        double d = std::max((double)mx - (double)mn, 1e-5);
        float s = __half2float(__float2half((float)(d / qmax)));
        if (!(s > 0.f)) s = 6.103515625e-5f;
        const double zf = std::floor(-(double)mn / s + 0.5);
        const int z = (int)std::min<double>(qmax, std::max(0.0, zf));
        std::vector<double> res(group);
        for (int k = 0; k < group; k++) {
          const float v = std::min(c, std::max(-c, wg[k]));
          const int q = (int)std::min<double>(qmax, std::max(0.0, std::floor((double)v / s + 0.5) + z));
          res[k] = (double)((float)((float)(q - z) * s) - wg[k]);
        }
        double tot = 0;
        for (int t = 0; t < tokens; t++) {
          double dot = 0;
          for (int k = 0; k < group; k++) dot += (double)x[(size_t)t * cols + (size_t)g * group + k] * res[k];
          tot += dot * dot;
        }
        e[step] = tot;
        mn_e = std::min(mn_e, tot);
      }
      if (chosen < 0) { err = 1; continue; }
      err = std::max(err, (e[chosen] - mn_e) / std::max(mn_e, 1e-30) * 10.0);  // 1e-5 -> 1e-4
      err = std::max(err, std::fabs(ge[(size_t)o * groups + g] - e[chosen]) / std::max(e[chosen], 1e-30));
    }
  T.add("awq_clip_search", dims({rows, cols, tokens, group, bits}), err, 1e-4, dw.guards_ok() && dx.guards_ok() && dc.guards_ok() && de.guards_ok());
}

// sq_err: f64 sums of squared differences per column, rows in order: the same operations as the float64 reference.
static void test_sq_err(Rng& r, int rows, int cols) {
  auto a = r.normals((size_t)rows * cols, 2.f), b = r.normals((size_t)rows * cols, 2.f);
  std::vector<double> ref(cols, 0.5);  // accumulates onto what is there
  DevBuf<float> da(a.size()), db(b.size());
  DevBuf<double> dout(cols);
  da.upload(a);
  db.upload(b);
  dout.upload(ref);
  sq_err_cuda(da.p, db.p, rows, cols, dout.p, S);
  LMF_CUDA_CHECK(cudaDeviceSynchronize());
  for (int t = 0; t < rows; t++)
    for (int c = 0; c < cols; c++) {
      const double d = (double)a[(size_t)t * cols + c] - (double)b[(size_t)t * cols + c];
      ref[c] += d * d;
    }
  auto got = dout.download();
  double err = 0;
  for (int c = 0; c < cols; c++) err = std::max(err, std::fabs(got[c] - ref[c]) / std::max(ref[c], 1e-30));
  T.add("sq_err", dims({rows, cols}), err, 1e-12, da.guards_ok() && db.guards_ok() && dout.guards_ok());
}

// moe_route_cuda's `active` list from the offsets: the experts with rows in order, then -1
static std::vector<int> active_experts(const std::vector<int>& off) {
  const int E = (int)off.size() - 1;
  std::vector<int> a;
  for (int e = 0; e < E; e++)
    if (off[(size_t)e + 1] > off[(size_t)e]) a.push_back(e);
  a.resize((size_t)E, -1);
  return a;
}

// Mixture-of-experts routing, gather and combine (ops/moe.cuh) against the CPU decoder's rule in float64: the K largest
// logits (ties to the lower expert; a few ties are planted), softmax weights renormalized over the chosen or not, the
// pairs stably sorted by expert; then the gathered rows (exact) and the weighted sum of the experts' rows.
static void test_moe(Rng& r, int NT, int E, int K, bool renorm, int H) {
  const int P = NT * K;
  std::vector<float> lg((size_t)NT * E);
  for (auto& v : lg) v = r.normal(2.f);
  for (int t = 0; t < NT; t += 3) {  // ties: two experts with the same logit, one of them often the best
    const int a = r.integer(0, E - 1), b = r.integer(0, E - 1);
    float mx = -INFINITY;
    for (int e = 0; e < E; e++) mx = std::max(mx, lg[(size_t)t * E + e]);
    lg[(size_t)t * E + a] = lg[(size_t)t * E + b] = t % 2 ? mx + 0.5f : lg[(size_t)t * E + a];
  }
  DevBuf<float> dl(lg.size()), dw(P);
  DevBuf<int> ids(P), off(E + 1), stok(P), pslot(P), act(E);
  dl.upload(lg);
  for (auto* b : {&ids, &off, &stok, &pslot, &act}) b->poison();
  dw.poison();
  moe_route_cuda(dl.p, NT, E, K, renorm, ids.p, dw.p, off.p, stok.p, pslot.p, act.p, S);
  const auto gi = ids.download(), go = off.download(), gs = stok.download(), gp = pslot.download(), ga = act.download();
  const auto gw = dw.download();
  // reference
  std::vector<int> rid((size_t)P), rof((size_t)E + 1, 0), rst((size_t)P), rps((size_t)P);
  std::vector<double> rw((size_t)P);
  std::vector<int> order((size_t)E);
  for (int t = 0; t < NT; t++) {
    const float* l = &lg[(size_t)t * E];
    const double mx = *std::max_element(l, l + E);
    double sum = 0;
    for (int e = 0; e < E; e++) sum += std::exp((double)l[e] - mx);
    std::iota(order.begin(), order.end(), 0);
    std::partial_sort(order.begin(), order.begin() + K, order.end(), [&](int a, int b) { return l[a] > l[b] || (l[a] == l[b] && a < b); });
    double top = 0;
    for (int j = 0; j < K; j++) top += std::exp((double)l[order[j]] - mx);
    for (int j = 0; j < K; j++) {
      rid[(size_t)t * K + j] = order[j];
      rw[(size_t)t * K + j] = std::exp((double)l[order[j]] - mx) / (renorm ? top : sum);
      rof[(size_t)order[j] + 1]++;
    }
  }
  for (int e = 0; e < E; e++) rof[(size_t)e + 1] += rof[(size_t)e];
  {
    std::vector<int> cur(rof.begin(), rof.end() - 1);
    for (int p = 0; p < P; p++) {
      const int slot = cur[(size_t)rid[(size_t)p]]++;
      rst[(size_t)slot] = p / K;
      rps[(size_t)p] = slot;
    }
  }
  const std::vector<int> rac = active_experts(rof);
  const int bad = (int)(gi != rid) + (int)(go != rof) + (int)(gs != rst) + (int)(gp != rps) + (int)(ga != rac);
  std::string note;
  if (ga != rac) note += "active ";
  if (gi != rid) note += "ids ";
  if (go != rof) note += "offsets ";
  if (gs != rst) note += "slot_token ";
  if (gp != rps) note += "pair_slot ";
  const std::string shape = dims({NT, E, K}) + (renorm ? " renorm" : "");
  T.add("moe_route", shape, bad ? 1.0 : rel_err(to_double(gw), rw), 1e-6,
        dl.guards_ok() && dw.guards_ok() && ids.guards_ok() && off.guards_ok() && stok.guards_ok() && pslot.guards_ok() &&
            act.guards_ok(),
        note.empty() ? "" : "differs: " + note);
  // gather (exact) and combine (f32 sum of f16 rows, one rounding) with the kernel's own routing
  auto x = r.normals((size_t)NT * H), y = r.normals((size_t)P * H);
  DevBuf<half> dx(x.size()), dxs((size_t)P * H), dy(y.size()), dout((size_t)NT * H);
  dx.upload(to_half(x));
  dy.upload(to_half(y));
  dxs.poison();
  dout.poison();
  gather_rows_cuda(dx.p, stok.p, dxs.p, P, H, S);
  moe_combine_cuda(dy.p, H, dw.p, pslot.p, dout.p, H, NT, K, H, S);
  const auto xs = to_double(dxs.download()), out = to_double(dout.download());
  std::vector<double> rxs((size_t)P * H), rout((size_t)NT * H, 0.0);
  for (int q = 0; q < P; q++)
    for (int i = 0; i < H; i++) rxs[(size_t)q * H + i] = x[(size_t)rst[(size_t)q] * H + i];
  for (int t = 0; t < NT; t++)
    for (int j = 0; j < K; j++)
      for (int i = 0; i < H; i++) rout[(size_t)t * H + i] += (double)gw[(size_t)t * K + j] * y[(size_t)rps[(size_t)t * K + j] * H + i];
  T.add("moe_gather_rows", dims({P, H}), rel_err(xs, rxs), 0, dxs.guards_ok());
  T.add("moe_combine", dims({NT, K, H}), rel_err(out, rout), 1e-3, dout.guards_ok());
}

// A grouped experts' GEMV's row: y [P, ldy] against float64 x W_e^T on each expert's rows (weight(e): expert e's [n, k]
// weights as the kernel sees them), and the padding columns past n must keep the poison.
template <class Weight>
static void report_moe_gemv(const std::string& name, const std::vector<int>& counts, const std::vector<int>& off,
                            const std::vector<float>& x, int ldx, DevBuf<half>& dy, int ldy, int n, int k, Weight weight,
                            bool guards, const std::string& tag = "") {
  const int E = (int)counts.size(), P = off[E];
  const auto raw = dy.download();
  const auto y = to_double(raw);
  std::vector<double> out, ref;
  for (int e = 0; e < E; e++)
    for (int row = off[e]; row < off[e + 1]; row++)
      for (int c = 0; c < n; c++) {
        double a = 0;
        for (int j = 0; j < k; j++) a += (double)x[(size_t)row * ldx + j] * weight(e)[(size_t)c * k + j];
        ref.push_back(a);
        out.push_back(y[(size_t)row * ldy + c]);
      }
  bool untouched = true;  // (the poison is a NaN: not equal to itself)
  for (int row = 0; row < P; row++)
    for (int c = n; c < ldy; c++) untouched = untouched && !(__half2float(raw[(size_t)row * ldy + c]) == __half2float(raw[(size_t)row * ldy + c]));
  std::string cs;
  for (int e = 0; e < std::min(E, 6); e++) cs += (cs.empty() ? "" : ",") + std::to_string(counts[e]);
  T.add(name, dims({E, n, k}) + tag + " rows " + cs + (E > 6 ? ",..." : ""), rel_err(out, ref), 2e-3,
        guards && dy.guards_ok() && untouched, untouched ? "" : "padding written");
}

// The grouped experts' GEMV (moe_gemv_cuda) against float64: E experts with the given row counts (zeros among them,
// counts above the kernel's 8 rows per pass), each its own f16 weight [n, k]; strided x and y.
static void test_moe_gemv(Rng& r, const std::vector<int>& counts, int n, int k) {
  const int E = (int)counts.size(), ldx = k + 8, ldy = n + 3;
  std::vector<int> off(E + 1, 0);
  for (int e = 0; e < E; e++) off[e + 1] = off[e] + counts[e];
  const int P = off[E];
  auto x = r.normals((size_t)std::max(P, 1) * ldx);
  std::vector<std::vector<float>> w(E);
  std::vector<DevBuf<half>*> dws;
  std::vector<const half*> ptrs;
  for (int e = 0; e < E; e++) {
    w[e] = r.normals((size_t)n * k, 0.05f);
    dws.push_back(new DevBuf<half>(w[e].size()));
    dws.back()->upload(to_half(w[e]));
    ptrs.push_back(dws.back()->p);
  }
  DevBuf<half> dx(x.size()), dy((size_t)std::max(P, 1) * ldy);
  DevBuf<int> doff(E + 1), dact(E);
  DevBuf<const half*> dptr(E);
  dx.upload(to_half(x));
  doff.upload(off);
  dact.upload(active_experts(off));
  dptr.upload(ptrs);
  dy.poison();
  moe_gemv_cuda(dx.p, ldx, dptr.p, doff.p, dact.p, std::min(E, P), dy.p, ldy, n, k, S);
  report_moe_gemv("moe_gemv", counts, off, x, ldx, dy, ldy, n, k, [&](int e) { return w[e].data(); }, dx.guards_ok());
  for (auto* b : dws) delete b;
}

// The grouped W4A16 experts' GEMV (moe_gemv_w4_cuda) against float64 on the f16-rounded dequantized weights (make_w4).
static void test_moe_gemv_w4(Rng& r, const std::vector<int>& counts, int n, int k, int group) {
  const int E = (int)counts.size(), ldx = k + 8, ldy = n + 3;
  std::vector<int> off(E + 1, 0);
  for (int e = 0; e < E; e++) off[e + 1] = off[e] + counts[e];
  const int P = off[E];
  auto x = r.normals((size_t)std::max(P, 1) * ldx);
  std::vector<W4Case> cs;
  std::vector<W4Dev*> ws;
  std::vector<W4A16Dev> devs;
  for (int e = 0; e < E; e++) {
    cs.push_back(make_w4(r, n, k, group));
    ws.push_back(new W4Dev(cs.back(), std::vector<float>(n, 0.f)));
    ws.back()->d.bias = nullptr;
    devs.push_back(ws.back()->d);
  }
  DevBuf<half> dx(x.size()), dy((size_t)std::max(P, 1) * ldy);
  DevBuf<int> doff(E + 1), dact(E);
  DevBuf<W4A16Dev> dw(E);
  dx.upload(to_half(x));
  doff.upload(off);
  dact.upload(active_experts(off));
  dw.upload(devs);
  dy.poison();
  moe_gemv_w4_cuda(dx.p, ldx, dw.p, doff.p, dact.p, std::min(E, P), dy.p, ldy, n, k, cs[0].kp, group, S);
  report_moe_gemv("moe_gemv_w4", counts, off, x, ldx, dy, ldy, n, k, [&](int e) { return cs[e].w.data(); }, dx.guards_ok(),
                  " g" + std::to_string(group));
  for (auto* b : ws) delete b;
}

int main(int argc, char** argv) {
  // "fused" rows / columns mean the fused kernel itself; the wide kernel is called by variant (the default path, auto,
  // routes 9+ rows to it)
  setenv("LMFLEET_W4A16_WIDE", "0", 0);
  const uint64_t seed = argc > 1 ? std::stoull(argv[1])
                                 : (uint64_t)std::chrono::steady_clock::now().time_since_epoch().count();
  std::printf("seed %llu\n", (unsigned long long)seed);
  Rng r(seed);
  try {
    cudaDeviceProp prop;
    LMF_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
    std::printf("device %s sm_%d%d\n", prop.name, prop.major, prop.minor);
    // LMF_TEST_ONLY=w4: the W4A16 cases only (device calls that change only those kernels)
    // LMF_TEST_ONLY=w4entry: only the rows through CublasGemm (the W4 path an env such as LMFLEET_W4A16_GEMV picks)
    const std::string only = std::getenv("LMF_TEST_ONLY") ? std::getenv("LMF_TEST_ONLY") : "";
    const bool all = only != "w4" && only != "w4entry", w4rows = only != "w4entry";
    if (all) {
    test_embedding(r, 1.f);
    test_embedding(r, 45.25f);
    test_rms_norm(r, 33, 4096, false);
    test_rms_norm(r, 5, 5120, false);
    test_rms_norm(r, 3, 1003, false);
    test_rms_norm(r, 33, 4096, true);
    test_rms_norm(r, 4, 1003, true);
    test_silu_mul(r, Activation::Silu, 11008);
    test_silu_mul(r, Activation::GeluTanh, 6913);  // (an odd width: the scalar kernel)
    test_silu_mul(r, Activation::GeluTanh, 2048);
    test_silu_mul(r, Activation::Gelu, 6913);
    test_silu_mul(r, Activation::Gelu, 2048);
    test_add(r);
    // MoE: Mixtral (8 experts, 2 each, renormalized) at decode and prefill sizes; Qwen3-MoE (128 experts, 8 each, not
    // renormalized); an expert count not a multiple of 32 with an odd row length; the kernel's limits (1000 / 32)
    test_moe(r, 1, 8, 2, true, 4096);
    test_moe(r, 37, 8, 2, true, 256);
    test_moe(r, 64, 128, 8, false, 2048);
    test_moe(r, 300, 60, 4, true, 200);
    test_moe(r, 2048, 128, 8, true, 64);
    test_moe(r, 5, 1000, 32, false, 64);
    // grouped experts' GEMV: Qwen3-30B-A3B's gate|up (1536 x 2048) and down (2048 x 768) at decode counts; Mixtral-like
    // counts above 8 rows per pass; a width not a multiple of 8 and a short k
    test_moe_gemv(r, {0, 1, 0, 0, 2, 1, 0, 3, 0, 1}, 1536, 2048);
    test_moe_gemv(r, {1, 0, 5, 2, 0, 0, 1, 7}, 2048, 768);
    test_moe_gemv(r, {17, 9, 0, 30}, 512, 1024);
    test_moe_gemv(r, {3, 0, 11}, 100, 48);
    test_moe_gemv_w4(r, {0, 1, 0, 2, 1, 0, 3, 1}, 1536, 2048, 128);
    test_moe_gemv_w4(r, {1, 0, 5, 2, 0, 9}, 2048, 768, 128);
    test_moe_gemv_w4(r, {17, 0, 4}, 256, 960, 64);  // k padded to 1024
    test_moe_gemv_w4(r, {3, 11}, 64, 384, 32);
    // an odd count of 8-row tiles (25: the last pair has one) and x staged in two chunks (20 k blocks)
    test_moe_gemv_w4(r, {2, 0, 9, 1}, 200, 2560, 128);
    for (int m : {1, 3, 8}) test_gemv(r, m, 1000, 4096, false);
    test_gemv(r, 2, 300, 4104, false);
    test_gemv(r, 5, 777, 2056, true);
    // gate_up + silu_mul fused (CudaDecoder's f16 decode path): 7B's 11008 and its tp 2 / tp 4 shards, k = 4096 and
    // k not a multiple of 256; inter not a multiple of 8 (silu_mul's scalar kernel on the unfused side); no bias
    test_gemv_silu(r, 1, 11008, 4096);
    test_gemv_silu(r, 3, 1000, 4104);
    test_gemv_silu(r, 4, 2752, 4096);
    test_gemv_silu(r, 8, 5504, 4096);
    test_gemv_silu(r, 8, 1004, 2056, false);
    for (const char* t : {"default", "linear", "dynamic", "llama3"}) test_rope(r, t, 128);
    test_rope(r, "default", 64);
    test_rope(r, "default", 128, true);  // Qwen3's per-head q / k norm
    test_rope(r, "default", 64, true);   // and the normed unrotated tail
    // decode attention, run with both kernels (the two-phase one, LMFLEET_ATTN_ONLINE=0, then the online default): 7B's 32 heads and GQA
    // shapes; the engine's batch-1 and small-batch shapes (split 32, a power-of-two grid of splits) with contexts
    // ending inside, at and past a split; more than 8 query heads per kv head (16: 2 blocks of 8, 12: 2 of 6, 11: 11 of
    // 1); the tiny golden models' head dims (16, 32); int8 / int4 caches
    auto decode_rows = [&] {
      test_attention_decode(r, {1, 17, 300, 1000, 2500}, 8, 2, 128, 256);
      test_attention_decode(r, {5, 700, 64}, 4, 4, 64, 128);
      test_attention_decode(r, {129, 33}, 28, 4, 128, 512);
      test_attention_decode(r, {4000, 1, 77, 1500}, 32, 8, 128, 256);
      test_attention_decode(r, {150}, 32, 32, 128, 32, 0, 8);
      test_attention_decode(r, {1, 17, 100, 160}, 32, 32, 128, 32, 0, 8);
      test_attention_decode(r, {64, 33, 200}, 32, 8, 128, 32, 0, 8);
      test_attention_decode(r, {96, 5}, 8, 2, 64, 32, 0, 4);
      test_attention_decode(r, {150, 40}, 32, 8, 128, 32, 8, 8);
      test_attention_decode(r, {136, 150, 9, 191}, 16, 16, 128, 128, 0, 2);  // tp 2's batch-64 shape: 2 splits of 128
      // the one split of 256 that attention_decode_split_len gives 256+ pairs at contexts up to 256 (the combine
      // skipped), and two splits of 256 with contexts past the first (LMFLEET_ATTN_SPLIT=256 at longer contexts)
      test_attention_decode(r, {136, 256, 1, 191, 40}, 32, 32, 128, 256, 0, 1);
      test_attention_decode(r, {136, 257, 9, 511}, 16, 16, 128, 256, 0, 2);
      test_attention_decode(r, {200, 256, 3}, 32, 32, 128, 256, 8, 1);
      test_attention_decode(r, {1, 300, 1500}, 32, 2, 128, 256);
      test_attention_decode(r, {77, 2000}, 12, 1, 64, 128);
      test_attention_decode(r, {45, 600}, 11, 1, 64, 128, 8);
      test_attention_decode(r, {1, 12, 45}, 4, 1, 16, 32);
      test_attention_decode(r, {30, 100}, 4, 2, 32, 64);
      test_attention_decode(r, {1, 12, 45}, 4, 1, 16, 32, 8);
      test_attention_decode(r, {30, 100}, 4, 2, 32, 64, 4);
      for (int qp : {8, 4}) {
        test_attention_decode(r, {1, 17, 300, 1000}, 8, 2, 128, 256, qp);
        test_attention_decode(r, {5, 700, 64}, 6, 2, 64, 128, qp);
      }
      // head_dim 96 (Phi-3-mini: 12 of a 16-lane group's lanes hold dims) and 256 (Gemma: one token per warp)
      for (int qp : {0, 8, 4}) {
        test_attention_decode(r, {1, 17, 300, 700}, 32, 32, 96, 128, qp);
        test_attention_decode(r, {5, 140, 64}, 8, 4, 256, 64, qp);
      }
      test_attention_decode(r, {150}, 32, 32, 96, 32, 0, 8);
      test_attention_decode(r, {33, 2}, 8, 1, 256, 32, 0, 4);
      // sliding window (keys (p - window, p]): contexts shorter, equal and longer than the window, splits cut from the
      // window's start; a grid of splits sized for the whole context (the engine's) and one sized for the window
      for (int qp : {0, 8}) {
        test_attention_decode(r, {1, 17, 64, 65, 300, 1000}, 8, 2, 128, 32, qp, 0, 64);
        test_attention_decode(r, {5, 129, 700}, 4, 4, 64, 128, qp, 0, 128);
        test_attention_decode(r, {100, 1000, 4000}, 8, 4, 256, 256, qp, 0, 512);
        test_attention_decode(r, {9, 600, 511, 513}, 32, 32, 96, 128, qp, 5, 512);
      }
      // Gemma 2's logit soft-capping (scores ~ N(0, 1) here, so a cap of 1.5 bends most of them): GQA 8/4 at head dim
      // 256 with windows, MHA 128, the int8 cache
      test_attention_decode(r, {1, 37, 300, 4096}, 8, 4, 256, 64, 0, 0, 0, 1.5f);
      test_attention_decode(r, {100, 1000}, 8, 4, 256, 256, 0, 0, 64, 1.5f);
      test_attention_decode(r, {5, 129, 700}, 4, 4, 128, 128, 8, 0, 0, 1.5f);
    };
    setenv("LMFLEET_ATTN_ONLINE", "0", 1);
    decode_rows();
    setenv("LMFLEET_ATTN_ONLINE", "1", 1);
    decode_rows();
    unsetenv("LMFLEET_ATTN_ONLINE");
    for (int impl : {1, 0}) {  // the flash-attention-2 kernel, then the WMMA kernel
      g_attention_prefill_impl = impl;
      test_attention_prefill(r, {1, 70, 130}, {0, 20, 50}, 8, 2, 128);
      test_attention_prefill(r, {200}, {0}, 4, 4, 64);
      test_attention_prefill(r, {64, 257}, {300, 0}, 28, 4, 128);
    }
    g_attention_prefill_impl = 1;
    // more than 8 query heads per kv head (decode: in decode_rows above)
    test_attention_prefill(r, {70, 130}, {20, 0}, 32, 2, 128);
    // head dims of the tiny golden models (16) and 32
    test_attention_prefill(r, {12, 44}, {0, 7}, 4, 4, 16);
    test_attention_prefill(r, {70}, {20}, 4, 1, 32);
    test_attention_prefill(r, {12, 44}, {0, 7}, 4, 4, 16, 4);
    test_attention_prefill(r, {70}, {20}, 4, 1, 32, 8);
    // head_dim 96 (Phi-3-mini) and 256 (Gemma: 32-key tiles, Q read from shared memory), f16 / int8 / int4 caches
    for (int qp : {0, 8, 4}) {
      test_attention_prefill(r, {1, 70, 130}, {0, 20, 50}, 8, 8, 96, qp);
      test_attention_prefill(r, {1, 70, 130}, {0, 20, 50}, 8, 4, 256, qp);
    }
    // sliding window: prompts longer than the window, history before them (chunked prefill), windows of a tile, of
    // less than a tile and of several; both kernels for the f16 cache, FA2 for the quantized ones
    for (int impl : {1, 0}) {
      g_attention_prefill_impl = impl;
      test_attention_prefill(r, {1, 70, 300}, {0, 20, 50}, 8, 2, 128, 0, 64);
      test_attention_prefill(r, {200, 37}, {130, 0}, 4, 4, 64, 0, 50);
    }
    g_attention_prefill_impl = 1;
    test_attention_prefill(r, {300, 90}, {0, 200}, 8, 4, 256, 0, 100);
    test_attention_prefill(r, {257, 5}, {64, 600}, 8, 8, 96, 0, 128);
    test_attention_prefill(r, {1, 70, 300}, {0, 20, 50}, 8, 2, 128, 8, 64);
    test_attention_prefill(r, {300}, {40}, 8, 4, 256, 4, 33);
    // Gemma 2's logit soft-capping: head dim 256 with a window and without, 128, the int8 cache; the WMMA kernel too
    test_attention_prefill(r, {1, 70, 300}, {0, 20, 50}, 8, 4, 256, 0, 0, 1.5f);
    test_attention_prefill(r, {300, 90}, {0, 200}, 8, 4, 256, 0, 100, 1.5f);
    test_attention_prefill(r, {1, 70, 130}, {0, 20, 50}, 8, 2, 128, 8, 0, 1.5f);
    g_attention_prefill_impl = 0;
    test_attention_prefill(r, {1, 70, 130}, {0, 20, 50}, 8, 2, 128, 0, 0, 1.5f);
    g_attention_prefill_impl = 1;
    // KV cache int8 / int4 (quant_policy 8 / 4): store, then decode and prefill reading the quantized cache
    for (int qp : {8, 4}) {
      test_rope_kv_quant(r, qp, false);
      test_rope_kv_quant(r, qp, true);
      test_attention_prefill(r, {1, 70, 130}, {0, 20, 50}, 8, 2, 128, qp);
      test_attention_prefill(r, {200}, {0}, 6, 2, 64, qp);
    }
    test_argmax(r);
    test_sample(r);
    test_repetition_penalty(r);
    test_presence_frequency(r);
    test_log_softmax_nll(r);
    }  // all
    if (w4rows) {
    // W4A16: batch 1..256, odd batches, group 32/64/128, k not a multiple of 128, split-k and direct plans
    test_w4a16(r, 1, 4096, 4096, 128, false);
    test_w4a16(r, 3, 1000, 1024, 64, false);
    test_w4a16(r, 7, 264, 96, 32, false);
    test_w4a16(r, 16, 2048, 2048, 128, false);
    test_w4a16(r, 17, 512, 4096, 32, true);
    test_w4a16(r, 33, 800, 1408, 64, false);
    test_w4a16(r, 64, 1024, 2048, 128, false);
    test_w4a16(r, 100, 1032, 640, 128, true);
    test_w4a16(r, 256, 4096, 512, 64, false);
    test_w4a16(r, 257, 136, 256, 32, false);
    // the wide kernel: every variant (4 = 2 at <= 32 rows) and auto at 1, 2 and 4 m16 tiles, split and unsplit plans, partial tiles, groups 32 / 64
    for (int v = 1; v <= kW4WideAuto; v++) {
      test_w4a16(r, 9, 4096, 4096, 128, false, v);
      test_w4a16(r, 16, 4096, 11008, 128, true, v);
      test_w4a16(r, 24, 12288, 4096, 128, false, v);
      test_w4a16(r, 33, 800, 1408, 64, false, v);
      test_w4a16(r, 64, 22016, 4096, 128, false, v);
      test_w4a16(r, 64, 1032, 640, 32, true, v);
      test_w4a16(r, 100, 4096, 2048, 128, false, v);
      test_w4a16(r, 255, 264, 512, 64, false, v);
    }
    // W4A16 decode GEMV (ops/w4a16_gemm.cu; LMFLEET_W4A16_GEMV selects it in CublasGemm): m = 1..8, groups 32/64/128,
    // k not a multiple of 128, one tile, and 7B's shapes (qkv 12288 x 4096, o 4096 x 4096, gate_up 22016 x 4096,
    // down 4096 x 11008)
    test_w4a16_gemv(r, 1000, 1088, 64, {1, 2, 3, 4, 5, 6, 7, 8});
    test_w4a16_gemv(r, 264, 96, 32, {1, 3, 8});
    test_w4a16_gemv(r, 8, 1440, 32, {1, 2, 7});
    test_w4a16_gemv(r, 2056, 2176, 128, {1, 4, 6, 8});
    test_w4a16_gemv(r, 12288, 4096, 128, {1, 2, 4, 8});
    test_w4a16_gemv(r, 4096, 4096, 64, {1, 3, 8});
    test_w4a16_gemv(r, 22016, 4096, 128, {1, 2, 4, 8});
    // MmaX with the decoder's fusions (norm-in, silu, residual): 7B's gate_up, small and odd shapes, groups 32/64
    test_w4a16_gemv_fused(r, 11008, 4096, 128, {1, 4, 8});
    test_w4a16_gemv_fused(r, 1024, 1024, 128, {1, 2, 3, 5, 8});
    test_w4a16_gemv_fused(r, 304, 640, 64, {1, 3});  // 38 gate tiles: a unit with one gate tile (T 4), padded k
    test_w4a16_gemv_fused(r, 256, 512, 32, {1, 7});
    // ... and with rope + KV store (the qkv projection): 7B's heads, GQA at head_dim 64 and 128, groups 64
    test_w4a16_gemv_rope(r, 32, 32, 128, 4096, 128, {1, 3, 8});
    test_w4a16_gemv_rope(r, 8, 2, 64, 512, 64, {1, 4});
    test_w4a16_gemv_rope(r, 4, 2, 128, 512, 128, {2, 5});
    test_w4a16_gemv(r, 4096, 11008, 128, {1, 2, 4, 5, 8});
    test_w4a16_gemv(r, 11008, 4096, 32, {1, 8});
    test_w4a16_gemv(r, 136, 640, 128, {1, 3, 5, 6, 7});  // the u8 variant at odd m and padded k (kp 768)
    test_w4a16_gemv(r, 56, 1024, 128, {1, 2, 8});  // 7 tiles: MmaX's last unit with 3 tiles (T 4) / an odd pair
    test_w4a16_gemv(r, 24, 384, 128, {1, 3});      // KB 3 < 8 warps: slices with no k block (S 8) add zeros
    test_w4a16_dequant(r, 1000, 1408, 64);
    test_w4a16_dequant(r, 64, 96, 32);
    }  // w4rows
    // AWQ search ops (quant/awq.ts, calibrate.ts)
    if (all) {
    for (bool f16w : {false, true})
      for (int mode = 0; mode < 4; mode++) test_awq_fake_quant(r, 37, 512, 128, 4, f16w, mode & 1, mode & 2);
    test_awq_fake_quant(r, 300, 1024, 64, 4, false, true, false);
    test_awq_fake_quant(r, 65, 96, 32, 4, false, true, true);
    test_awq_fake_quant(r, 16, 256, 128, 8, true, true, false);
    test_channel_stats(r, 333, 4096);
    test_channel_stats(r, 7, 11008);
    test_channel_stats(r, 64, 100);
    test_awq_clip_search(r, 70, 256, 100, 128, 4, 20, 10);
    test_awq_clip_search(r, 130, 192, 64, 64, 4, 20, 10);
    test_awq_clip_search(r, 33, 96, 17, 32, 4, 10, 10);
    test_awq_clip_search(r, 64, 4096, 512, 128, 4, 20, 10);
    test_awq_clip_search(r, 9, 256, 40, 128, 8, 20, 10);
    test_sq_err(r, 2048, 4096);
    test_sq_err(r, 3, 100);
    }  // all
#ifdef LMF_HAVE_CUBLAS
    test_w4a16_gemm_entry(r, 5, 512, 1024, 128);
    test_w4a16_gemm_entry(r, 600, 520, 1024, 64);
    test_w4a16_gemm_entry(r, 64, 1032, 2048, 128);  // the fused kernel through CublasGemm (GEMV <= 8 rows, dense >= 256)
    test_cublas(r, 64, 512, 4096, false);
    test_cublas(r, 16, 1000, 4096, true);
    test_cublas(r, 3, 1000, 4096, false);  // the gemv path through CublasGemm
    test_cublas_tuned(r, 64, 1024, 4096, false, 0);
    test_cublas_tuned(r, 16, 4096, 1024, false, 8);
    test_cublas_tuned(r, 48, 1000, 2048, true, 0);
    test_cublas_tuned(r, 33, 520, 512, false, 24);
#else
    std::printf("linear(cublas): not run: built without cuBLAS\n");
#endif
  } catch (const lmfleet::Error& e) {
    std::printf("ERROR %s: %s\n", error_code_name(e.code), e.what());
    T.print();
    return 100;
  }
  return T.print();
}
