#include "cuda/cuda_decoder.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "core/env.h"
#include "core/error.h"
#include "cuda/backend_cuda.h"
#include "cuda/check.cuh"
#include "cuda/f32_ops.cuh"
#include "cuda/peer_collective.h"
#include "engine/host_stamps.h"
#include "ops/attention.cuh"
#include "ops/embedding.cuh"
#include "ops/linear.cuh"
#include "ops/moe.cuh"
#include "ops/rms_norm.cuh"
#include "ops/rope.cuh"
#include "ops/silu_mul.cuh"

namespace lmfleet {

namespace {

half* to_f16_copy(const Buffer& b, size_t n, cudaStream_t s) {
  half* p;
  LMF_CUDA_CHECK(cudaMalloc(&p, n * sizeof(half)));
  f32_to_f16_cuda(b.as<float>(), p, (int64_t)n, s);
  return p;
}

const CudaLinearWeight& cw(const std::unique_ptr<LinearWeight>& w) {
  auto* p = dynamic_cast<const CudaLinearWeight*>(w.get());
  if (!p) fail(ErrorCode::Internal, "cuda decoder: a linear weight was not prepared by the cuda backend");
  return *p;
}

// y (ldy) = x (ldx) W^T + b for m rows: W4A16 weights through the W4A16 kernels, f16 ones through gemv/cuBLAS.
void linear_any(CublasGemm& g, const half* x, int ldx, const std::unique_ptr<LinearWeight>& w, half* y, int ldy, int m) {
  if (w->group > 0) {
    auto* q = dynamic_cast<const CudaW4A16Weight*>(w.get());
    if (!q) fail(ErrorCode::Internal, "cuda decoder: a W4A16 weight was not prepared by the cuda backend");
    g.linear_w4a16(x, ldx, q->dev(), y, ldy, m);
    return;
  }
  const CudaLinearWeight& f = cw(w);
  g.linear(x, ldx, f.w, f.bias, y, ldy, m, (int)f.n, (int)f.k);
}

const CudaW4A16Weight* w4_of(const std::unique_ptr<LinearWeight>& w) {
  return w && w->group > 0 ? dynamic_cast<const CudaW4A16Weight*>(w.get()) : nullptr;
}

// logits [R, n * vl] from the all-gathered slices [n][R][vl] (tensor parallelism)
__global__ void interleave_logits_kernel(const float* __restrict__ g, float* __restrict__ out, int R, int n, int vl) {
  const int64_t total = (int64_t)R * n * vl;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
    const int64_t r = i / ((int64_t)n * vl), rest = i % ((int64_t)n * vl), rank = rest / vl, c = rest % vl;
    out[i] = g[(rank * R + r) * vl + c];
  }
}

// Gemma 2's final logit soft-capping in place: x -> cap tanh(x / cap) (f32, as the CPU decoder)
__global__ void softcap_logits_kernel(float* __restrict__ x, int64_t n, float cap) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    x[i] = cap * tanhf(x[i] / cap);
}

// LMFLEET_ATTN_SPLIT=32|64|...|4096 (an A/B knob, read at each step): the decode attention's split length (keys per
// block) instead of the choice by (sequence, kv head) pairs below; 0 / unset: that choice.
int attn_split_forced() {
  const char* e = std::getenv("LMFLEET_ATTN_SPLIT");
  const int v = e ? std::atoi(e) : 0;
  return v >= 32 && v <= 4096 && v % 32 == 0 ? v : 0;
}

int batch_bucket(int s) {
  if (s <= 8) {
    int b = 1;
    while (b < s) b <<= 1;
    return b;
  }
  return (s + 15) / 16 * 16;
}

int pow2_at_least(int v) {
  int b = 1;
  while (b < v) b <<= 1;
  return b;
}

// the most tokens per sequence a speculative verification step runs as a decode step with (forward)
constexpr int kMaxVerifyTokens = 16;

}  // namespace

