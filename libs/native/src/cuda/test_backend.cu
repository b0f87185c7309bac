// The CUDA backend against the CPU backend, through native-cpu's own code paths:
//  1. every op of ops.def through its runOp adapter (<op>_run in ops/<op>.cpu.cc) on both backends, same random
//     inputs, outputs compared by ||cuda - cpu|| / ||cpu||;
//  2. the fused f16 decoder (CudaDecoder) against the CPU Decoder on tiny random models: a mixed prefill step of
//     two sequences over shuffled paged blocks, then decode steps (CUDA graphs) with a third sequence joining
//     mid-way (a mixed step, eager), logits compared every step.
// Built by scripts/device-test.sh with engine/model.cc compiled with -Dmake_cpu_backend=lmf_test_make_backend
// (the Model constructor only knows the CPU backend until native-cpu adds the cuda branch).
#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "core/backend.h"
#include "core/error.h"
#include "core/op_call.h"
#include "cuda/backend_cuda.h"
#include "cuda/cuda_decoder.h"
#include "engine/decoder.h"
#include "engine/kv_cache.h"
#include "engine/model.h"
#include "ops/attention.h"
#include "ops/kv_store.h"
#include "ops/rope.h"
#include "ops/w4a16_gemm.h"

namespace lmfleet {
bool g_test_use_cuda = false;
std::unique_ptr<Backend> lmf_test_make_backend(int threads) {
  return g_test_use_cuda ? make_cuda_backend(0) : make_cpu_backend(threads);
}
}  // namespace lmfleet

using namespace lmfleet;