CudaDecoder::CudaDecoder(Model& m)
    : m_(m), be_(dynamic_cast<CudaBackend&>(m.backend())), s_(dynamic_cast<CudaBackend&>(m.backend()).stream()) {
  be_.bind();
  const ModelConfig& c = m.cfg();
  const ShardPlan& sh = m.shard();
  if (c.head_dim != 16 && c.head_dim != 32 && c.head_dim != 64 && c.head_dim != 96 && c.head_dim != 128 && c.head_dim != 256)
    fail(ErrorCode::InvalidArgument, "cuda: head_dim must be 16, 32, 64, 96, 128 or 256, got " + std::to_string(c.head_dim));
  if (c.hidden % 8 || (c.any_dense_mlp() && sh.inter % 8))
    fail(ErrorCode::InvalidArgument, "cuda: hidden and intermediate sizes (per tensor-parallel rank) must be multiples of 8");
  if (const char* g = std::getenv("LMFLEET_CUDA_GRAPHS")) use_graphs_ = std::string(g) != "0";
  if (c.num_experts > 0 && c.act != Activation::Silu) fail(ErrorCode::InvalidArgument, "cuda: mixture-of-experts layers run SwiGLU experts only");
  if (c.num_experts > 0) {
    if (c.num_experts > kMoeMaxExperts || c.experts_per_tok > kMoeMaxTopK || c.moe_inter % 8)
      fail(ErrorCode::InvalidArgument, "cuda: a mixture of experts needs at most " + std::to_string(kMoeMaxExperts) + " experts, at most " +
                                           std::to_string(kMoeMaxTopK) + " per token and an expert width that is a multiple of 8 (got " +
                                           std::to_string(c.num_experts) + ", " + std::to_string(c.experts_per_tok) + ", " +
                                           std::to_string(c.moe_inter) + ")");
    LMF_CUDA_CHECK(cudaMallocHost(&moe_host_off_, (size_t)(c.num_experts + 1) * sizeof(int)));
    bool f16 = true, w4 = true;
    for (int64_t l = 0; l < c.layers; l++)
      if (c.moe_layer(l))
        for (const auto* v : {&m.layers[l].expert_gate_up, &m.layers[l].expert_down})
          for (const auto& w : *v) {
            f16 = f16 && w->group == 0 && !cw(w).bias;
            const CudaW4A16Weight* q = w4_of(w);
            w4 = w4 && q && !q->bias;
          }
    // W4A16 experts through moe_gemv_w4_cuda (graphs kept); LMFLEET_MOE_W4_GROUPED=0: the host path instead. On the
    // Qwen3-30B-A3B shape (8 layers, H100, session 24) batch 1 / 16 / 64: 0.697 / 1.719 / 2.840 ms per step, against
    // fp16's 0.911 / 3.703 / 7.761 (the host path was 1.454 / 9.252 / 11.797 in session 23)
    w4 = w4 && env_switch("LMFLEET_MOE_W4_GROUPED", true);
    moe_grouped_ = f16 || w4;
    moe_w4_ = !f16 && w4;
    moe_gu_w_.assign(c.layers, nullptr);
    moe_dn_w_.assign(c.layers, nullptr);
    moe_gu_w4_.assign(c.layers, nullptr);
    moe_dn_w4_.assign(c.layers, nullptr);
    // per MoE layer and linear, a device array of the E experts' handles (W4A16Dev or f16 weight pointers)
    auto upload = [](auto** dst, const auto& items) {
      const size_t bytes = items.size() * sizeof(items[0]);
      LMF_CUDA_CHECK(cudaMalloc(dst, bytes));
      LMF_CUDA_CHECK(cudaMemcpy(*dst, items.data(), bytes, cudaMemcpyHostToDevice));
    };
    for (int64_t l = 0; moe_grouped_ && l < c.layers; l++) {
      if (!c.moe_layer(l)) continue;
      for (const auto* v : {&m.layers[l].expert_gate_up, &m.layers[l].expert_down}) {
        const bool gu = v == &m.layers[l].expert_gate_up;
        if (moe_w4_) {
          std::vector<W4A16Dev> devs;
          for (const auto& w : *v) devs.push_back(w4_of(w)->dev());
          upload(gu ? &moe_gu_w4_[l] : &moe_dn_w4_[l], devs);
        } else {
          std::vector<const half*> ptrs;
          for (const auto& w : *v) ptrs.push_back(cw(w).w);
          upload(gu ? &moe_gu_w_[l] : &moe_dn_w_[l], ptrs);
        }
      }
    }
    // otherwise (mixed or biased experts) each MoE layer reads its experts' row counts on the host to launch their
    // linears, and no graph can hold that wait
    if (!moe_grouped_) use_graphs_ = false;
  }
  // tp > 1: graphs only when the collective can be captured (the NVLink peer exchange); the same-GPU collective
  // waits on the host, and NCCL alone is kept out of graphs
  if (m.tp() > 1 && (!m.collective() || !m.collective()->graph_capturable())) use_graphs_ = false;
  // tp > 1: the rank's vocabulary rows plus the zero row that other ranks' tokens look up (engine/tp_plan.h)
  embed_ = to_f16_copy(m.embed, (size_t)(m.tp() > 1 ? sh.vocab + 1 : c.vocab) * c.hidden, s_);
  final_norm_ = to_f16_copy(m.final_norm, (size_t)c.hidden, s_);
  for (auto& L : m.layers) {
    in_norm_.push_back(to_f16_copy(L.input_norm, (size_t)c.hidden, s_));
    post_norm_.push_back(to_f16_copy(L.post_norm, (size_t)c.hidden, s_));
    if (c.sandwich_norms) {
      attn_out_norm_.push_back(to_f16_copy(L.attn_out_norm, (size_t)c.hidden, s_));
      mlp_out_norm_.push_back(to_f16_copy(L.mlp_out_norm, (size_t)c.hidden, s_));
    }
    if (c.qk_norm) {
      q_norm_.push_back(to_f16_copy(L.q_norm, (size_t)c.head_dim, s_));
      k_norm_.push_back(to_f16_copy(L.k_norm, (size_t)c.head_dim, s_));
    }
  }
  if (!c.no_rope_layers.empty()) {
    const size_t n = (size_t)std::max<int64_t>(1, m.rotary_dim() / 2);
    LMF_CUDA_CHECK(cudaMalloc(&nope_inv_, n * sizeof(float)));
    LMF_CUDA_CHECK(cudaMemsetAsync(nope_inv_, 0, n * sizeof(float), s_));
  }
  if (c.has_rope_local) {
    const std::vector<float>& f = m.inv_freq_local();
    LMF_CUDA_CHECK(cudaMalloc(&local_inv_, std::max<size_t>(1, f.size()) * sizeof(float)));
    LMF_CUDA_CHECK(cudaMemcpy(local_inv_, f.data(), f.size() * sizeof(float), cudaMemcpyHostToDevice));
  }
  LMF_CUDA_CHECK(cudaEventCreateWithFlags(&staged_, cudaEventDisableTiming));
  stamps_.on = env_switch("LMFLEET_STEP_STAMPS", false);  // read once: the graphs hold its event node
  if (stamps_.on)
    for (cudaEvent_t* e : {&stamps_.in[0], &stamps_.in[1], &stamps_.end[0], &stamps_.end[1], &stamps_.gs})
      LMF_CUDA_CHECK(cudaEventCreate(e));
  LMF_CUDA_CHECK(cudaStreamSynchronize(s_));
}

CudaDecoder::~CudaDecoder() {
  cudaSetDevice(be_.device());
  cudaStreamSynchronize(s_);
  drop_graphs();
  for (half* p : {embed_, final_norm_, resid_, h_, qkv_, attn_, proj_, gu_, act_, rows_, moe_x_, moe_gu_, moe_act_, moe_y_})
    if (p) cudaFree(p);
  for (void* p : {(void*)moe_logits_, (void*)moe_w_, (void*)moe_ids_, (void*)moe_off_, (void*)moe_slot_token_, (void*)moe_pair_slot_, (void*)moe_active_})
    if (p) cudaFree(p);
  if (moe_host_off_) cudaFreeHost(moe_host_off_);
  for (auto* v : {&moe_gu_w_, &moe_dn_w_})
    for (const half** p : *v)
      if (p) cudaFree(p);
  for (auto* v : {&moe_gu_w4_, &moe_dn_w4_})
    for (W4A16Dev* p : *v)
      if (p) cudaFree(p);
  for (half* p : in_norm_) cudaFree(p);
  for (half* p : post_norm_) cudaFree(p);
  for (auto* v : {&attn_out_norm_, &mlp_out_norm_})
    for (half* p : *v) cudaFree(p);
  for (half* p : q_norm_) cudaFree(p);
  for (half* p : k_norm_) cudaFree(p);
  if (attn_ws_) cudaFree(attn_ws_);
  if (nope_inv_) cudaFree(nope_inv_);
  if (local_inv_) cudaFree(local_inv_);
  if (logits_rank_) cudaFree(logits_rank_);
  if (logits_gather_) cudaFree(logits_gather_);
  if (dev_stage_) cudaFree(dev_stage_);
  if (host_stage_) cudaFreeHost(host_stage_);
  if (staged_) cudaEventDestroy(staged_);
  if (stamps_.on) {
    print_stamps();
    for (cudaEvent_t e : {stamps_.in[0], stamps_.in[1], stamps_.end[0], stamps_.end[1], stamps_.gs}) cudaEventDestroy(e);
  }
}

// Step n (0-based in an unbroken chain of graph steps) uses in[n % 2] and end[n % 2]. At its entry step n - 1 has
// ended (the host has its sampled tokens), so its launch and graph times are read; its after time needs step n's
// entry too, so step n reads step n - 2's (end[n % 2] to in[(n - 1) % 2]) before overwriting those events.
void CudaDecoder::stamp_step_entry(int Tp, bool graph_step) {
  StepStamps& S = stamps_;
  if (!S.on) return;
  if (!graph_step) {
    S.steps = 0;
    return;
  }
  const int cur = (int)(S.steps % 2), prev = 1 - cur;
  float ms = 0, ms2 = 0;
  if (S.steps >= 1 && cudaEventElapsedTime(&ms, S.in[prev], S.gs) == cudaSuccess &&
      cudaEventElapsedTime(&ms2, S.gs, S.end[prev]) == cudaSuccess) {
    S.launch_us[S.prev_T].push_back(ms * 1000.f);
    S.graph_us[S.prev_T].push_back(ms2 * 1000.f);
  }
  if (S.steps >= 2 && cudaEventElapsedTime(&ms, S.end[cur], S.in[prev]) == cudaSuccess)
    S.after_us[S.prev2_T].push_back(ms * 1000.f);
  cudaGetLastError();  // a not-ready event only skips the sample
  S.prev2_T = S.prev_T;
  S.prev_T = Tp;
  LMF_CUDA_CHECK(cudaEventRecord(S.in[cur], s_));
}

void CudaDecoder::stamp_graph_launched() {
  if (!stamps_.on) return;
  LMF_CUDA_CHECK(cudaEventRecord(stamps_.end[stamps_.steps % 2], s_));
  stamps_.steps++;
}

void CudaDecoder::print_stamps() {
  const auto med = [](const std::vector<float>& v) { return stamp_percentile(v, 50); };
  for (auto& [T, g] : stamps_.graph_us)
    std::fprintf(stderr,
                 "[lmfleet step stamps] device %d, batch bucket %d: launch %.1f us, graph %.1f us, after %.1f us "
                 "(medians over %zu steps)\n",
                 be_.device(), T, med(stamps_.launch_us[T]), med(g), med(stamps_.after_us[T]), g.size());
}

void CudaDecoder::drop_graphs() {
  for (auto& [k, g] : graphs_)
    if (g.exec) cudaGraphExecDestroy(g.exec);
  graphs_.clear();
}

void CudaDecoder::ensure_capacity(int T, int R) {
  if (T <= cap_T_ && R <= cap_R_) return;
  LMF_CUDA_CHECK(cudaStreamSynchronize(s_));
  drop_graphs();
  const ModelConfig& c = m_.cfg();
  const ShardPlan& sh = m_.shard();
  const size_t nT = (size_t)std::max(T, cap_T_), nR = (size_t)std::max(R, cap_R_);
  const size_t H = c.hidden, Q = (size_t)(sh.heads + 2 * sh.kv_heads) * c.head_dim, I = sh.inter;
  for (half** p : {&resid_, &h_, &qkv_, &attn_, &proj_, &gu_, &act_, &rows_})
    if (*p) { LMF_CUDA_CHECK(cudaFree(*p)); *p = nullptr; }
  auto mk = [](half** p, size_t n) { LMF_CUDA_CHECK(cudaMalloc(p, n * sizeof(half))); };
  mk(&resid_, nT * H);
  mk(&h_, nT * H);
  mk(&qkv_, nT * Q);
  mk(&attn_, nT * (size_t)sh.heads * c.head_dim);
  mk(&proj_, nT * H);
  mk(&gu_, nT * 2 * I);
  mk(&act_, nT * I);
  mk(&rows_, nR * H);
  logits_.ensure(&be_, nR * (size_t)c.vocab * 4);
  if (m_.tp() > 1) {
    for (float** p : {&logits_rank_, &logits_gather_})
      if (*p) { LMF_CUDA_CHECK(cudaFree(*p)); *p = nullptr; }
    LMF_CUDA_CHECK(cudaMalloc(&logits_rank_, nR * (size_t)sh.vocab * 4));
    LMF_CUDA_CHECK(cudaMalloc(&logits_gather_, nR * (size_t)c.vocab * 4));
  }
  if (c.num_experts > 0) {  // T x K (token, expert) pairs; an expert takes at most T of them
    const size_t E = c.num_experts, P = nT * c.experts_per_tok, Im = sh.moe_inter;
    for (void** p : {(void**)&moe_logits_, (void**)&moe_w_, (void**)&moe_ids_, (void**)&moe_off_, (void**)&moe_slot_token_,
                     (void**)&moe_pair_slot_, (void**)&moe_active_, (void**)&moe_x_, (void**)&moe_gu_, (void**)&moe_act_, (void**)&moe_y_})
      if (*p) { LMF_CUDA_CHECK(cudaFree(*p)); *p = nullptr; }
    LMF_CUDA_CHECK(cudaMalloc(&moe_logits_, nT * E * 4));
    LMF_CUDA_CHECK(cudaMalloc(&moe_w_, P * 4));
    LMF_CUDA_CHECK(cudaMalloc(&moe_ids_, P * 4));
    LMF_CUDA_CHECK(cudaMalloc(&moe_off_, (E + 1) * 4));
    LMF_CUDA_CHECK(cudaMalloc(&moe_slot_token_, P * 4));
    LMF_CUDA_CHECK(cudaMalloc(&moe_pair_slot_, P * 4));
    LMF_CUDA_CHECK(cudaMalloc(&moe_active_, E * 4));
    mk(&moe_x_, P * H);
    mk(&moe_gu_, P * 2 * Im);
    mk(&moe_act_, P * Im);
    mk(&moe_y_, P * H);
  }
  // W4A16 workspaces (split-k partial sums or the dense scratch) sized now: graph capture cannot allocate
  for (const auto& L : m_.layers) {
    for (const auto* w : {&L.qkv, &L.o, &L.gate_up, &L.down})
      if (*w && (*w)->group > 0) be_.gemm().reserve_w4a16((int)nT, (int)(*w)->n, (int)(*w)->k);
    for (const auto* v : {&L.expert_gate_up, &L.expert_down})
      for (const auto& w : *v)
        if (w->group > 0) be_.gemm().reserve_w4a16((int)nT, (int)w->n, (int)w->k);
  }
  cap_T_ = (int)nT;
  cap_R_ = (int)nR;
}