namespace {

std::mt19937_64 gen;
int fails = 0, total = 0;

void report(const std::string& name, const std::string& shape, double err, double bound, const std::string& note = "") {
  const bool ok = err <= bound;  // NaN fails
  fails += !ok;
  total++;
  std::printf("| %s | %s | %.2e | %.0e | %s%s%s |\n", name.c_str(), shape.c_str(), err, bound, ok ? "PASS" : "FAIL",
              note.empty() ? "" : " ", note.c_str());
  std::fflush(stdout);
}

double rel(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return INFINITY;
  double n = 0, d = 0;
  for (size_t i = 0; i < a.size(); i++) {
    if (!std::isfinite(a[i])) return INFINITY;
    n += (double)(a[i] - b[i]) * (a[i] - b[i]);
    d += (double)b[i] * b[i];
  }
  return std::sqrt(n / std::max(d, 1e-30));
}

HostTensor f32_tensor(std::vector<int64_t> shape, float sd = 1.f) {
  HostTensor t;
  t.dtype = DType::F32;
  t.shape = std::move(shape);
  t.bytes.resize((size_t)t.numel() * 4);
  float* p = reinterpret_cast<float*>(t.bytes.data());
  std::normal_distribution<float> nd(0.f, sd);
  for (int64_t i = 0; i < t.numel(); i++) p[i] = nd(gen);
  return t;
}
HostTensor f16_tensor(std::vector<int64_t> shape, float sd = 1.f, float offset = 0.f) {
  HostTensor t;
  t.dtype = DType::F16;
  t.shape = std::move(shape);
  t.bytes.resize((size_t)t.numel() * 2);
  uint16_t* p = reinterpret_cast<uint16_t*>(t.bytes.data());
  std::normal_distribution<float> nd(0.f, sd > 0 ? sd : 1.f);
  for (int64_t i = 0; i < t.numel(); i++) p[i] = f32_to_f16(offset + (sd > 0 ? nd(gen) : 0.f));
  return t;
}
HostTensor i32_tensor(std::vector<int64_t> shape, const std::vector<int32_t>& v) {
  HostTensor t;
  t.dtype = DType::I32;
  t.shape = std::move(shape);
  t.bytes.resize(v.size() * 4);
  std::memcpy(t.bytes.data(), v.data(), v.size() * 4);
  return t;
}
std::vector<float> out_f32(const HostTensor& t) {
  std::vector<float> v((size_t)t.numel());
  convert_to_f32(t.bytes.data(), t.dtype, t.numel(), v.data());
  return v;
}

using RunFn = void (*)(Backend&, OpCall&);

void compare_op(Backend& cpu, Backend& cuda, RunFn fn, OpCall call, const std::string& shape, double bound) {
  OpCall a = call, b = call;
  fn(cpu, a);
  try {
    fn(cuda, b);
  } catch (const Error& e) {
    report(call.op, shape, INFINITY, bound, std::string("cuda threw: ") + e.what());
    return;
  }
  double worst = 0;
  for (size_t i = 0; i < a.outputs.size(); i++) {
    if (a.outputs[i].dtype == DType::I32 || a.outputs[i].dtype == DType::U8) {
      worst = std::max(worst, a.outputs[i].bytes == b.outputs[i].bytes ? 0.0 : INFINITY);
    } else {
      worst = std::max(worst, rel(out_f32(b.outputs[i]), out_f32(a.outputs[i])));
    }
  }
  report(call.op, shape, worst, bound);
}

OpCall make_call(const std::string& op, std::vector<HostTensor> in) {
  OpCall c;
  c.op = op;
  c.inputs = std::move(in);
  return c;
}

// AutoAWQ GEMM tensors of a random W4 weight [n, k]: qweight i32 [k, n/8], qzeros i32 [k/g, n/8], scales f16 [k/g, n].
struct AwqTensors { HostTensor qweight, qzeros, scales; };
AwqTensors awq_tensors(int64_t n, int64_t k, int64_t g, float scale_sd) {
  std::uniform_int_distribution<uint32_t> word(0, 0xFFFFFFFFu);
  std::uniform_real_distribution<float> sc(0.25f * scale_sd, scale_sd);
  AwqTensors t;
  std::vector<int32_t> qw((size_t)(k * n / 8)), qz((size_t)(k / g * n / 8));
  for (auto& v : qw) v = (int32_t)word(gen);
  for (auto& v : qz) v = (int32_t)word(gen);
  t.qweight = i32_tensor({k, n / 8}, qw);
  t.qzeros = i32_tensor({k / g, n / 8}, qz);
  t.scales.dtype = DType::F16;
  t.scales.shape = {k / g, n};
  t.scales.bytes.resize((size_t)(k / g * n) * 2);
  uint16_t* h = reinterpret_cast<uint16_t*>(t.scales.bytes.data());
  for (int64_t i = 0; i < k / g * n; i++) h[i] = f32_to_f16(sc(gen));
  return t;
}

void op_tests(Backend& cpu, Backend& cuda) {
  std::uniform_int_distribution<int> id(0, 999);
  std::vector<int32_t> ids(33);
  for (auto& x : ids) x = id(gen);
  compare_op(cpu, cuda, embedding_run, make_call("embedding", {i32_tensor({33}, ids), f32_tensor({1000, 256})}), "33x1000x256", 0);
  {
    auto c = make_call("rms_norm", {f32_tensor({17, 4096}), f32_tensor({4096})});
    c.nums["eps"] = 1e-5;
    compare_op(cpu, cuda, rms_norm_run, c, "17x4096", 1e-5);
  }
  compare_op(cpu, cuda, linear_run, make_call("linear", {f32_tensor({5, 512}), f16_tensor({300, 512}, 0.05f), f16_tensor({300})}),
             "5x300x512 f16 w+bias (gemv)", 2e-3);
  compare_op(cpu, cuda, linear_run, make_call("linear", {f32_tensor({40, 1024}), f16_tensor({520, 1024}, 0.05f)}),
             "40x520x1024 f16 w (cuBLAS)", 2e-3);
  for (const char* type : {"default", "linear", "dynamic", "llama3"}) {
    std::vector<int32_t> pos(9);
    for (auto& p : pos) p = std::uniform_int_distribution<int>(0, 6000)(gen);
    auto c = make_call("rope", {f32_tensor({9, 6, 128}), i32_tensor({9}, pos)});
    c.strs["type"] = type;
    c.nums["factor"] = 4;
    c.nums["theta"] = std::string(type) == "llama3" ? 500000 : 10000;
    c.nums["originalMaxPositionEmbeddings"] = 2048;
    c.nums["maxPositionEmbeddings"] = 2048;
    compare_op(cpu, cuda, rope_run, c, std::string(type) + " 9x6x128", 1e-4);
  }
  {
    std::vector<int32_t> slots = {3, 17, -1, 40, 0};
    compare_op(cpu, cuda, kv_store_run,
               make_call("kv_store", {f32_tensor({5, 256}), f32_tensor({5, 256}), i32_tensor({5}, slots),
                                      f32_tensor({64, 256}), f32_tensor({64, 256})}),
               "5 tokens into 64 slots", 0);
  }
  {
    // 3 sequences (prefill 20 of 20, decode 1 of 45, chunk 7 of 30) over shuffled 16-token blocks, GQA 8/2
    const int bs = 16, nb = 12, mbk = 3;
    std::vector<int32_t> perm(nb);
    std::iota(perm.begin(), perm.end(), 0);
    std::shuffle(perm.begin(), perm.end(), gen);
    std::vector<int32_t> bt(perm.begin(), perm.begin() + 3 * mbk);
    std::vector<int32_t> si = {0, 20, 20, 20, 1, 45, 21, 7, 30};
    compare_op(cpu, cuda, attention_run,
               make_call("attention", {f32_tensor({28, 8, 64}), f32_tensor({nb, bs, 2, 64}), f32_tensor({nb, bs, 2, 64}),
                                       i32_tensor({3, mbk}, bt), i32_tensor({3, 3}, si)}),
               "3 seqs, 28 q tokens, h8/2 d64", 1e-5);
  }
  for (auto [m, n, k, g] : {std::array<int64_t, 4>{1, 512, 1024, 128}, {13, 264, 640, 64}, {70, 128, 96, 32}, {600, 256, 512, 128}}) {
    AwqTensors a = awq_tensors(n, k, g, 0.01f);
    auto c = make_call("w4a16_gemm", {f32_tensor({m, k}), a.qweight, a.qzeros, a.scales, f16_tensor({n})});
    c.nums["group"] = (double)g;
    compare_op(cpu, cuda, w4a16_gemm_run, c, std::to_string(m) + "x" + std::to_string(n) + "x" + std::to_string(k) + " g" + std::to_string(g), 1e-3);
  }
  {  // the AWQ search ops: bit-exact (f16 weights, column scale, clip per (row, group), codes; the stats' f64 sums)
    auto c = make_call("awq_fake_quant", {f16_tensor({96, 512}, 0.05f), f32_tensor({512}, 0.5f), f32_tensor({96, 4}, 0.f)});
    float* s = reinterpret_cast<float*>(c.inputs[1].bytes.data());
    for (int i = 0; i < 512; i++) s[i] = std::exp(s[i]);
    float* cl = reinterpret_cast<float*>(c.inputs[2].bytes.data());
    for (int i = 0; i < 96 * 4; i++) cl[i] = 0.1f + 0.05f * (i % 7);
    c.nums["group"] = 128;
    c.nums["codes"] = 1;
    compare_op(cpu, cuda, awq_fake_quant_run, c, "96x512 g128 scale+clip", 0);
    auto d = make_call("awq_fake_quant", {f32_tensor({40, 192}, 0.05f)});
    d.nums["group"] = 64;
    compare_op(cpu, cuda, awq_fake_quant_run, d, "40x192 g64", 0);
    auto st = f32_tensor({300}, 0.f), sum = f32_tensor({300, 2}, 0.f), mn = f32_tensor({300}, 0.f), mx = f32_tensor({300}, 0.f);
    for (int i = 0; i < 300; i++) {
      reinterpret_cast<float*>(mn.bytes.data())[i] = INFINITY;
      reinterpret_cast<float*>(mx.bytes.data())[i] = -INFINITY;
    }
    compare_op(cpu, cuda, channel_stats_run, make_call("channel_stats", {f32_tensor({257, 300}, 3.f), st, sum, mn, mx}), "257x300", 0);
  }
  compare_op(cpu, cuda, silu_mul_run, make_call("silu_mul", {f32_tensor({7, 1000}, 2.f), f32_tensor({7, 1000})}), "7x1000", 1e-5);
  compare_op(cpu, cuda, add_run, make_call("add", {f32_tensor({1000}), f32_tensor({1000})}), "1000", 1e-6);
  compare_op(cpu, cuda, argmax_run, make_call("argmax", {f32_tensor({9, 32000}, 3.f)}), "9x32000", 0);
  compare_op(cpu, cuda, log_softmax_run, make_call("log_softmax", {f32_tensor({5, 32000}, 3.f)}), "5x32000", 1e-6);
  {
    std::vector<int32_t> t(6);
    for (auto& x : t) x = std::uniform_int_distribution<int>(0, 31999)(gen);
    compare_op(cpu, cuda, nll_run, make_call("nll", {f32_tensor({6, 32000}, 3.f), i32_tensor({6}, t)}), "6x32000", 1e-5);
  }
  {
    auto c = make_call("sample", {f32_tensor({8, 5000}, 3.f)});
    c.nums["temperature"] = 0;
    compare_op(cpu, cuda, sample_run, c, "greedy 8x5000", 0);
    auto c2 = make_call("sample", {f32_tensor({8, 5000}, 3.f)});
    c2.nums["temperature"] = 0.8;
    c2.nums["topK"] = 1;
    c2.nums["seed"] = 7;
    compare_op(cpu, cuda, sample_run, c2, "T0.8 top-k 1 8x5000", 0);
    // Greedy after repetition + presence/frequency penalties over a history with many repeats (the generated
    // part starts at column 10): the same token on both backends.
    std::vector<int32_t> h(8 * 40);
    for (auto& x : h) x = std::uniform_int_distribution<int>(0, 60)(gen);
    for (auto [pres, freq, rep] : {std::array<double, 3>{1.5, 0.5, 1.0}, {-0.5, 2.0, 1.3}, {0.0, -1.0, 1.0}}) {
      auto c3 = make_call("sample", {f32_tensor({8, 5000}, 0.5f), i32_tensor({8, 40}, h)});
      c3.nums["temperature"] = 0;
      c3.nums["presencePenalty"] = pres;
      c3.nums["frequencyPenalty"] = freq;
      c3.nums["repetitionPenalty"] = rep;
      c3.nums["penaltyFrom"] = 10;
      compare_op(cpu, cuda, sample_run, c3, "greedy pres " + std::to_string(pres).substr(0, 4) + " freq " + std::to_string(freq).substr(0, 4) + " rep " + std::to_string(rep).substr(0, 3), 0);
    }
    // Guided decoding: greedy among each row's allowed tokens (about 1 in 16; rows 1 and 5 unguided), with the
    // repetition penalty on, the same token on both backends
    const int words = (5000 + 31) / 32;
    std::vector<int32_t> m((size_t)8 * words, 0);
    for (int r = 0; r < 8; r++)
      for (int t = 0; t < 5000; t++)
        if (r == 1 || r == 5 || std::uniform_int_distribution<int>(0, 15)(gen) == 0) m[(size_t)r * words + t / 32] |= (int32_t)(1u << (t % 32));
    auto c4 = make_call("sample", {f32_tensor({8, 5000}, 3.f), i32_tensor({8, 40}, h), i32_tensor({8, words}, m)});
    c4.nums["temperature"] = 0;
    c4.nums["repetitionPenalty"] = 1.3;
    compare_op(cpu, cuda, sample_run, c4, "greedy, allowed-token masks, rep 1.3", 0);
    // logit bias (the fourth input's nonzero entries) with masks and the repetition penalty: the same greedy tokens
    HostTensor bias = f32_tensor({8, 5000});
    float* bp = reinterpret_cast<float*>(bias.bytes.data());
    std::fill(bp, bp + 8 * 5000, 0.f);
    for (int r = 0; r < 8; r++)
      for (int k = 0; k < 20; k++) bp[(size_t)r * 5000 + std::uniform_int_distribution<int>(0, 4999)(gen)] = std::uniform_real_distribution<float>(-100.f, 100.f)(gen);
    auto c5 = make_call("sample", {f32_tensor({8, 5000}, 3.f), i32_tensor({8, 40}, h), i32_tensor({8, words}, m), bias});
    c5.nums["temperature"] = 0;
    c5.nums["repetitionPenalty"] = 1.3;
    compare_op(cpu, cuda, sample_run, c5, "greedy, masks + logit bias, rep 1.3", 0);
    // min-p 1 leaves only the largest logit: a sampled row (T 0.9, top-p 0.95, repetition penalty) that must give the
    // arg-max on both backends; checks that min_p reaches the device in its slot of the staged parameters
    auto c6 = make_call("sample", {f32_tensor({8, 5000}, 3.f), i32_tensor({8, 40}, h)});
    c6.nums["temperature"] = 0.9;
    c6.nums["topP"] = 0.95;
    c6.nums["minP"] = 1.0;
    c6.nums["repetitionPenalty"] = 1.3;
    c6.nums["seed"] = 3;
    compare_op(cpu, cuda, sample_run, c6, "T0.9 top-p 0.95 min-p 1, rep 1.3", 0);
  }
}

// rope / kv_store / attention called directly (not through runOp) on q, k, v inside one fused qkv buffer
// (row strides), the way engine/decoder.cc calls them.
void strided_op_test(Backend& cpu, Backend& cuda) {
  const int64_t T = 11, NH = 4, NKV = 2, D = 64, qd = NH * D, kvd = NKV * D, ld = qd + 2 * kvd, bs = 8, nb = 6;
  HostTensor qkv = f32_tensor({T, ld}), kc = f32_tensor({nb * bs, kvd}), vc = f32_tensor({nb * bs, kvd});
  std::vector<int32_t> pos(T), slots(T), bt = {4, 1, 3, 0, 5, 2};
  for (int64_t t = 0; t < T; t++) { pos[t] = (int32_t)(5 + t); slots[t] = bt[(5 + t) / bs] * (int32_t)bs + (5 + t) % bs; }
  std::vector<int32_t> si = {0, (int32_t)T, (int32_t)(5 + T)};
  RopeParams rp;
  auto inv = rope_inv_freq(rp, D, 64);
  std::vector<std::vector<float>> outs;
  for (Backend* be : {&cpu, &cuda}) {
    Buffer bq = stage(*be, out_f32(qkv)), bk = stage(*be, out_f32(kc)), bv = stage(*be, out_f32(vc)), bi = stage(*be, inv);
    Buffer bo(be, (size_t)(T * qd * 4));
    float* q = bq.as<float>();
    be->rope({q, T, NH, D, D, pos.data(), bi.as<float>(), 0, ld});
    be->rope({q + qd, T, NKV, D, D, pos.data(), bi.as<float>(), 0, ld});
    be->kv_store({q + qd, q + qd + kvd, slots.data(), T, kvd, bk.as<float>(), bv.as<float>(), nb * bs, ld});
    be->attention({q, bo.as<float>(), bk.as<float>(), bv.as<float>(), nb, bs, bt.data(), nb, si.data(), 1, NH, NKV, D,
                   0.125f, ld});
    std::vector<float> o((size_t)(T * qd)), qo((size_t)(T * ld));
    be->download(o.data(), bo.get(), o.size() * 4);
    be->download(qo.data(), bq.get(), qo.size() * 4);
    o.insert(o.end(), qo.begin(), qo.end());
    outs.push_back(o);
  }
  report("rope+kv_store+attention", "strided in fused qkv, 11 tokens after 5 cached", rel(outs[1], outs[0]), 1e-5);
}

struct TinyModel {
  int64_t vocab, hidden, inter, layers, heads, kv_heads, head_dim;
  bool bias, tied;
  std::string rope;
  int64_t group = 0;  // > 0: W4A16 linears given as AutoAWQ tensors
  bool qk_norm = false;  // Qwen3's per-head q / k norms
  std::vector<int64_t> windows;  // per layer (ModelConfig::layer_window; 0 = full attention), empty: none
  std::vector<int64_t> nope;     // NoPE layers (ModelConfig::no_rope_layers, SmolLM3)
  // mixture of experts (ModelConfig::num_experts > 0): per token `per_tok` of `experts` experts of width moe_inter;
  // dense: layers that keep the dense MLP. zero_router: every router logit is exactly 0 on both backends, so both pick
  // experts 0..per_tok-1 by the tie rule; otherwise the router is random and per_tok should equal experts, because two
  // backends that round differently may pick different experts where two logits nearly tie (test_kernels checks the
  // selection itself exactly, cuda-parity.js against transformers)
  int64_t experts = 0, per_tok = 0, moe_inter = 0;
  bool renorm = true, zero_router = false;
  std::vector<int64_t> dense;
  // Gemma: GeGLU, sandwich norms, (1 + w) norms (stored near 0, loaded with TensorSpec::add 1), embedding times
  // sqrt(hidden), a softmax scale of 0.2; Gemma 3's sliding layers (windows) rotate with a local rope of theta 10000
  // (local_rope), Gemma 2 soft-caps its attention scores and final logits (softcaps)
  // Gemma 1 (gemma1, with gemma): no sandwich norms, exact (erf) GELU as transformers computes for hidden_act "gelu"
  bool gemma = false, local_rope = false, gemma1 = false;
  float attn_softcap = 0.f, final_softcap = 0.f;
};

ModelConfig make_config(const TinyModel& t) {
  ModelConfig c;
  c.backend = "cpu";  // see lmf_test_make_backend
  c.vocab = t.vocab; c.hidden = t.hidden; c.inter = t.inter; c.layers = t.layers;
  c.heads = t.heads; c.kv_heads = t.kv_heads; c.head_dim = t.head_dim;
  c.eps = 1e-5f;
  c.max_position = 4096;
  c.rope.type = t.rope;
  c.rope.theta = t.rope == "llama3" ? 500000 : 10000;
  c.rope.factor = t.rope == "default" ? 1 : 4;
  c.rope.original_max_position = 64;  // dynamic NTK kicks in past 64 tokens
  c.rope.max_position = 64;
  c.tie_embeddings = t.tied;
  c.quant_group = t.group;
  c.qk_norm = t.qk_norm;
  c.layer_window = t.windows;
  c.no_rope_layers = t.nope;
  c.num_experts = t.experts;
  c.experts_per_tok = t.per_tok;
  c.moe_inter = t.moe_inter;
  c.norm_topk_prob = t.renorm;
  c.dense_layers = t.dense;
  if (t.gemma) {
    c.act = t.gemma1 ? Activation::Gelu : Activation::GeluTanh;
    c.sandwich_norms = !t.gemma1;
    c.embed_scale = std::sqrt((float)t.hidden);
    c.rope.theta = 1000000;
    c.rope.attention_scale = 0.2;
    c.has_rope_local = t.local_rope;
    c.rope_local.theta = 10000;
    c.rope_local.attention_scale = 0.2;
    c.attn_softcap = t.attn_softcap;
    c.final_softcap = t.final_softcap;
  }
  auto add_raw = [&](const std::string& n, HostTensor h) {
    TensorSpec s;
    s.name = n; s.dtype = h.dtype; s.shape = h.shape; s.data = std::move(h.bytes);
    if (t.gemma && n.find("norm.weight") != std::string::npos) s.add = 1.0;  // the (1 + w) norms
    c.tensors.push_back(std::move(s));
  };
  auto add = [&](const std::string& n, HostTensor h) {
    const std::string suffix = ".weight";
    const bool lin = n.find(".q.") != std::string::npos || n.find(".k.") != std::string::npos || n.find(".v.") != std::string::npos ||
                     n.find(".o.") != std::string::npos || n.find(".gate.") != std::string::npos || n.find(".up.") != std::string::npos ||
                     n.find(".down.") != std::string::npos;
    if (t.group > 0 && lin && n.size() > suffix.size() && n.compare(n.size() - suffix.size(), suffix.size(), suffix) == 0) {
      const std::string p = n.substr(0, n.size() - suffix.size());
      // scales ~ 2 * sd / 15 keep the dequantized weights about as large as the f16 ones
      AwqTensors a = awq_tensors(h.shape[0], h.shape[1], t.group, 0.05f * 4 / 15);
      add_raw(p + ".qweight", std::move(a.qweight));
      add_raw(p + ".qzeros", std::move(a.qzeros));
      add_raw(p + ".scales", std::move(a.scales));
      return;
    }
    add_raw(n, std::move(h));
  };
  const int64_t H = t.hidden, qd = t.heads * t.head_dim, kvd = t.kv_heads * t.head_dim;
  add("embed_tokens.weight", f16_tensor({t.vocab, H}));
  if (!t.tied) add("lm_head.weight", f16_tensor({t.vocab, H}, 0.05f));
  const float n1 = t.gemma ? 0.f : 1.f;  // (Gemma's norms hold w and load as 1 + w)
  add("norm.weight", f16_tensor({H}, 0.1f, n1));
  for (int64_t i = 0; i < t.layers; i++) {
    const std::string p = "layers." + std::to_string(i) + ".";
    add(p + "input_norm.weight", f16_tensor({H}, 0.1f, n1));
    add(p + "post_norm.weight", f16_tensor({H}, 0.1f, n1));
    if (c.sandwich_norms) {
      add(p + "attn_out_norm.weight", f16_tensor({H}, 0.1f, n1));
      add(p + "mlp_out_norm.weight", f16_tensor({H}, 0.1f, n1));
    }
    add(p + "q.weight", f16_tensor({qd, H}, 0.05f));
    add(p + "k.weight", f16_tensor({kvd, H}, 0.05f));
    add(p + "v.weight", f16_tensor({kvd, H}, 0.05f));
    if (t.bias) {
      add(p + "q.bias", f16_tensor({qd}, 0.1f));
      add(p + "k.bias", f16_tensor({kvd}, 0.1f));
      add(p + "v.bias", f16_tensor({kvd}, 0.1f));
    }
    if (t.qk_norm) {
      add(p + "q_norm.weight", f16_tensor({t.head_dim}, 0.2f, n1));
      add(p + "k_norm.weight", f16_tensor({t.head_dim}, 0.2f, n1));
    }
    add(p + "o.weight", f16_tensor({H, qd}, 0.05f));
    if (c.moe_layer(i)) {
      add(p + "router.weight", f16_tensor({t.experts, H}, t.zero_router ? 0.f : 0.05f));
      for (int64_t e = 0; e < t.experts; e++) {
        const std::string x = p + "experts." + std::to_string(e) + ".";
        add(x + "gate.weight", f16_tensor({t.moe_inter, H}, 0.05f));
        add(x + "up.weight", f16_tensor({t.moe_inter, H}, 0.05f));
        add(x + "down.weight", f16_tensor({H, t.moe_inter}, 0.05f));
      }
      continue;
    }
    add(p + "gate.weight", f16_tensor({t.inter, H}, 0.05f));
    add(p + "up.weight", f16_tensor({t.inter, H}, 0.05f));
    add(p + "down.weight", f16_tensor({H, t.inter}, 0.05f));
  }
  return c;
}

struct Seq {
  std::vector<int32_t> tokens;
  std::vector<int32_t> blocks;
  int64_t done = 0;  // tokens already in the cache
};

// qp: KV cache quant policy (0 float, 8 int8, 4 int4) of both models. Quantized, the two decoders store rows that
// differ by f16 vs f32 rounding, so a value may land one quantization step apart: looser bounds.
// nseq > 8: the decode steps run in a batch bucket above the GEMV rows, so CudaDecoder tunes the GEMM shapes
// (CublasGemm::set_tuning) in an eager step before it captures the graph.
// diag (on by default; costs nothing while steps pass): a step over the bound is run again on both backends with the same batch (the KV
// writes are the same values again), and the rerun's logits are compared with each side's first ones: which backend
// gave a different answer for the same input. Returns whether the case passed.
// verify_q > 1: speculative verification steps (Scheduler's n-gram drafts): after its prefill, each step a sequence
// computes its last token and verify_q - 1 more (random "drafts"), with logits at every position; when every scheduled
// sequence does so, the CUDA decoder replays a verification graph.
bool decoder_test(const TinyModel& t, const std::string& name, int qp = 0, int nseq = 3, bool diag = true, int verify_q = 0) {
  ModelConfig cfg = make_config(t);
  cfg.kv_quant_policy = qp;
  g_test_use_cuda = false;
  Model cpu_m(cfg);
  g_test_use_cuda = true;
  Model gpu_m(cfg);
  cpu_m.load();
  gpu_m.load();
  CudaDecoder gdec(gpu_m);
  Decoder& cdec = model_decoder(cpu_m);
  KvCacheOptions ko;
  ko.block_size = 16;
  ko.num_blocks = 16 + 8 * nseq;
  ko.quant_policy = qp;
  ko.head_dim = t.head_dim;
  const int64_t kvw = t.kv_heads * t.head_dim;
  KvCache ccache(cpu_m.backend(), t.layers, kvw, ko), gcache(gpu_m.backend(), t.layers, kvw, ko);
  std::vector<int32_t> free_blocks(ko.num_blocks);
  std::iota(free_blocks.begin(), free_blocks.end(), 0);
  std::shuffle(free_blocks.begin(), free_blocks.end(), gen);
  std::uniform_int_distribution<int> tok(0, (int)t.vocab - 1);
  std::vector<Seq> seqs(nseq);
  for (int i = 0; i < nseq; i++) {
    const int n = i == 0 ? 37 : (i == 1 ? 70 : (i == 2 ? 90 : 20 + 7 * i));
    for (int j = 0; j < n; j++) seqs[i].tokens.push_back(tok(gen));
  }
  double worst = 0;
  int steps = 0, argmax_same = 0, argmax_total = 0;
  for (int step = 0; step < 8; step++) {
    // which sequences run, and how many tokens each: step 0 prefills 0 and 1; seq 2 prefills at step 4
    std::vector<std::pair<int, int64_t>> sched;
    std::vector<bool> all_rows;
    for (int i = 0; i < nseq; i++) {
      if (i == 2 && step < 4) continue;
      int64_t n = (int64_t)seqs[i].tokens.size() - seqs[i].done;
      const bool verify = verify_q > 1 && n == 1 && seqs[i].done > 0;
      if (verify) {
        for (int j = 1; j < verify_q; j++) seqs[i].tokens.push_back(tok(gen));
        n = verify_q;
      }
      sched.push_back({i, n});
      all_rows.push_back(verify);
    }
    StepBatch b;
    b.max_blocks = 1;
    for (auto& [i, n] : sched) {
      Seq& s = seqs[i];
      while ((int64_t)s.blocks.size() * ko.block_size < s.done + n) {
        s.blocks.push_back(free_blocks.back());
        free_blocks.pop_back();
      }
      b.max_blocks = std::max<int64_t>(b.max_blocks, (int64_t)s.blocks.size());
    }
    std::vector<size_t> last_row;  // per scheduled sequence: its last position's logit row
    for (size_t k = 0; k < sched.size(); k++) {
      const auto [i, n] = sched[k];
      Seq& s = seqs[i];
      const int32_t q0 = (int32_t)b.tokens.size();
      for (int64_t j = 0; j < n; j++) {
        const int64_t pos = s.done + j;
        b.tokens.push_back(s.tokens[pos]);
        b.positions.push_back((int32_t)pos);
        b.slots.push_back((int32_t)(s.blocks[pos / ko.block_size] * ko.block_size + pos % ko.block_size));
      }
      b.seq_info.insert(b.seq_info.end(), {q0, (int32_t)n, (int32_t)(s.done + n)});
      for (int64_t j = 0; j < b.max_blocks; j++) b.block_tables.push_back(j < (int64_t)s.blocks.size() ? s.blocks[j] : 0);
      for (int64_t j = all_rows[k] ? 0 : n - 1; j < n; j++) b.logit_rows.push_back(q0 + (int32_t)j);
      last_row.push_back(b.logit_rows.size() - 1);
    }
    const Buffer& cl = cdec.forward(b, ccache.view());
    std::vector<float> cpu_logits(b.logit_rows.size() * (size_t)t.vocab), gpu_logits(cpu_logits.size());
    cpu_m.backend().download(cpu_logits.data(), cl.get(), cpu_logits.size() * 4);
    const Buffer& gl = gdec.forward(b, gcache.view());
    gpu_m.backend().download(gpu_logits.data(), gl.get(), gpu_logits.size() * 4);
    const double e = rel(gpu_logits, cpu_logits);
    worst = std::max(worst, e);
    const double bound_now = qp == 0 ? 2e-2 : (qp == 8 ? 4e-2 : 1.5e-1);
    if (diag && !(e <= bound_now)) {
      std::vector<float> cpu2(cpu_logits.size()), gpu2(gpu_logits.size());
      const Buffer& cl2 = cdec.forward(b, ccache.view());
      cpu_m.backend().download(cpu2.data(), cl2.get(), cpu2.size() * 4);
      const Buffer& gl2 = gdec.forward(b, gcache.view());
      gpu_m.backend().download(gpu2.data(), gl2.get(), gpu2.size() * 4);
      // which rows: the first and worst logit row over the bound
      int worst_row = -1;
      double wr = 0;
      for (size_t r = 0; r < b.logit_rows.size(); r++) {
        std::vector<float> a(&gpu_logits[r * t.vocab], &gpu_logits[(r + 1) * t.vocab]);
        std::vector<float> c(&cpu_logits[r * t.vocab], &cpu_logits[(r + 1) * t.vocab]);
        const double er = rel(a, c);
        if (er > wr) { wr = er; worst_row = (int)r; }
      }
      const bool dec_step = (int)b.tokens.size() == (int)b.num_seqs();
      std::printf("DIAG step %d (%s, %zu tokens, %lld seqs): gpu vs cpu %.3e (worst row %d: %.3e); rerun: cpu2 vs cpu %.3e, "
                  "gpu2 vs gpu %.3e, gpu2 vs cpu %.3e\n",
                  step, dec_step ? "decode" : (step == 0 ? "prefill" : "mixed"), b.tokens.size(), (long long)b.num_seqs(), e,
                  worst_row, wr, rel(cpu2, cpu_logits), rel(gpu2, gpu_logits), rel(gpu2, cpu_logits));
      std::fflush(stdout);
    }
    for (size_t r = 0; r < b.logit_rows.size(); r++) {
      const float* cr = &cpu_logits[r * t.vocab];
      const float* gr = &gpu_logits[r * t.vocab];
      argmax_same += (std::max_element(cr, cr + t.vocab) - cr) == (std::max_element(gr, gr + t.vocab) - gr);
      argmax_total++;
    }
    steps++;
    // next token of every scheduled sequence: the CPU's arg-max (both backends continue identically)
    for (size_t r = 0; r < sched.size(); r++) {
      Seq& s = seqs[sched[r].first];
      s.done += sched[r].second;
      const float* row = &cpu_logits[last_row[r] * t.vocab];
      s.tokens.push_back((int32_t)(std::max_element(row, row + t.vocab) - row));
    }
  }
  char shape[200];
  std::snprintf(shape, sizeof shape, "%s: %d seqs, %d steps (prefill, graph decode, mixed), %zu graphs, %zu gemm plans",
                name.c_str(), nseq, steps, gdec.graphs(), dynamic_cast<CudaBackend&>(gpu_m.backend()).gemm().plans());
  std::string qname = qp ? " int" + std::to_string(qp) + " KV" : std::string();
  if (verify_q > 1) qname += " verify " + std::to_string(verify_q);
  const double bound = qp == 0 ? 2e-2 : (qp == 8 ? 4e-2 : 1.5e-1);
  report((t.group ? "decoder W4A16(cuda vs cpu)" : "decoder(cuda vs cpu)") + qname, shape, worst, bound,
         "worst step; greedy token equal " + std::to_string(argmax_same) + "/" + std::to_string(argmax_total));
  return worst <= bound;
}

// bf16 weights beyond f16's range: the cuda backend (f16 weights) refuses the tensor with its name and the count; the
// cpu backend (f32) loads the same tensors and keeps the values.
void bf16_range_test() {
  const TinyModel t{320, 64, 160, 1, 4, 1, 16, false, false, "default"};
  ModelConfig cfg = make_config(t);
  bool replaced = false;
  for (auto& s : cfg.tensors) {
    if (s.name != "layers.0.down.weight") continue;
    const int64_t n = (int64_t)s.data.size() / 2;
    std::vector<float> v((size_t)n);
    convert_to_f32(s.data.data(), DType::F16, n, v.data());
    v[5] = 1e5f;       // past f16's max
    v[17] = -7e4f;     // past it (rounds to -inf in f16)
    v[40] = 65280.f;   // the largest bf16 below f16's max (65504; bf16's next value is 65536): allowed
    std::vector<uint8_t> b((size_t)n * 2);
    uint16_t* h = reinterpret_cast<uint16_t*>(b.data());
    for (int64_t i = 0; i < n; i++) h[i] = f32_to_bf16(v[i]);
    s.dtype = DType::BF16;
    s.data = std::move(b);
    replaced = true;
  }
  g_test_use_cuda = false;
  Model cpu_m(cfg);
  bool cpu_ok = replaced;
  try {
    cpu_m.load();
  } catch (const Error& e) {
    cpu_ok = false;
    std::printf("cpu load failed: %s\n", e.what());
  }
  g_test_use_cuda = true;
  Model gpu_m(cfg);
  std::string msg;
  bool refused = false;
  try {
    gpu_m.load();
  } catch (const Error& e) {
    refused = e.code == ErrorCode::ModelFormat;
    msg = e.what();
  }
  const bool named = msg.find("layers.0.down.weight") != std::string::npos && msg.find("2 of ") != std::string::npos;
  report("bf16 beyond f16 range", "cpu loads; cuda refuses layers.0.down.weight (2 values)",
         cpu_ok && refused && named ? 0.0 : 1.0, 0.0, msg.substr(0, 160));
}

}  // namespace