CudaDecoder::Layout CudaDecoder::layout(int T, int S, int R, int mb, int inv_n) const {
  Layout L;
  L.T = T; L.S = S; L.R = R; L.mb = mb; L.inv_n = inv_n;
  size_t o = 0;
  auto take = [&](size_t n) { size_t at = o; o += (n + 3) / 4 * 4; return at; };  // 16-byte aligned
  L.tokens = take(T); L.positions = take(T); L.slots = take(T);
  L.q_starts = take(S); L.q_lens = take(S); L.ctx_lens = take(S);
  L.rows = take(R); L.block_tables = take((size_t)S * mb); L.inv_freq = take(inv_n);
  L.words = o;
  return L;
}

// A speculative verification step (Scheduler's n-gram drafts): every sequence continues its cache with a few tokens
// (its last one and its drafts), laid out one after another, and every row gives logits. Returns whether `b` is one.
bool is_verify_step(const StepBatch& b) {
  const int T = (int)b.tokens.size(), S = (int)b.num_seqs();
  if (T == S || (int)b.logit_rows.size() != T) return false;
  for (int r = 0; r < T; r++)
    if (b.logit_rows[r] != r) return false;
  for (int s = 0, q0 = 0; s < S; s++) {
    const int start = b.seq_info[3 * s], ql = b.seq_info[3 * s + 1], ctx = b.seq_info[3 * s + 2];
    if (start != q0 || ql < 1 || ql > kMaxVerifyTokens || ctx <= ql) return false;  // (ctx > ql: a cache to continue)
    q0 += ql;
  }
  return true;
}

const Buffer& CudaDecoder::forward(const StepBatch& b, const KvView& kv) {
  // A verification step runs as a decode step: each of a sequence's tokens becomes a one-token sequence with its block
  // table, the j-th seeing the cache up to its own position. The attention is the same causal attention (the step
  // stores every token's K / V before any attention reads them), and the step takes the decode path's graphs,
  // split-K attention and W4A16 fusions instead of the launch-bound prefill path.
  if (is_verify_step(b)) {
    StepBatch& v = verify_;
    v.tokens = b.tokens;
    v.positions = b.positions;
    v.slots = b.slots;
    v.logit_rows = b.logit_rows;
    v.max_blocks = b.max_blocks;
    v.seq_info.clear();
    v.block_tables.clear();
    for (int64_t s = 0; s < b.num_seqs(); s++) {
      const int start = b.seq_info[3 * s], ql = b.seq_info[3 * s + 1], ctx = b.seq_info[3 * s + 2];
      for (int j = 0; j < ql; j++) {
        v.seq_info.insert(v.seq_info.end(), {start + j, 1, ctx - ql + 1 + j});
        v.block_tables.insert(v.block_tables.end(), b.block_tables.begin() + s * b.max_blocks, b.block_tables.begin() + (s + 1) * b.max_blocks);
      }
    }
    verify_step_ = true;
    try {
      const Buffer& out = forward_step(v, kv);
      verify_step_ = false;
      return out;
    } catch (...) {
      verify_step_ = false;
      throw;
    }
  }
  return forward_step(b, kv);
}

const Buffer& CudaDecoder::forward_step(const StepBatch& b, const KvView& kv) {
  be_.bind();
  const ModelConfig& c = m_.cfg();
  const int T = (int)b.tokens.size(), S = (int)b.num_seqs(), R = (int)b.logit_rows.size();
  if (T == 0) fail(ErrorCode::InvalidArgument, "decoder: empty batch");
  if ((int)kv.k.size() != c.layers || (int)kv.v.size() != c.layers) fail(ErrorCode::Internal, "decoder: KvView has the wrong layer count");
  const int64_t cache_slots = kv.num_blocks * kv.block_size;
  // validate everything the kernels will index with (bad input throws, never corrupts memory)
  for (int t = 0; t < T; t++) {
    if (b.tokens[t] < 0 || b.tokens[t] >= c.vocab)
      fail(ErrorCode::InvalidArgument, "token id " + std::to_string(b.tokens[t]) + " is outside [0, " + std::to_string(c.vocab) + ")");
    if (b.slots[t] >= cache_slots) fail(ErrorCode::InvalidArgument, "decoder: KV slot out of range");
  }
  bool decode = T == S;
  int max_ctx = 1, max_q = 1;
  for (int s = 0; s < S; s++) {
    const int q0 = b.seq_info[3 * s], ql = b.seq_info[3 * s + 1], ctx = b.seq_info[3 * s + 2];
    if (q0 < 0 || ql < 0 || q0 + ql > T || ctx < ql || ctx > b.max_blocks * kv.block_size)
      fail(ErrorCode::InvalidArgument, "decoder: bad seq_info for sequence " + std::to_string(s));
    for (int j = 0; j < (ctx + kv.block_size - 1) / kv.block_size; j++) {
      const int blk = b.block_tables[(size_t)s * b.max_blocks + j];
      if (blk < 0 || blk >= kv.num_blocks) fail(ErrorCode::InvalidArgument, "decoder: block " + std::to_string(blk) + " out of range");
    }
    decode = decode && ql == 1 && q0 == s;
    max_ctx = std::max(max_ctx, ctx);
    max_q = std::max(max_q, ql);
  }
  for (int r : b.logit_rows)
    if (r < 0 || r >= T) fail(ErrorCode::InvalidArgument, "decoder: logit row out of range");

  const int half_rot = (int)m_.rotary_dim() / 2;
  const bool dynamic = rope_per_sequence(c.rope);  // one frequency table per token
  // shapes: graph steps pad to buckets
  int Tp = T, Sp = S, Rp = R, mb = (int)b.max_blocks, splits = 0;
  if (decode) {
    if (use_graphs_) Tp = Sp = Rp = batch_bucket(S);
    // flash-decoding split: short splits when few (sequence, kv head) pairs would leave SMs idle
    const int pairs = Tp * (int)m_.shard().kv_heads;
    split_len_ = attention_decode_split_len(pairs, max_ctx);
    if (const int f = attn_split_forced(); f > 0) split_len_ = f;
    splits = pow2_at_least((max_ctx + split_len_ - 1) / split_len_);
    if (use_graphs_) mb = (splits * split_len_ + kv.block_size - 1) / (int)kv.block_size;
  }
  const int inv_n = dynamic ? Tp * half_rot : half_rot;
  const Layout L = layout(Tp, Sp, Rp, mb, inv_n);
  ensure_capacity(Tp, std::max(Rp, 1));
  if (L.words > stage_words_) {
    LMF_CUDA_CHECK(cudaStreamSynchronize(s_));
    drop_graphs();
    if (dev_stage_) LMF_CUDA_CHECK(cudaFree(dev_stage_));
    if (host_stage_) LMF_CUDA_CHECK(cudaFreeHost(host_stage_));
    stage_words_ = std::max(L.words, stage_words_ * 3 / 2);
    LMF_CUDA_CHECK(cudaMalloc(&dev_stage_, stage_words_ * 4));
    LMF_CUDA_CHECK(cudaMallocHost(&host_stage_, stage_words_ * 4));
  }
  if (graph_kv_ != kv.k[0]) { drop_graphs(); graph_kv_ = kv.k[0]; }
  // graphs hold the launch settings they were captured with (GEMM tuning, PDL): new settings, new graphs
  const int64_t launch_cfg = (CublasGemm::tuning_allowed() ? 1 : 0) | (pdl_enabled() ? 2 : 0) | (pdl_chain_enabled() ? 4 : 0) |
                         (std::min(l2_prefetch_kb(), 255) << 3) | (gemv_max_rows() << 11) |
                         (pdl_preload() ? 1 << 15 : 0) | (fuse_silu_enabled() ? 1 << 16 : 0) |
                         (w4a16_fuse_enabled() ? 1 << 17 : 0) | (attn_split_forced() / 32) << 18 | w4a16_gemv_one_wave() << 27 |
                         (attn_prefetch() ? 1 << 29 : 0) | (w4a16_rope_fuse_enabled() ? 1 << 30 : 0) |
                         (tp_ll_enabled() ? int64_t(1) << 31 : 0) | int64_t(w4a16_gemv_plan_forced()) << 32 |
                         (pdl_early_trigger() ? int64_t(1) << 40 : 0) | (tp_ll_push_first() ? int64_t(1) << 41 : 0) |
                         (tp_ar_push() ? int64_t(1) << 42 : 0) | int64_t(tp_fuse_rows()) << 43 |
                         (tp_pdl_requested() ? int64_t(1) << 52 : 0) |
                         (tp_ll_preload() ? int64_t(1) << 53 : 0) | (tp_ll_pdl() ? int64_t(1) << 54 : 0) |
                         (tp_ll_gather() ? int64_t(1) << 55 : 0) | (tp_no_exchange() ? int64_t(1) << 56 : 0) |
                         (attn_online() ? int64_t(1) << 57 : 0) | int64_t(w4a16_wide_mode()) << 58;  // 3 bits
  if (launch_cfg != launch_cfg_) {
    LMF_CUDA_CHECK(cudaStreamSynchronize(s_));
    drop_graphs();
    tuned_T_.clear();
    launch_cfg_ = launch_cfg;
  }

  stamp_step_entry(Tp, decode && use_graphs_);
  // fill the pinned staging buffer (after the previous step's copy has left it)
  LMF_CUDA_CHECK(cudaEventSynchronize(staged_));
  int32_t* hs = reinterpret_cast<int32_t*>(host_stage_);
  std::memset(hs, 0, L.words * 4);
  const ShardPlan& sh = m_.shard();
  for (int t = 0; t < Tp; t++) {
    if (m_.tp() == 1) {
      hs[L.tokens + t] = t < T ? b.tokens[t] : 0;
    } else {  // vocabulary-parallel embedding: the rank's rows, its zero row (index sh.vocab) for other tokens
      const int64_t id = t < T ? (int64_t)b.tokens[t] - sh.vocab0 : -1;
      hs[L.tokens + t] = (int32_t)(id >= 0 && id < sh.vocab ? id : sh.vocab);
    }
    hs[L.positions + t] = t < T ? b.positions[t] : 0;
    hs[L.slots + t] = t < T ? b.slots[t] : -1;
  }
  for (int s = 0; s < S; s++) {
    hs[L.q_starts + s] = b.seq_info[3 * s];
    hs[L.q_lens + s] = b.seq_info[3 * s + 1];
    hs[L.ctx_lens + s] = b.seq_info[3 * s + 2];
    const int ncopy = std::min<int>(mb, (int)b.max_blocks);
    std::memcpy(&hs[L.block_tables + (size_t)s * mb], &b.block_tables[(size_t)s * b.max_blocks], ncopy * 4);
  }
  for (int r = 0; r < R; r++) hs[L.rows + r] = b.logit_rows[r];
  float* hf = reinterpret_cast<float*>(hs + L.inv_freq);
  if (dynamic) {
    for (int s = 0; s < S; s++) {
      auto f = rope_inv_freq(c.rope, c.head_dim, b.seq_info[3 * s + 2]);
      for (int j = 0; j < b.seq_info[3 * s + 1]; j++)
        std::memcpy(hf + (size_t)(b.seq_info[3 * s] + j) * half_rot, f.data(), half_rot * 4);
    }
  } else {
    std::memcpy(hf, m_.inv_freq().data(), half_rot * 4);
  }
  LMF_CUDA_CHECK(cudaMemcpyAsync(dev_stage_, host_stage_, L.words * 4, cudaMemcpyHostToDevice, s_));
  LMF_CUDA_CHECK(cudaEventRecord(staged_, s_));

  if (decode && use_graphs_) {
    const auto key = std::make_tuple(Tp, splits, split_len_, mb, inv_n, verify_step_);
    auto it = graphs_.find(key);
    if (it == graphs_.end()) {
      const size_t ws = attention_decode_workspace_bytes(Tp, (int)m_.shard().heads, (int)c.head_dim, splits);
      if (ws > attn_ws_bytes_) {
        LMF_CUDA_CHECK(cudaStreamSynchronize(s_));
        drop_graphs();
        if (attn_ws_) LMF_CUDA_CHECK(cudaFree(attn_ws_));
        LMF_CUDA_CHECK(cudaMalloc(&attn_ws_, ws));
        attn_ws_bytes_ = ws;
      }
      // the first graph of a batch bucket above the GEMV rows: one eager step with GEMM tuning on first, so the
      // captured GEMMs replay the per-shape choices (CublasGemm::set_tuning; only with LMFLEET_GEMM_TUNE=1). The
      // eager step writes the same KV slots and logits the graph then writes again.
      if (CublasGemm::tuning_allowed() && Tp > gemv_max_rows() && tuned_T_.insert(Tp).second) {
        CublasGemm& gm = be_.gemm();
        gm.set_tuning(true);
        try {
          run(L, kv, true, 1, splits);
        } catch (...) {
          gm.set_tuning(false);
          throw;
        }
        gm.set_tuning(false);
      }
      cudaGraph_t g;
      LMF_CUDA_CHECK(cudaStreamBeginCapture(s_, cudaStreamCaptureModeThreadLocal));
      if (stamps_.on) LMF_CUDA_CHECK(cudaEventRecordWithFlags(stamps_.gs, s_, cudaEventRecordExternal));
      try {
        run(L, kv, true, 1, splits);
      } catch (...) {
        cudaStreamEndCapture(s_, &g);
        throw;
      }
      LMF_CUDA_CHECK(cudaStreamEndCapture(s_, &g));
      Graph gr;
      LMF_CUDA_CHECK(cudaGraphInstantiate(&gr.exec, g, 0));
      LMF_CUDA_CHECK(cudaGraphDestroy(g));
      it = graphs_.emplace(key, gr).first;
    }
    LMF_CUDA_CHECK(cudaGraphLaunch(it->second.exec, s_));
    stamp_graph_launched();
  } else {
    if (decode) {
      const size_t ws = attention_decode_workspace_bytes(Tp, (int)m_.shard().heads, (int)c.head_dim, splits);
      if (ws > attn_ws_bytes_) {
        LMF_CUDA_CHECK(cudaStreamSynchronize(s_));
        drop_graphs();
        if (attn_ws_) LMF_CUDA_CHECK(cudaFree(attn_ws_));
        LMF_CUDA_CHECK(cudaMalloc(&attn_ws_, ws));
        attn_ws_bytes_ = ws;
      }
    }
    run(L, kv, decode, max_q, splits);
  }
  return logits_;
}