int main(int argc, char** argv) {
  const uint64_t seed = argc > 1 ? std::stoull(argv[1]) : (uint64_t)std::chrono::steady_clock::now().time_since_epoch().count();
  gen.seed(seed);
  std::printf("seed %llu\n| test | case | rel err vs cpu | bound | result |\n|---|---|---|---|---|\n", (unsigned long long)seed);
  // test_backend SEED --loop N: the first fp16 decoder case only, N times (seeds SEED..SEED+N-1), with the rerun
  // diagnosis of diag above; prints the failing seeds. For an intermittent mismatch: run it under different switches.
  if (argc > 3 && std::string(argv[2]) == "--loop") {
    const int n = std::atoi(argv[3]);
    int bad = 0;
    try {
      for (int i = 0; i < n; i++) {
        gen.seed(seed + (uint64_t)i);
        if (!decoder_test({1000, 512, 1024, 2, 4, 2, 128, true, false, "default"}, "h512 GQA 4/2 d128, qkv bias", 0, 3, true)) {
          bad++;
          std::printf("LOOP FAIL seed %llu\n", (unsigned long long)(seed + (uint64_t)i));
        }
      }
    } catch (const Error& e) {
      std::printf("ERROR %s: %s\n", error_code_name(e.code), e.what());
      return 100;
    }
    std::printf("loop: %d/%d failed\n", bad, n);
    return bad ? 1 : 0;
  }
  try {
    auto cpu = make_cpu_backend(0);
    auto cuda = make_cuda_backend(0);
    op_tests(*cpu, *cuda);
    strided_op_test(*cpu, *cuda);
    decoder_test({1000, 512, 1024, 2, 4, 2, 128, true, false, "default"}, "h512 GQA 4/2 d128, qkv bias");
    decoder_test({1000, 256, 512, 3, 4, 4, 64, false, true, "llama3"}, "h256 MHA d64, tied, llama3 rope");
    decoder_test({1000, 512, 1024, 2, 8, 1, 64, false, false, "dynamic"}, "h512 GQA 8/1 d64, dynamic NTK");
    decoder_test({1000, 512, 1024, 2, 4, 2, 128, true, false, "default", 128}, "W4A16 g128 h512 GQA 4/2 d128, qkv bias");
    decoder_test({1000, 256, 608, 2, 4, 4, 64, false, true, "default", 32}, "W4A16 g32 h256 MHA d64 inter 608 (padded k), tied");
    decoder_test({320, 64, 160, 2, 4, 1, 16, true, false, "default"}, "h64 GQA 4/1 d16 (golden-sized), qkv bias");
    decoder_test({1000, 512, 1024, 2, 16, 1, 32, false, false, "default"}, "h512 GQA 16/1 d32 (> 8 q heads per kv head)");
    // Qwen3: per-head q / k norms, q width (heads x head_dim) != hidden; fp16, W4A16 (the rope is not fused into the
    // qkv GEMV then), int8 KV
    decoder_test({1000, 256, 512, 2, 4, 2, 128, false, false, "default", 0, true}, "Qwen3 qk norm h256 GQA 4/2 d128 (q 512 wide)");
    decoder_test({1000, 256, 512, 2, 4, 2, 128, false, true, "default", 128, true}, "Qwen3 qk norm W4A16 g128 h256 GQA 4/2 d128, tied");
    decoder_test({1000, 256, 512, 2, 4, 2, 128, false, false, "default", 0, true}, "Qwen3 qk norm h256 GQA 4/2 d128 + int8 KV", 8);
    decoder_test({1000, 512, 1024, 2, 4, 2, 128, true, false, "default"}, "h512 GQA 4/2 d128, qkv bias", 8);
    decoder_test({1000, 512, 1024, 2, 8, 1, 64, false, false, "dynamic"}, "h512 GQA 8/1 d64, dynamic NTK", 8);
    decoder_test({1000, 512, 1024, 2, 4, 2, 128, true, false, "default"}, "h512 GQA 4/2 d128, qkv bias", 4);
    decoder_test({1000, 512, 1024, 2, 4, 2, 128, true, false, "default", 128}, "W4A16 g128 h512 GQA 4/2 d128 + int8 KV", 8);
    // sliding windows shorter than every sequence (37-90 tokens), per layer (full attention in the middle one), and
    // SmolLM3's NoPE layers; fp16, W4A16 (the qkv GEMV's fused rope with the zero table), int8 KV
    auto windowed = [](TinyModel t, std::vector<int64_t> w, std::vector<int64_t> nope) {
      t.windows = std::move(w);
      t.nope = std::move(nope);
      return t;
    };
    decoder_test(windowed({1000, 512, 1024, 3, 4, 2, 128, true, false, "default"}, {24, 0, 9}, {}),
                 "h512 GQA 4/2 d128, windows 24 / full / 9");
    decoder_test(windowed({1000, 512, 1024, 3, 4, 2, 128, false, false, "default", 128}, {24, 0, 9}, {}),
                 "W4A16 g128 h512 GQA 4/2 d128, windows 24 / full / 9");
    decoder_test(windowed({1000, 256, 512, 3, 4, 4, 64, false, true, "default"}, {17, 17, 17}, {}),
                 "h256 MHA d64, window 17 + int8 KV", 8);
    decoder_test(windowed({1000, 512, 1024, 3, 4, 2, 128, false, false, "default"}, {}, {2}), "h512 GQA 4/2 d128, layer 2 NoPE");
    decoder_test(windowed({1000, 512, 1024, 3, 4, 2, 128, false, false, "default", 128}, {0, 0, 20}, {0, 2}),
                 "W4A16 g128 h512 GQA 4/2 d128, layers 0 / 2 NoPE, layer 2 window 20");
    // speculative verification steps (every position's logits): 5 tokens per sequence (fp16 GEMV rows -> cuBLAS, W4
    // fused GEMVs at one sequence), 3 tokens with 3 sequences (a padded graph), int8 KV
    decoder_test({1000, 512, 1024, 2, 4, 2, 128, true, false, "default"}, "h512 GQA 4/2 d128, qkv bias", 0, 3, true, 5);
    decoder_test({1000, 512, 1024, 2, 4, 2, 128, true, false, "default", 128}, "W4A16 g128 h512 GQA 4/2 d128, qkv bias", 0, 1, true, 5);
    decoder_test({1000, 512, 1024, 2, 4, 2, 128, true, false, "default", 128}, "W4A16 g128 h512 GQA 4/2 d128, qkv bias", 0, 3, true, 3);
    decoder_test({1000, 256, 512, 3, 4, 4, 64, false, true, "llama3"}, "h256 MHA d64, tied, llama3 rope", 8, 3, true, 4);
    // mixture of experts (the decoder runs eagerly then: the host reads each layer's expert counts): every expert chosen
    // with the router's random softmax weights (renormalized or not); two of eight by the tie rule (a zero router) with a
    // dense layer between sparse ones and Qwen3's q / k norms; W4A16 experts (the router stays f16); int8 KV; 12
    // sequences (the experts' linears above the GEMV rows)
    auto moe = [](TinyModel t, int64_t E, int64_t K, int64_t Im, bool renorm, bool zero, std::vector<int64_t> dense) {
      t.experts = E; t.per_tok = K; t.moe_inter = Im; t.renorm = renorm; t.zero_router = zero; t.dense = std::move(dense);
      return t;
    };
    decoder_test(moe({1000, 512, 1024, 2, 4, 2, 128, false, false, "default"}, 4, 4, 256, true, false, {}),
                 "MoE 4 experts all chosen, renormalized, h512 GQA 4/2 d128");
    decoder_test(moe({1000, 256, 512, 3, 4, 2, 64, false, false, "default", 0, true}, 8, 2, 128, false, true, {1}),
                 "MoE 2 of 8 (zero router), layer 1 dense, Qwen3 qk norm h256 d64");
    decoder_test(moe({1000, 512, 1024, 2, 4, 2, 128, false, false, "default", 128}, 3, 3, 384, false, false, {}),
                 "MoE W4A16 g128 3 experts all chosen, h512 GQA 4/2 d128");
    decoder_test(moe({1000, 512, 1024, 2, 4, 2, 128, false, false, "default", 128}, 8, 2, 256, true, true, {0}),
                 "MoE W4A16 g128 2 of 8 (zero router), layer 0 dense", 8);
    // Gemma 3 (TinyModel::gemma): layers 0 and 2 slide (local rope), layer 1 is global; fp16, W4A16 (no W4 fusions:
    // sandwich norms), int8 KV, head dim 256 as Gemma's, 12 sequences (GEMMs at the batch bucket)
    auto gemma = [](TinyModel t, std::vector<int64_t> w) {
      t.gemma = t.local_rope = t.qk_norm = true;
      t.windows = std::move(w);
      return t;
    };
    // Gemma 2: every other layer slides, no q / k norms, one rope; attention scores capped at 1.5 (they reach ~3 here)
    // and final logits at 2
    auto gemma2 = [](TinyModel t, std::vector<int64_t> w) {
      t.gemma = true;
      t.windows = std::move(w);
      t.attn_softcap = 1.5f;
      t.final_softcap = 2.f;
      return t;
    };
    decoder_test(gemma2({1000, 256, 512, 2, 4, 2, 64, false, true, "default"}, {20, 0}), "Gemma 2 h256 GQA 4/2 d64, softcaps 1.5 / 2, tied");
    TinyModel g1{1000, 256, 512, 2, 4, 1, 128, false, true, "default"};  // Gemma 1: MQA, head dim 128 over hidden 256
    g1.gemma = g1.gemma1 = true;
    decoder_test(g1, "Gemma 1 h256 MQA 4/1 d128, exact GELU, tied");
    decoder_test(gemma2({1000, 256, 512, 2, 2, 1, 256, false, true, "default", 128}, {20, 0}), "Gemma 2 W4A16 g128 d256 + int8 KV", 8, 12);
    decoder_test(gemma({1000, 256, 512, 3, 4, 2, 64, false, true, "default"}, {20, 0, 20}), "Gemma 3 h256 GQA 4/2 d64, windows 20 / full / 20, tied");
    decoder_test(gemma({1000, 256, 512, 3, 4, 2, 64, false, true, "default", 128}, {20, 0, 20}), "Gemma 3 W4A16 g128 h256 GQA 4/2 d64, tied");
    decoder_test(gemma({1000, 256, 512, 2, 2, 1, 256, false, true, "default"}, {24, 0}), "Gemma 3 h256 GQA 2/1 d256 + int8 KV", 8);
    decoder_test(gemma({1000, 256, 512, 2, 4, 2, 64, false, true, "default"}, {24, 0}), "Gemma 3 h256 GQA 4/2 d64, 12 sequences", 0, 12);
    setenv("LMFLEET_MOE_W4_GROUPED", "0", 1);  // W4A16 experts by the host path (per-expert linears, no graphs)
    decoder_test(moe({1000, 512, 1024, 2, 4, 2, 128, false, false, "default", 128}, 3, 3, 384, false, false, {}),
                 "MoE W4A16 g128 3 experts all chosen, host path");
    unsetenv("LMFLEET_MOE_W4_GROUPED");
    decoder_test(moe({1000, 256, 512, 2, 4, 4, 64, false, true, "llama3"}, 4, 4, 128, true, false, {}),
                 "MoE 4 experts all chosen, h256 MHA d64, tied", 0, 12);
    // 12 sequences: decode graphs at batch bucket 16 with tuned GEMM plans (cuBLASLt or cuBLAS's default per shape;
    // tuning is opt-in: LMFLEET_GEMM_TUNE=1), then without
    setenv("LMFLEET_GEMM_TUNE", "1", 1);
    decoder_test({1000, 512, 1024, 2, 4, 2, 128, true, false, "default"}, "h512 GQA 4/2 d128, qkv bias", 0, 12);
    decoder_test({1000, 256, 512, 3, 4, 4, 64, false, true, "llama3"}, "h256 MHA d64, tied, llama3 rope", 0, 12);
    unsetenv("LMFLEET_GEMM_TUNE");
    decoder_test({1000, 512, 1024, 2, 4, 2, 128, true, false, "default"}, "h512 GQA 4/2 d128, qkv bias, untuned", 0, 12);
    bf16_range_test();
  } catch (const Error& e) {
    std::printf("ERROR %s: %s\n", error_code_name(e.code), e.what());
    return 100;
  }
  std::printf("%d/%d passed\n", total - fails, total);
  return fails;
}