// resid_ += proj_ (summed over the tp ranks first), h_ = rms_norm(resid_) * w: one fused kernel where the collective
// has one (the NVLink peer exchange), else the all-reduce and the add-rms-norm kernel.
void CudaDecoder::reduce_add_norm(Collective* coll, int rank, const half* w, int T, int H, float eps, const half* out_norm) {
  if (coll && tp_no_exchange()) coll = nullptr;  // a diagnostic: wrong sums, the step's time without the exchanges
  if (coll && !out_norm && coll->all_reduce_add_rms_norm_f16(rank, proj_, resid_, w, h_, T, H, eps)) return;
  if (coll) coll->all_reduce_sum_f16(rank, proj_, (int64_t)T * H);
  if (out_norm) rms_norm_cuda(proj_, out_norm, proj_, T, H, eps, s_);
  add_rms_norm_cuda(resid_, proj_, w, h_, T, H, eps, s_);
}

void CudaDecoder::run(const Layout& L, const KvView& kv, bool decode, int max_q_len, int splits) {
  const ModelConfig& c = m_.cfg();
  CublasGemm& g = be_.gemm();
  // This rank's heads and intermediate width (the model's at tp 1); coll null at tp 1.
  const ShardPlan& sh = m_.shard();
  Collective* coll = m_.tp() > 1 ? m_.collective() : nullptr;
  const int rank = sh.rank;
  const int T = L.T, H = (int)c.hidden, I = (int)sh.inter, NH = (int)sh.heads, NKV = (int)sh.kv_heads, D = (int)c.head_dim;
  const int Q = (NH + 2 * NKV) * D;
  const int* tokens = reinterpret_cast<const int*>(dev_stage_ + L.tokens);
  const int* positions = reinterpret_cast<const int*>(dev_stage_ + L.positions);
  const int* slots = reinterpret_cast<const int*>(dev_stage_ + L.slots);
  const int* q_starts = reinterpret_cast<const int*>(dev_stage_ + L.q_starts);
  const int* q_lens = reinterpret_cast<const int*>(dev_stage_ + L.q_lens);
  const int* ctx_lens = reinterpret_cast<const int*>(dev_stage_ + L.ctx_lens);
  const int* rows = reinterpret_cast<const int*>(dev_stage_ + L.rows);
  const int* bt = reinterpret_cast<const int*>(dev_stage_ + L.block_tables);
  const float* inv_freq = reinterpret_cast<const float*>(dev_stage_ + L.inv_freq);
  const int inv_stride = rope_per_sequence(c.rope) ? (int)m_.rotary_dim() / 2 : 0;
  // a layer's frequency table: NoPE layers the zeros, Gemma 3's sliding layers rope_local's (one for every sequence),
  // the others the step's (per token for dynamic NTK / longrope)
  const auto freq = [&](int l) -> const float* { return !c.rope_on(l) ? nope_inv_ : c.local_rope(l) ? local_inv_ : inv_freq; };
  const auto freq_stride = [&](int l) { return c.rope_on(l) && !c.local_rope(l) ? inv_stride : 0; };

  // W4A16 decode at tp 1 (LMFLEET_W4_FUSE, default on): each layer's two rms_norms, its silu_mul and its two residual
  // adds fold into the MmaX GEMVs (w4a16_gemv_fused_cuda): 4 kernels instead of 9 around attention. The residual
  // stream resid_ is then the GEMVs' input (qkv, gate_up: normed while staged) and output (o, down: added in place).
  const auto fz = [&](const half* norm_w, int silu_inter, bool residual) {
    W4GemvFuse f;
    f.norm_w = norm_w;
    f.eps = c.eps;
    f.silu_inter = silu_inter;
    f.residual = residual;
    return f;
  };
  // (Llama-style layers only: not Gemma's GeGLU and sandwich norms)
  bool fuse = !coll && decode && w4a16_fuse_enabled() && c.act == Activation::Silu && !c.sandwich_norms;
  for (int l = 0; fuse && l < (int)c.layers; l++) {
    const LayerWeights& W = m_.layers[l];
    const CudaW4A16Weight *qkv = w4_of(W.qkv), *o = w4_of(W.o), *gu = w4_of(W.gate_up), *dn = w4_of(W.down);
    fuse = qkv && o && gu && dn && w4a16_gemv_fuse_supported(T, qkv->dev(), fz(in_norm_[l], 0, false)) &&
           w4a16_gemv_fuse_supported(T, o->dev(), fz(nullptr, 0, true)) &&
           w4a16_gemv_fuse_supported(T, gu->dev(), fz(post_norm_[l], I, false)) &&
           w4a16_gemv_fuse_supported(T, dn->dev(), fz(nullptr, 0, true));
  }
  // LMFLEET_W4_ROPE (default on, =0 off): the qkv GEMV also rotates q and k and stores k and v in the cache (f16 cache, full
  // rotary dims), so the rope + KV store kernel goes too
  const auto fz_rope = [&](int l) {
    W4GemvFuse f = fz(in_norm_[l], 0, false);
    f.rope.nh = NH;
    f.rope.nkv = NKV;
    f.rope.hd = D;
    f.rope.inv_stride = freq_stride(l);
    f.rope.positions = positions;
    f.rope.inv_freq = freq(l);
    f.rope.slots = slots;
    f.rope.k_cache = reinterpret_cast<half*>(kv.k[l]);
    f.rope.v_cache = reinterpret_cast<half*>(kv.v[l]);
    return f;
  };
  // (not with Qwen3's per-head q / k norms: those need the whole head, rope_kv_store_cuda applies them)
  bool fuse_rope = fuse && w4a16_rope_fuse_enabled() && kv.quant_policy == 0 && (int)m_.rotary_dim() == D && !c.qk_norm;
  for (int l = 0; fuse_rope && l < (int)c.layers; l++)
    fuse_rope = w4a16_gemv_fuse_supported(T, w4_of(m_.layers[l].qkv)->dev(), fz_rope(l));
  const auto fused = [&](const half* x, int ldx, const std::unique_ptr<LinearWeight>& w, half* y, int ldy,
                         const W4GemvFuse& f) { w4a16_gemv_fused_cuda(x, ldx, w4_of(w)->dev(), y, ldy, T, f, g.sms(), s_); };

  embedding_cuda(tokens, embed_, resid_, T, H, coll ? (int)sh.vocab + 1 : (int)c.vocab, s_, c.embed_scale);
  if (coll) coll->all_reduce_sum_f16(rank, resid_, (int64_t)T * H);
  if (!fuse) rms_norm_cuda(resid_, in_norm_[0], h_, T, H, c.eps, s_);
  for (int l = 0; l < (int)c.layers; l++) {
    const LayerWeights& W = m_.layers[l];
    half* kc = reinterpret_cast<half*>(kv.k[l]);
    half* vc = reinterpret_cast<half*>(kv.v[l]);
    if (fuse) fused(resid_, H, W.qkv, qkv_, Q, fuse_rope ? fz_rope(l) : fz(in_norm_[l], 0, false));
    else linear_any(g, h_, H, W.qkv, qkv_, Q, T);
    KvQuantArgs kq;  // quantized cache (quant_policy 8/4): rope_kv_store quantizes, attention dequantizes
    if (kv.quant_policy) {
      kq.policy = kv.quant_policy;
      kq.k_param = kv.k_param[l];
      kq.v_param = kv.v_param[l];
      kq.k_static = m_.kv_static(l, false);
      kq.v_static = m_.kv_static(l, true);
    }
    QkNormArgs qn;
    if (c.qk_norm) qn = QkNormArgs{q_norm_[l], k_norm_[l], c.eps};
    if (!fuse_rope)
      rope_kv_store_cuda(qkv_, Q, positions, freq(l), freq_stride(l), (int)m_.rotary_dim(), T, NH, NKV, D, kc, vc, slots,
                         (int)kv.block_size, s_, kq, qn, c.rope_on(l) ? (float)rope_cs_scale(c.rope_of(l), D) : 1.f);
    // a NoPE layer's softmax scale has no rope factor in it
    const float lscale = (float)(c.rope_on(l) ? rope_attention_scale(c.rope_of(l), D) : nope_attention_scale(c.rope, D));
    if (decode)
      attention_decode_cuda(qkv_, Q, kc, vc, bt, L.mb, ctx_lens, attn_, NH * D, T, NH, NKV, D, (int)kv.block_size,
                            lscale, split_len_, splits, attn_ws_, s_, kq.policy, kq.k_param, kq.v_param, (int)c.window(l),
                            !verify_step_, c.attn_softcap);
    else
      attention_prefill_cuda(qkv_, Q, kc, vc, bt, L.mb, q_starts, q_lens, ctx_lens, attn_, NH * D, L.S, max_q_len, NH,
                             NKV, D, (int)kv.block_size, lscale, s_, kq.policy, kq.k_param, kq.v_param, (int)c.window(l),
                             c.attn_softcap);
    if (fuse) {
      fused(attn_, NH * D, W.o, resid_, H, fz(nullptr, 0, true));
      fused(resid_, H, W.gate_up, act_, I, fz(post_norm_[l], I, false));
      fused(act_, I, W.down, resid_, H, fz(nullptr, 0, true));
      continue;
    }
    linear_any(g, attn_, NH * D, W.o, proj_, H, T);
    reduce_add_norm(coll, rank, post_norm_[l], T, H, c.eps, c.sandwich_norms ? attn_out_norm_[l] : nullptr);  // row-parallel o
    if (c.moe_layer(l)) {
      moe_mlp(l, T, decode);
    } else if (W.gate_up->group == 0 && T <= gemv_max_rows() && H % 8 == 0 && I % 4 == 0 && fuse_silu_enabled() &&
               c.act == Activation::Silu) {
      const CudaLinearWeight& f = cw(W.gate_up);  // f16 weight, rows the GEMV serves: gate_up and silu_mul in one kernel
      gemv_silu_cuda(h_, H, f.w, f.bias, act_, I, T, I, H, s_);
    } else {
      linear_any(g, h_, H, W.gate_up, gu_, 2 * I, T);
      silu_mul_cuda(gu_, 2 * I, act_, T, I, s_, c.act);
    }
    if (!c.moe_layer(l)) linear_any(g, act_, I, W.down, proj_, H, T);
    reduce_add_norm(coll, rank, l + 1 < (int)c.layers ? in_norm_[l + 1] : final_norm_, T, H, c.eps,
                    c.sandwich_norms ? mlp_out_norm_[l] : nullptr);  // row-parallel down
  }
  if (fuse) rms_norm_cuda(resid_, final_norm_, h_, T, H, c.eps, s_);
  if (L.R > 0) {
    gather_rows_cuda(h_, rows, rows_, L.R, H, s_);
    const CudaLinearWeight& lm = cw(m_.lm_head);
    if (!coll) {
      g.linear_f32out(rows_, H, lm.w, lm.bias, logits_.as<float>(), (int)c.vocab, L.R, (int)c.vocab, H);
    } else {  // vocabulary-parallel lm_head: this rank's columns, all-gathered, reordered into [R, vocab]
      const int vl = (int)sh.vocab;
      g.linear_f32out(rows_, H, lm.w, lm.bias, logits_rank_, vl, L.R, vl, H);
      coll->all_gather(rank, logits_rank_, logits_gather_, 1, (int64_t)L.R * vl);
      const int64_t total = (int64_t)L.R * c.vocab;
      interleave_logits_kernel<<<(int)std::min<int64_t>(4096, (total + 255) / 256), 256, 0, s_>>>(logits_gather_, logits_.as<float>(), L.R,
                                                                                                  m_.tp(), vl);
      LMF_CUDA_LAUNCHED();
    }
    if (c.final_softcap > 0.f) {
      const int64_t n = (int64_t)L.R * c.vocab;
      softcap_logits_kernel<<<(int)std::min<int64_t>(4096, (n + 255) / 256), 256, 0, s_>>>(logits_.as<float>(), n, c.final_softcap);
      LMF_CUDA_LAUNCHED();
    }
  }
}

// A mixture-of-experts MLP: h_ [T, hidden] (normed) -> proj_, the chosen experts' outputs weighted and summed. The
// router and the routing run on the device. Decode steps (f16 or W4A16 experts) then run every expert's linear in one
// grouped launch that reads the counts on the device (graph-capturable); otherwise (prefill, LMFLEET_MOE_W4_GROUPED=0,
// mixed or biased experts) the host reads how many (token, expert) pairs each expert got (one wait per layer) and runs
// each chosen expert's linears on its contiguous rows with the same GEMV / GEMM kernels as dense layers.
void CudaDecoder::moe_mlp(int l, int T, bool decode) {
  const ModelConfig& c = m_.cfg();
  const LayerWeights& W = m_.layers[l];
  CublasGemm& g = be_.gemm();
  const int H = (int)c.hidden, E = (int)c.num_experts, K = (int)c.experts_per_tok, Im = (int)m_.shard().moe_inter, P = T * K;
  const int A = std::min(E, P);  // most experts with rows: the grouped GEMVs' blocks per column tile
  const CudaLinearWeight& router = cw(W.router);
  g.linear_f32out(h_, H, router.w, router.bias, moe_logits_, E, T, E, H);
  moe_route_cuda(moe_logits_, T, E, K, c.norm_topk_prob, moe_ids_, moe_w_, moe_off_, moe_slot_token_, moe_pair_slot_, moe_active_,
                 s_);
  gather_rows_cuda(h_, moe_slot_token_, moe_x_, P, H, s_);
  if (moe_grouped_ && decode) {
    if (moe_w4_) {
      const W4A16Dev gu = w4_of(W.expert_gate_up[0])->dev(), dn = w4_of(W.expert_down[0])->dev();  // every expert's shape
      moe_gemv_w4_cuda(moe_x_, H, moe_gu_w4_[l], moe_off_, moe_active_, A, moe_gu_, 2 * Im, 2 * Im, H, gu.kp, gu.group, s_);
      silu_mul_cuda(moe_gu_, 2 * Im, moe_act_, P, Im, s_);
      moe_gemv_w4_cuda(moe_act_, Im, moe_dn_w4_[l], moe_off_, moe_active_, A, moe_y_, H, H, Im, dn.kp, dn.group, s_);
    } else {
      moe_gemv_cuda(moe_x_, H, moe_gu_w_[l], moe_off_, moe_active_, A, moe_gu_, 2 * Im, 2 * Im, H, s_);
      silu_mul_cuda(moe_gu_, 2 * Im, moe_act_, P, Im, s_);
      moe_gemv_cuda(moe_act_, Im, moe_dn_w_[l], moe_off_, moe_active_, A, moe_y_, H, H, Im, s_);
    }
    moe_combine_cuda(moe_y_, H, moe_w_, moe_pair_slot_, proj_, H, T, K, H, s_);
    return;
  }
  LMF_CUDA_CHECK(cudaMemcpyAsync(moe_host_off_, moe_off_, (size_t)(E + 1) * sizeof(int), cudaMemcpyDeviceToHost, s_));
  LMF_CUDA_CHECK(cudaStreamSynchronize(s_));
  const int* off = moe_host_off_;
  if (off[E] != P) fail(ErrorCode::Internal, "cuda moe: routing placed " + std::to_string(off[E]) + " of " + std::to_string(P) + " pairs");
  for (int e = 0; e < E; e++)
    if (const int n = off[e + 1] - off[e]; n > 0)
      linear_any(g, moe_x_ + (size_t)off[e] * H, H, W.expert_gate_up[e], moe_gu_ + (size_t)off[e] * 2 * Im, 2 * Im, n);
  silu_mul_cuda(moe_gu_, 2 * Im, moe_act_, P, Im, s_);
  for (int e = 0; e < E; e++)
    if (const int n = off[e + 1] - off[e]; n > 0)
      linear_any(g, moe_act_ + (size_t)off[e] * Im, Im, W.expert_down[e], moe_y_ + (size_t)off[e] * H, H, n);
  moe_combine_cuda(moe_y_, H, moe_w_, moe_pair_slot_, proj_, H, T, K, H, s_);
}

std::unique_ptr<CudaDecoder> make_cuda_decoder(Model& m) { return std::make_unique<CudaDecoder>(m); }

}  // namespace lmfleet
