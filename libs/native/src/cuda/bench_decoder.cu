// Hot-path micro-benchmark: a Llama-2-7B-shaped decoder (32 layers, random f16 weights, paged KV cache) run with
// cuBLAS + our kernels. Decode steps are captured in one CUDA graph per batch size and replayed; the argmax
// token feeds the next step's embedding on the device (no host round trip). Reports ms/step against the
// weights-over-bandwidth limit, with the bandwidth (device-to-device copy) and the cuBLAS GEMM rate measured in
// the same run; then 2048-token prefill against the time of its GEMMs alone. Before timing, an end-to-end
// check: the logits of token n+1 by (prefill n, decode 1) must match (prefill n+1).
//   bench_decoder [--layers 32] [--batches 1,16,64] [--ctx 128] [--prefill 2048]
//   env: LMF_BENCH_W4=0 (no W4 tables), LMF_BENCH_W4_ONLY=1 (W4 tables only), LMF_BENCH_W4_WIDE_ONLY=1 (of those, the
//   batched-decode table only: f16 vs the fused kernel vs the wide kernel's variants per linear and per layer), LMF_BENCH_W4_NCU=1 (launch each W4 kernel once
//   on one 7B linear for Nsight Compute and exit; see w4_ncu_driver)
#include <algorithm>
#include <cstdlib>
#include <string>
#include <vector>

#include "cuda/device_utils.cuh"
#include "cuda/gemm.h"
#include "cuda/stream_read.cuh"
#include "cuda/test_harness.h"
#include "ops/add.cuh"
#include "ops/argmax.cuh"
#include "ops/attention.cuh"
#include "ops/embedding.cuh"
#include "ops/rms_norm.cuh"
#include "ops/rope.cuh"
#include "cuda/rope_freq.h"
#include "ops/silu_mul.cuh"
#include "ops/w4a16_gemm.cuh"

using namespace lmfleet;

namespace {

__global__ void fill_random_kernel(half* p, size_t n, uint64_t seed, float scale, float offset) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
    uint64_t z = seed + i * 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    // sum of 4 uniforms ~ roughly normal, unit variance
    float s = 0.f;
    for (int k = 0; k < 4; k++) s += (float)((z >> (16 * k)) & 0xFFFF) / 65536.f;
    p[i] = __float2half(offset + scale * (s - 2.f) * 1.7320508f);
  }
}

half* dalloc_random(size_t n, uint64_t seed, float scale, float offset = 0.f) {
  half* p;
  LMF_CUDA_CHECK(cudaMalloc(&p, n * sizeof(half)));
  fill_random_kernel<<<2048, 256>>>(p, n, seed, scale, offset);
  LMF_CUDA_LAUNCHED();
  return p;
}

template <typename T>
T* dalloc(size_t n) {
  T* p;
  LMF_CUDA_CHECK(cudaMalloc(&p, n * sizeof(T)));
  LMF_CUDA_CHECK(cudaMemset(p, 0, n * sizeof(T)));
  return p;
}

struct Layer {
  half *in_norm, *post_norm, *qkv, *o, *gate_up, *down;
  half *k_cache, *v_cache;
};

struct Cfg {
  int layers = 32, hidden = 4096, inter = 11008, nh = 32, nkv = 32, hd = 128, vocab = 32000;
  int block_size = 64, num_blocks = 0, max_blocks = 0, dec_blocks = 0, split_len = 128, max_splits = 0;
  int max_batch = 64, max_tokens = 2048;
  float eps = 1e-5f;
};

struct Model {
  Cfg c;
  cudaStream_t s;
  CublasGemm* gemm;
  std::vector<Layer> L;
  half *embed, *final_norm, *lm_head;
  float* inv_freq;
  // activations (sized for max_tokens rows)
  half *resid, *h, *qkv, *attn, *proj, *gu, *act;
  float* logits;
  int *tokens, *positions, *slots, *block_tables, *ctx_lens, *q_starts, *q_lens;
  void* attn_ws;
  size_t weight_bytes = 0;

  void init(const Cfg& cfg, cudaStream_t stream) {
    c = cfg;
    s = stream;
    gemm = new CublasGemm(s);
    const size_t H = c.hidden, I = c.inter, Q = (size_t)(c.nh + 2 * c.nkv) * c.hd;
    uint64_t seed = 1234;
    const size_t cache_elems = (size_t)c.num_blocks * c.nkv * c.block_size * c.hd;
    for (int l = 0; l < c.layers; l++) {
      Layer y;
      y.in_norm = dalloc_random(H, seed++, 0.1f, 1.f);
      y.post_norm = dalloc_random(H, seed++, 0.1f, 1.f);
      y.qkv = dalloc_random(Q * H, seed++, 0.02f);
      y.o = dalloc_random(H * c.nh * c.hd, seed++, 0.02f);
      y.gate_up = dalloc_random(2 * I * H, seed++, 0.02f);
      y.down = dalloc_random(H * I, seed++, 0.02f);
      y.k_cache = dalloc_random(cache_elems, seed++, 1.f);
      y.v_cache = dalloc_random(cache_elems, seed++, 1.f);
      L.push_back(y);
      weight_bytes += 2 * (Q * H + H * c.nh * c.hd + 2 * I * H + H * I + 2 * H);
    }
    embed = dalloc_random((size_t)c.vocab * H, seed++, 1.f);
    final_norm = dalloc_random(H, seed++, 0.1f, 1.f);
    lm_head = dalloc_random((size_t)c.vocab * H, seed++, 0.02f);
    weight_bytes += 2 * ((size_t)c.vocab * H + H);
    RopeFreqParams rp;
    rp.rot_dim = c.hd;
    auto f = rope_inv_freq_table(rp, 0);
    inv_freq = dalloc<float>(f.size());
    LMF_CUDA_CHECK(cudaMemcpy(inv_freq, f.data(), f.size() * 4, cudaMemcpyHostToDevice));
    const size_t T = c.max_tokens;
    resid = dalloc<half>(T * H); h = dalloc<half>(T * H); qkv = dalloc<half>(T * Q); attn = dalloc<half>(T * H);
    proj = dalloc<half>(T * H); gu = dalloc<half>(T * 2 * I); act = dalloc<half>(T * I);
    logits = dalloc<float>((size_t)c.max_batch * c.vocab);
    tokens = dalloc<int>(T); positions = dalloc<int>(T); slots = dalloc<int>(T);
    block_tables = dalloc<int>((size_t)c.max_batch * c.max_blocks);
    ctx_lens = dalloc<int>(c.max_batch); q_starts = dalloc<int>(c.max_batch); q_lens = dalloc<int>(c.max_batch);
    LMF_CUDA_CHECK(cudaMalloc(&attn_ws, attention_decode_workspace_bytes(c.max_batch, c.nh, c.hd,
                                                                        (c.max_blocks * c.block_size + 31) / 32)));
    std::vector<int> bt((size_t)c.max_batch * c.max_blocks);
    // sequence b's j-th block is (b*dec_blocks + j) mod num_blocks: decode sequences get disjoint blocks,
    // the long prefill sequence (seq 0) wraps over the others' (harmless: they are never live together)
    for (int b = 0; b < c.max_batch; b++)
      for (int j = 0; j < c.max_blocks; j++) bt[(size_t)b * c.max_blocks + j] = (b * c.dec_blocks + j) % c.num_blocks;
    bt_host = bt;
    LMF_CUDA_CHECK(cudaMemcpy(block_tables, bt.data(), bt.size() * 4, cudaMemcpyHostToDevice));
    LMF_CUDA_CHECK(cudaDeviceSynchronize());
  }

  // One pass of the layer stack over n rows (decode: n = batch, one token each; prefill: n tokens of seq 0).
  // `gemms_only` skips everything but the linear layers (the GEMM-time reference for prefill).
  void forward(int n, bool decode, int max_q_len, bool gemms_only = false) {
    const int H = c.hidden, I = c.inter, Q = (c.nh + 2 * c.nkv) * c.hd;
    const float scale = 1.f / sqrtf((float)c.hd);
    if (!gemms_only) {
      embedding_cuda(tokens, embed, resid, n, H, c.vocab, s);
      rms_norm_cuda(resid, L[0].in_norm, h, n, H, c.eps, s);
    }
    for (int l = 0; l < c.layers; l++) {
      const Layer& y = L[l];
      gemm->linear(h, H, y.qkv, nullptr, qkv, Q, n, Q, H);
      if (!gemms_only) {
        rope_kv_store_cuda(qkv, Q, positions, inv_freq, 0, c.hd, n, c.nh, c.nkv, c.hd, y.k_cache, y.v_cache, slots,
                           c.block_size, s);
        if (decode)
          attention_decode_cuda(qkv, Q, y.k_cache, y.v_cache, block_tables, c.max_blocks, ctx_lens, attn, H, n, c.nh,
                                c.nkv, c.hd, c.block_size, scale, c.split_len, c.max_splits, attn_ws, s);
        else
          attention_prefill_cuda(qkv, Q, y.k_cache, y.v_cache, block_tables, c.max_blocks, q_starts, q_lens, ctx_lens,
                                 attn, H, 1, max_q_len, c.nh, c.nkv, c.hd, c.block_size, scale, s);
      }
      gemm->linear(attn, H, y.o, nullptr, proj, H, n, H, c.nh * c.hd);
      if (!gemms_only) add_rms_norm_cuda(resid, proj, y.post_norm, h, n, H, c.eps, s);
      gemm->linear(h, H, y.gate_up, nullptr, gu, 2 * I, n, 2 * I, H);
      if (!gemms_only) silu_mul_cuda(gu, 2 * I, act, n, I, s);
      gemm->linear(act, I, y.down, nullptr, proj, H, n, H, I);
      if (!gemms_only)
        add_rms_norm_cuda(resid, proj, l + 1 < c.layers ? L[l + 1].in_norm : final_norm, h, n, H, c.eps, s);
    }
    if (decode) {
      gemm->linear_f32out(h, H, lm_head, nullptr, logits, c.vocab, n, c.vocab, H);
      if (!gemms_only) argmax_cuda(logits, c.vocab, c.vocab, n, tokens, nullptr, s);
    } else {
      gemm->linear_f32out(h + (size_t)(n - 1) * H, H, lm_head, nullptr, logits, c.vocab, 1, c.vocab, H);
    }
  }

  // same rule as CudaDecoder: short flash-decoding splits when few (sequence, kv head) pairs
  void set_split(int batch, int max_ctx) {
    const int pairs = batch * c.nkv;
    c.split_len = attention_decode_split_len(pairs, max_ctx);
    c.max_splits = 1;
    while (c.max_splits * c.split_len < max_ctx) c.max_splits <<= 1;
  }
  void upload(int* dst, const std::vector<int>& v) {
    LMF_CUDA_CHECK(cudaMemcpyAsync(dst, v.data(), v.size() * 4, cudaMemcpyHostToDevice, s));
    LMF_CUDA_CHECK(cudaStreamSynchronize(s));
  }
  std::vector<int> bt_host;
  int slot_of(int seq, int pos) const {
    return bt_host[(size_t)seq * c.max_blocks + pos / c.block_size] * c.block_size + pos % c.block_size;
  }

  // Sets up a decode step: `batch` sequences, each with ctx tokens already cached; the new token sits at ctx.
  void setup_decode(int batch, int ctx, const std::vector<int>* toks = nullptr) {
    std::vector<int> pos(batch, ctx), sl(batch), cl(batch, ctx + 1), tk(batch);
    for (int b = 0; b < batch; b++) { sl[b] = slot_of(b, ctx); tk[b] = toks ? (*toks)[b] : (b * 7919 + 11) % c.vocab; }
    upload(positions, pos); upload(slots, sl); upload(ctx_lens, cl); upload(tokens, tk);
  }
  void setup_prefill(const std::vector<int>& toks) {
    const int n = (int)toks.size();
    std::vector<int> pos(n), sl(n);
    for (int i = 0; i < n; i++) { pos[i] = i; sl[i] = slot_of(0, i); }
    upload(positions, pos); upload(slots, sl); upload(tokens, toks);
    upload(ctx_lens, {n}); upload(q_starts, {0}); upload(q_lens, {n});
  }
  std::vector<float> download_logits(int rows) {
    std::vector<float> v((size_t)rows * c.vocab);
    LMF_CUDA_CHECK(cudaStreamSynchronize(s));
    LMF_CUDA_CHECK(cudaMemcpy(v.data(), logits, v.size() * 4, cudaMemcpyDeviceToHost));
    return v;
  }
};

template <typename F>
float median_ms(cudaStream_t s, int warm, int reps, F fn) {
  for (int i = 0; i < warm; i++) fn();
  cudaEvent_t a, b;
  LMF_CUDA_CHECK(cudaEventCreate(&a));
  LMF_CUDA_CHECK(cudaEventCreate(&b));
  std::vector<float> t;
  for (int i = 0; i < reps; i++) {
    LMF_CUDA_CHECK(cudaEventRecord(a, s));
    fn();
    LMF_CUDA_CHECK(cudaEventRecord(b, s));
    LMF_CUDA_CHECK(cudaEventSynchronize(b));
    float ms;
    LMF_CUDA_CHECK(cudaEventElapsedTime(&ms, a, b));
    t.push_back(ms);
  }
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

// LMF_BENCH_W4_NCU=1: a driver for Nsight Compute (scripts/device-w4k.sh NCU=1). One 7B linear at m rows
// (LMF_BENCH_W4_NCU_M, default 1; LMF_BENCH_W4_NCU_SHAPE = gate_up (default, 22016 x 4096) | down (4096 x 11008) | qkv |
// o), random codes and g128 scales; each W4 kernel launched once, in this order, then exit: stream read of the codes
// (no math), the fused kernel, then for m >= 9 the wide kernel's variants 1..5, for m <= 8 gemv read u4 (the GEMV's loads, no math), gemv(mma_qz) u4, gemv(mma_x)
// T2, T4, T8. No timing here (ncu replays each launch); the script filters the launches by name (-k) so the fill kernels
// are not profiled.
int w4_ncu_driver(const Cfg& c, cudaStream_t s) {
  const char* e = std::getenv("LMF_BENCH_W4_NCU_SHAPE");
  const std::string which = e && *e ? e : "gate_up";
  const int H = c.hidden, I = c.inter, Q = (c.nh + 2 * c.nkv) * c.hd, grp = 128;
  const int n = which == "down" ? H : which == "qkv" ? Q : which == "o" ? H : 2 * I;
  const int k = which == "down" ? I : which == "o" ? c.nh * c.hd : H, kp = (k + 127) / 128 * 128;
  int sms = 0;
  LMF_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
  half* q = dalloc_random((size_t)n * kp / 4, 7001, 1.f);
  half* sz = dalloc_random((size_t)(kp / grp) * n * 2, 7002, 0.002f, 0.01f);
  const char* me = std::getenv("LMF_BENCH_W4_NCU_M");
  const int m = std::max(1, me ? std::atoi(me) : 1);
  half* x = dalloc_random((size_t)m * k, 7003, 1.f);
  half* y = dalloc<half>((size_t)m * n);
  uint32_t* sink = dalloc<uint32_t>(1);
  const W4A16Dev w{reinterpret_cast<const uint32_t*>(q), reinterpret_cast<const half2*>(sz), nullptr, n, k, kp, grp};
  const size_t wsb = w4a16_fused_workspace_bytes(m, n, k, sms);
  float* ws = dalloc<float>(std::max<size_t>(wsb / 4, 1));
  LMF_CUDA_CHECK(cudaDeviceSynchronize());
  std::fprintf(stderr, "ncu driver: %s %d x %d, m = %d: stream read, fused%s\n", which.c_str(), n, k, m,
               m <= kW4GemvMaxRows ? ", gemv read u4, gemv(mma_qz), gemv(mma_x) T2 T4 T8" : ", wide v1 v2 v3 v4 v5");
  stream_read_kernel<<<sms * 8, 256, 0, s>>>(reinterpret_cast<const uint4*>(q), (size_t)n * kp / 32, sink);
  LMF_CUDA_LAUNCHED();
  w4a16_gemm_fused_cuda(x, k, w, y, n, m, wsb ? ws : nullptr, sms, s);
  if (m >= kW4WideMinRows)
    for (int v = 1; v <= 5; v++) w4a16_gemm_wide_cuda(x, k, w, y, n, false, m, sms, v, s);
  if (m <= kW4GemvMaxRows) {
    if (m == 1) w4a16_gemv_cuda(x, k, w, y, n, m, W4GemvDot::Read, sms, s, 4);
    w4a16_gemv_cuda(x, k, w, y, n, m, W4GemvDot::MmaQz, sms, s, 4);
    for (int T : {2, 4, 8}) w4a16_gemv_cuda(x, k, w, y, n, m, W4GemvDot::MmaX, sms, s, T);
  }
  LMF_CUDA_CHECK(cudaStreamSynchronize(s));
  cudaFree(q); cudaFree(sz); cudaFree(x); cudaFree(y); cudaFree(sink); cudaFree(ws);
  return 0;
}

std::vector<int> parse_list(const char* s) {
  std::vector<int> v;
  std::string str(s);
  size_t p = 0;
  while (p < str.size()) {
    size_t q = str.find(',', p);
    if (q == std::string::npos) q = str.size();
    v.push_back(std::stoi(str.substr(p, q - p)));
    p = q + 1;
  }
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  // "fused" rows / columns mean the fused kernel itself; the wide kernel is called by variant (the default path, auto,
  // routes 9+ rows to it)
  setenv("LMFLEET_W4A16_WIDE", "0", 0);
  Cfg c;
  std::vector<int> batches = {1, 16, 64};
  int ctx = 128, prefill = 2048;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--layers") c.layers = std::atoi(argv[i + 1]);
    else if (a == "--batches") batches = parse_list(argv[i + 1]);
    else if (a == "--ctx") ctx = std::atoi(argv[i + 1]);
    else if (a == "--prefill") prefill = std::atoi(argv[i + 1]);
  }
  try {
    cudaDeviceProp prop;
    LMF_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
    std::printf("device %s, %d SMs, L2 %d MB\n", prop.name, prop.multiProcessorCount, prop.l2CacheSize >> 20);
    c.max_batch = *std::max_element(batches.begin(), batches.end());
    c.max_tokens = std::max(prefill, c.max_batch);
    c.max_blocks = (std::max(prefill, ctx + 1) + c.block_size - 1) / c.block_size;
    c.dec_blocks = (ctx + 1 + c.block_size - 1) / c.block_size;
    c.num_blocks = std::max(c.max_batch * c.dec_blocks, c.max_blocks);
    c.max_splits = (c.max_blocks * c.block_size + c.split_len - 1) / c.split_len;
    cudaStream_t s;
    LMF_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    if (const char* e = std::getenv("LMF_BENCH_W4_NCU"); e && std::string(e) == "1") return w4_ncu_driver(c, s);

    // ceilings, measured here
    const size_t cp_bytes = 2ull << 30;
    void *src, *dst;
    LMF_CUDA_CHECK(cudaMalloc(&src, cp_bytes));
    LMF_CUDA_CHECK(cudaMalloc(&dst, cp_bytes));
    LMF_CUDA_CHECK(cudaMemset(src, 0x3c, cp_bytes));
    const float cp_ms = median_ms(s, 3, 20, [&] { LMF_CUDA_CHECK(cudaMemcpyAsync(dst, src, cp_bytes, cudaMemcpyDeviceToDevice, s)); });
    const double bw = 2.0 * cp_bytes / (cp_ms * 1e-3);
    LMF_CUDA_CHECK(cudaFree(src));
    LMF_CUDA_CHECK(cudaFree(dst));
    double mm_flops;
    {
      const int N = 8192;
      half* A = dalloc_random((size_t)N * N, 1, 1.f);
      half* B = dalloc_random((size_t)N * N, 2, 1.f);
      half* C = dalloc<half>((size_t)N * N);
      CublasGemm g(s);
      const float ms = median_ms(s, 3, 10, [&] { g.cublas_linear(A, N, B, C, N, N, N, N); });
      mm_flops = 2.0 * N * N * (double)N / (ms * 1e-3);
      cudaFree(A); cudaFree(B); cudaFree(C);
    }
    std::printf("copy bandwidth %.0f GB/s (read+write), cuBLAS f16 GEMM 8192^3 %.0f TFLOP/s\n", bw / 1e9, mm_flops / 1e12);

    if (std::getenv("LMF_BENCH_W4") == nullptr || std::string(std::getenv("LMF_BENCH_W4")) != "0") {
      // W4A16 g128 linears of one 7B layer (qkv, o, gate_up, down) summed, against the f16 linears (gemv / cuBLAS)
      // on the same shapes: the fused kernel, and dequantize + cuBLAS. Random codes and scales (never zeros).
      const int H = c.hidden, I = c.inter, Q = (c.nh + 2 * c.nkv) * c.hd, grp = 128;
      const int shapes[4][2] = {{Q, H}, {H, c.nh * c.hd}, {2 * I, H}, {H, I}};
      CublasGemm g(s);
      int sms = 0;
      LMF_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
      std::vector<half*> wf(4), wq(4), wsz(4);
      std::vector<W4A16Dev> wd(4);
      double w4_bytes = 0, f16_bytes = 0;
      size_t max_nk = 0;
      for (int i = 0; i < 4; i++) {
        const int n = shapes[i][0], k = shapes[i][1], kp = (k + 127) / 128 * 128;
        wf[i] = dalloc_random((size_t)n * k, 100 + i, 0.02f);
        wq[i] = dalloc_random((size_t)n * kp / 4, 200 + i, 1.f);  // any bits are valid codes
        wsz[i] = dalloc_random((size_t)(kp / grp) * n * 2, 300 + i, 0.002f, 0.01f);
        wd[i] = {reinterpret_cast<const uint32_t*>(wq[i]), reinterpret_cast<const half2*>(wsz[i]), nullptr, n, k, kp, grp};
        w4_bytes += (double)n * kp / 2 + (double)(kp / grp) * n * 4;
        f16_bytes += 2.0 * n * k;
        max_nk = std::max(max_nk, (size_t)n * k);
      }
      const int max_m = 2048;
      half* x = dalloc_random((size_t)max_m * I, 400, 1.f);
      half* y = dalloc<half>((size_t)max_m * 2 * I);
      half* dense = dalloc<half>(max_nk);
      size_t ws_bytes = 0;
      for (int m : {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048})
        for (int i = 0; i < 4; i++) ws_bytes = std::max(ws_bytes, w4a16_fused_workspace_bytes(m, shapes[i][0], shapes[i][1], sms));
      float* ws = dalloc<float>(std::max<size_t>(ws_bytes / 4, 1));
      std::printf("\n| W4A16 g128, one 7B layer's linears | f16 us | W4 fused us | W4 dequant+cuBLAS us | best W4 / f16 | fused GB/s (4-bit bytes) | %% of copy BW |\n|---|---|---|---|---|---|---|\n");
      for (int m : {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048}) {
        const float tf = median_ms(s, 3, 20, [&] {
          for (int i = 0; i < 4; i++) g.linear(x, shapes[i][1], wf[i], nullptr, y, shapes[i][0], m, shapes[i][0], shapes[i][1]);
        });
        const float tq = median_ms(s, 3, 20, [&] {
          for (int i = 0; i < 4; i++) w4a16_gemm_fused_cuda(x, shapes[i][1], wd[i], y, shapes[i][0], m, ws, sms, s);
        });
        const float td = median_ms(s, 3, 20, [&] {
          for (int i = 0; i < 4; i++) {
            w4a16_dequant_cuda(wd[i], dense, s);
            g.cublas_linear(x, shapes[i][1], dense, y, shapes[i][0], m, shapes[i][0], shapes[i][1]);
          }
        });
        const double gbs = w4_bytes / (tq * 1e-3) / 1e9;
        std::printf("| m=%d | %.1f | %.1f | %.1f | %.2fx | %.0f | %.0f%% |\n", m, tf * 1e3, tq * 1e3, td * 1e3,
                    std::min(tq, td) / tf, gbs, 100.0 * gbs * 1e9 / bw);
      }
      std::printf("(4-bit bytes per layer incl. scales/zeros %.1f MB vs f16 %.1f MB; %% of the copy bandwidth %.0f GB/s, the limit used everywhere here)\n",
                  w4_bytes / 1e6, f16_bytes / 1e6, bw / 1e9);
      // The decode GEMV (both inner products) against the fused kernel and f16 at m <= 8: the same four linears, then
      // per linear at m = 1. LMFLEET_W4A16_GEMV picks what CublasGemm::linear_w4a16 uses; this table calls each kernel.
      std::printf("\n| W4A16 g128 decode, one 7B layer's linears | f16 us | W4 fused us | W4 gemv(fma) us | W4 gemv(mma) us | best gemv / fused | best gemv / f16 | best gemv %% of copy BW |\n|---|---|---|---|---|---|---|---|\n");
      auto gemv_all = [&](int m, W4GemvDot dot) {
        return median_ms(s, 3, 20, [&] {
          for (int i = 0; i < 4; i++) w4a16_gemv_cuda(x, shapes[i][1], wd[i], y, shapes[i][0], m, dot, sms, s);
        });
      };
      for (int m : {1, 2, 4, 8}) {
        bool fits = true;
        for (int i = 0; i < 4; i++) fits = fits && w4a16_gemv_supported(m, shapes[i][1]);
        if (!fits) {
          std::printf("| m=%d | x tile does not fit in shared memory: no gemv |\n", m);
          continue;
        }
        const float tf = median_ms(s, 3, 20, [&] {
          for (int i = 0; i < 4; i++) g.linear(x, shapes[i][1], wf[i], nullptr, y, shapes[i][0], m, shapes[i][0], shapes[i][1]);
        });
        const float tq = median_ms(s, 3, 20, [&] {
          for (int i = 0; i < 4; i++) w4a16_gemm_fused_cuda(x, shapes[i][1], wd[i], y, shapes[i][0], m, ws, sms, s);
        });
        const float t1 = gemv_all(m, W4GemvDot::Fma), t2 = gemv_all(m, W4GemvDot::Mma), tb = std::min(t1, t2);
        std::printf("| m=%d | %.1f | %.1f | %.1f | %.1f | %.2fx | %.2fx | %.0f%% |\n", m, tf * 1e3, tq * 1e3, t1 * 1e3, t2 * 1e3,
                    tb / tq, tb / tf, 100.0 * (w4_bytes / (tb * 1e-3)) / bw);
      }
      std::printf("\n| W4A16 g128 m=1 per linear (n x k) | W4 MB | fused us | gemv(fma) us | gemv(mma) us | copy-rate us |\n|---|---|---|---|---|---|\n");
      for (int i = 0; i < 4; i++) {
        const int n = shapes[i][0], k = shapes[i][1], kp = (k + 127) / 128 * 128;
        const double b = (double)n * kp / 2 + (double)(kp / grp) * n * 4;
        const float tq = median_ms(s, 3, 20, [&] { w4a16_gemm_fused_cuda(x, k, wd[i], y, n, 1, ws, sms, s); });
        const float t1 = median_ms(s, 3, 20, [&] { w4a16_gemv_cuda(x, k, wd[i], y, n, 1, W4GemvDot::Fma, sms, s); });
        const float t2 = median_ms(s, 3, 20, [&] { w4a16_gemv_cuda(x, k, wd[i], y, n, 1, W4GemvDot::Mma, sms, s); });
        std::printf("| %d x %d | %.1f | %.1f | %.1f | %.1f | %.1f |\n", n, k, b / 1e6, tq * 1e3, t1 * 1e3, t2 * 1e3, b / bw * 1e6);
      }
      // Graph-timed (as the engine runs decode steps: no host launch gaps), weights rotated over NL copies of the layer
      // (> L2, so no linear is read from L2 by the next repetition). The eager tables above include host launch time
      // for short kernels (the GEMV's occupancy query per launch), which is why they are kept only for history.
      {
        constexpr int NL = 8, REPS = 16;
        std::vector<std::vector<half*>> lf(NL, std::vector<half*>(4)), lq(NL, std::vector<half*>(4)), lsz(NL, std::vector<half*>(4));
        std::vector<std::vector<W4A16Dev>> ld(NL, std::vector<W4A16Dev>(4));
        for (int l = 0; l < NL; l++)
          for (int i = 0; i < 4; i++) {
            const int n = shapes[i][0], k = shapes[i][1], kp = (k + 127) / 128 * 128;
            lf[l][i] = dalloc_random((size_t)n * k, 1000 + 10 * l + i, 0.02f);
            lq[l][i] = dalloc_random((size_t)n * kp / 4, 2000 + 10 * l + i, 1.f);
            lsz[l][i] = dalloc_random((size_t)(kp / grp) * n * 2, 3000 + 10 * l + i, 0.002f, 0.01f);
            ld[l][i] = {reinterpret_cast<const uint32_t*>(lq[l][i]), reinterpret_cast<const half2*>(lsz[l][i]), nullptr, n, k, kp, grp};
          }
        uint32_t* sink = dalloc<uint32_t>(1);
        size_t ws2 = 0;
        for (int bps : {2, 4})
          for (int div : {16, 4}) {
            w4a16_fused_tuning(bps, div);
            for (int m : {1, 2, 4, 8, 16, 32, 64, 128})
              for (int i = 0; i < 4; i++) ws2 = std::max(ws2, w4a16_fused_workspace_bytes(m, shapes[i][0], shapes[i][1], sms));
          }
        w4a16_fused_tuning(0, 0);
        float* wsb = dalloc<float>(std::max<size_t>(ws2 / 4, 1));
        // us per call of fn(layer), fn captured REPS times over the rotated layers, graph replays' median
        auto graph_us = [&](auto fn) {
          cudaGraph_t gr;
          cudaGraphExec_t ex;
          LMF_CUDA_CHECK(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
          for (int r = 0; r < REPS; r++) fn(r % NL);
          LMF_CUDA_CHECK(cudaStreamEndCapture(s, &gr));
          LMF_CUDA_CHECK(cudaGraphInstantiate(&ex, gr, 0));
          const float ms = median_ms(s, 2, 15, [&] { LMF_CUDA_CHECK(cudaGraphLaunch(ex, s)); });
          LMF_CUDA_CHECK(cudaGraphExecDestroy(ex));
          LMF_CUDA_CHECK(cudaGraphDestroy(gr));
          return ms * 1e3f / REPS;
        };
        auto stream_read = [&](int l, int i) {
          const int n = shapes[i][0], kp = (shapes[i][1] + 127) / 128 * 128;
          stream_read_kernel<<<sms * 8, 256, 0, s>>>(reinterpret_cast<const uint4*>(lq[l][i]), (size_t)n * kp / 32, sink);
          stream_read_kernel<<<sms * 2, 256, 0, s>>>(reinterpret_cast<const uint4*>(lsz[l][i]), (size_t)(kp / grp) * n / 4, sink);
        };
        // The wide kernel (batched decode) against the fused kernel and f16 cuBLAS: per linear and per layer, m = 9..128
        {
          std::printf("\n| W4A16 g128 graph-timed, batched decode (m rows) | linear (n x k) | f16 us | fused us | wide v1 us (ks) | wide v2 us (ks) | wide v3 us (ks) | wide v4 us (ks) | wide v5 us (ks) | wide auto us (variant) | auto / f16 | auto / fused | auto %% of copy BW |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
          for (int m : {9, 16, 32, 48, 64, 128}) {
            for (int i = 0; i <= 4; i++) {  // i == 4: the whole layer
              auto lin = [&](int i0, int l, int what) {
                for (int j = (i0 == 4 ? 0 : i0); j < (i0 == 4 ? 4 : i0 + 1); j++) {
                  const int n = shapes[j][0], k = shapes[j][1];
                  if (what == 0) g.linear(x, k, lf[l][j], nullptr, y, n, m, n, k);
                  else if (what == 1) w4a16_gemm_fused_cuda(x, k, ld[l][j], y, n, m, wsb, sms, s);
                  else w4a16_gemm_wide_cuda(x, k, ld[l][j], y, n, false, m, sms, what == 7 ? kW4WideAuto : what - 1, s);
                }
              };
              float t[8];
              for (int what = 0; what < 8; what++) t[what] = graph_us([&](int l) { lin(i, l, what); });
              double b = 0;
              for (int j = (i == 4 ? 0 : i); j < (i == 4 ? 4 : i + 1); j++) {
                const int kp = (shapes[j][1] + 127) / 128 * 128;
                b += (double)shapes[j][0] * kp / 2 + (double)(kp / grp) * shapes[j][0] * 4;
              }
              const float ta = t[7];
              char ks[6][16];
              for (int v = 0; v < 5; v++)
                std::snprintf(ks[v], sizeof ks[v], "%s", i == 4 ? "" : (" (" + std::to_string(w4a16_wide_splits(m, shapes[i][0], shapes[i][1], v + 1)) + ")").c_str());
              std::snprintf(ks[5], sizeof ks[5], "%s", i == 4 ? "" : (" (v" + std::to_string(w4a16_wide_variant(m, shapes[i][0], shapes[i][1], kW4WideAuto)) + ")").c_str());
              std::printf("| m=%d | %s | %.1f | %.1f | %.1f%s | %.1f%s | %.1f%s | %.1f%s | %.1f%s | %.1f%s | %.2fx | %.2fx | %.0f%% |\n", m,
                          i == 4 ? "layer" : (std::to_string(shapes[i][0]) + " x " + std::to_string(shapes[i][1])).c_str(),
                          t[0], t[1], t[2], ks[0], t[3], ks[1], t[4], ks[2], t[5], ks[3], t[6], ks[4], ta, ks[5], t[0] / ta, t[1] / ta,
                          100.0 * b / (ta * 1e-6) / bw);
            }
          }
          std::printf("(auto / f16 > 1: the wide kernel's default is faster; ks: the k split = cluster size its plan takes)\n");
        }
        const bool wide_only = std::getenv("LMF_BENCH_W4_WIDE_ONLY") && std::string(std::getenv("LMF_BENCH_W4_WIDE_ONLY")) == "1";
        if (!wide_only) {
        const float t_stream = graph_us([&](int l) { for (int i = 0; i < 4; i++) stream_read(l, i); });
        const float t_read4 = graph_us([&](int l) {
          for (int i = 0; i < 4; i++) w4a16_gemv_cuda(x, shapes[i][1], ld[l][i], y, shapes[i][0], 1, W4GemvDot::Read, sms, s, 4);
        });
        const float t_read8 = graph_us([&](int l) {
          for (int i = 0; i < 4; i++) w4a16_gemv_cuda(x, shapes[i][1], ld[l][i], y, shapes[i][0], 1, W4GemvDot::Read, sms, s, 8);
        });
        const float t_reada = graph_us([&](int l) {
          for (int i = 0; i < 4; i++) w4a16_gemv_cuda(x, shapes[i][1], ld[l][i], y, shapes[i][0], 1, W4GemvDot::ReadAsync, sms, s);
        });
        std::printf("\nW4A16 g128 graph-timed, one 7B layer's 4 linears (%d rotated copies, %.1f MB each): plain stream read "
                    "of the same bytes %.1f us (%.0f%% of copy BW); the GEMV's loads with no math (m = 1): registers unroll 4 "
                    "%.1f us (%.0f%%), unroll 8 %.1f us (%.0f%%), cp.async ring %.1f us (%.0f%%); copy-rate time %.1f us\n",
                    NL, w4_bytes / 1e6, t_stream, 100.0 * w4_bytes / (t_stream * 1e-6) / bw, t_read4,
                    100.0 * w4_bytes / (t_read4 * 1e-6) / bw, t_read8, 100.0 * w4_bytes / (t_read8 * 1e-6) / bw, t_reada,
                    100.0 * w4_bytes / (t_reada * 1e-6) / bw, w4_bytes / bw * 1e6);
        std::printf("\n| W4A16 g128 graph-timed, one 7B layer's linears | f16 us | fused us | fused split x2 us | gemv(mma) u4 us | gemv(mma_qz) u4 us | gemv(mma) async us | gemv(mma_x) T2 us | gemv(mma_x) T4 us | gemv(mma_x) T8 us | gemv(mma_x) auto us | best W4 / f16 | best W4 %% of copy BW |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
        auto mx_layer = [&](int m, int T) {
          return graph_us([&](int l) {
            for (int i = 0; i < 4; i++) w4a16_gemv_cuda(x, shapes[i][1], ld[l][i], y, shapes[i][0], m, W4GemvDot::MmaX, sms, s, T);
          });
        };
        for (int m : {1, 2, 4, 8, 16, 32, 64, 128}) {
          const float tf = graph_us([&](int l) {
            for (int i = 0; i < 4; i++) g.linear(x, shapes[i][1], lf[l][i], nullptr, y, shapes[i][0], m, shapes[i][0], shapes[i][1]);
          });
          const float tq = graph_us([&](int l) {
            for (int i = 0; i < 4; i++) w4a16_gemm_fused_cuda(x, shapes[i][1], ld[l][i], y, shapes[i][0], m, wsb, sms, s);
          });
          w4a16_fused_tuning(4, 4);
          const float tq2 = graph_us([&](int l) {
            for (int i = 0; i < 4; i++) w4a16_gemm_fused_cuda(x, shapes[i][1], ld[l][i], y, shapes[i][0], m, wsb, sms, s);
          });
          w4a16_fused_tuning(0, 0);
          float tg4 = 0, tg8 = 0, tfm = 0, tx2 = 0, tx4 = 0, tx8 = 0, txa = 0;
          bool gv = m <= kW4GemvMaxRows;
          for (int i = 0; i < 4; i++) gv = gv && w4a16_gemv_supported(m, shapes[i][1]) && w4a16_gemv_supported(m, shapes[i][1], W4GemvDot::MmaX);
          if (gv) {
            tg4 = graph_us([&](int l) {
              for (int i = 0; i < 4; i++) w4a16_gemv_cuda(x, shapes[i][1], ld[l][i], y, shapes[i][0], m, W4GemvDot::Mma, sms, s, 4);
            });
            tg8 = graph_us([&](int l) {
              for (int i = 0; i < 4; i++) w4a16_gemv_cuda(x, shapes[i][1], ld[l][i], y, shapes[i][0], m, W4GemvDot::MmaQz, sms, s, 4);
            });
            tfm = graph_us([&](int l) {
              for (int i = 0; i < 4; i++) w4a16_gemv_cuda(x, shapes[i][1], ld[l][i], y, shapes[i][0], m, W4GemvDot::MmaAsync, sms, s);
            });
            tx2 = mx_layer(m, 2);
            tx4 = mx_layer(m, 4);
            tx8 = mx_layer(m, 8);
            txa = mx_layer(m, 0);  // what LMFLEET_W4A16_GEMV=8 runs: T by shape (4 for qkv / gate_up, 2 for o / down)
          }
          float best = std::min(tq, tq2);
          if (gv) best = std::min({best, tg4, tg8, tfm, tx2, tx4, tx8});
          auto col = [&](float t) { return gv ? std::to_string(t).substr(0, std::to_string(t).find('.') + 2) : std::string("-"); };
          std::printf("| m=%d | %.1f | %.1f | %.1f | %s | %s | %s | %s | %s | %s | %s | %.2fx | %.0f%% |\n", m, tf, tq, tq2, col(tg4).c_str(),
                      col(tg8).c_str(), col(tfm).c_str(), col(tx2).c_str(), col(tx4).c_str(), col(tx8).c_str(), col(txa).c_str(), tf / best,
                      100.0 * w4_bytes / (best * 1e-6) / bw);
        }
        std::printf("(fused split x2: the split-k plan aiming at 4 blocks per SM with partial sums up to k / (4 rows) "
                    "instead of 2 and k / (16 rows); best W4 / f16 > 1 means W4 is faster)\n");
        std::printf("\n| W4A16 g128 graph-timed m=1 per linear (n x k) | W4 MB | stream read us | gemv read u4 us | gemv read async us | fused us | gemv(mma) u4 us | gemv(mma_qz) u4 us | gemv(mma) async us | gemv(mma_x) T2 us | gemv(mma_x) T4 us | gemv(mma_x) T8 us | copy-rate us |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
        for (int i = 0; i < 4; i++) {
          const int n = shapes[i][0], k = shapes[i][1], kp = (k + 127) / 128 * 128;
          const double b = (double)n * kp / 2 + (double)(kp / grp) * n * 4;
          const float a0 = graph_us([&](int l) { stream_read(l, i); });
          const float a1 = graph_us([&](int l) { w4a16_gemv_cuda(x, k, ld[l][i], y, n, 1, W4GemvDot::Read, sms, s, 4); });
          const float a2 = graph_us([&](int l) { w4a16_gemm_fused_cuda(x, k, ld[l][i], y, n, 1, wsb, sms, s); });
          const float a3 = graph_us([&](int l) { w4a16_gemv_cuda(x, k, ld[l][i], y, n, 1, W4GemvDot::Mma, sms, s, 4); });
          const float a4 = graph_us([&](int l) { w4a16_gemv_cuda(x, k, ld[l][i], y, n, 1, W4GemvDot::MmaQz, sms, s, 4); });
          const float a5 = graph_us([&](int l) { w4a16_gemv_cuda(x, k, ld[l][i], y, n, 1, W4GemvDot::ReadAsync, sms, s); });
          const float a6 = graph_us([&](int l) { w4a16_gemv_cuda(x, k, ld[l][i], y, n, 1, W4GemvDot::MmaAsync, sms, s); });
          float ax[3];
          for (int ti = 0; ti < 3; ti++)
            ax[ti] = graph_us([&](int l) { w4a16_gemv_cuda(x, k, ld[l][i], y, n, 1, W4GemvDot::MmaX, sms, s, 2 << ti); });
          std::printf("| %d x %d | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f |\n", n, k,
                      b / 1e6, a0, a1, a5, a2, a3, a4, a6, ax[0], ax[1], ax[2], b / bw * 1e6);
        }
        }  // !wide_only
        for (int l = 0; l < NL; l++)
          for (int i = 0; i < 4; i++) { cudaFree(lf[l][i]); cudaFree(lq[l][i]); cudaFree(lsz[l][i]); }
        cudaFree(sink);
        cudaFree(wsb);
      }
      for (int i = 0; i < 4; i++) { cudaFree(wf[i]); cudaFree(wq[i]); cudaFree(wsz[i]); }
      cudaFree(x); cudaFree(y); cudaFree(dense); cudaFree(ws);
      if (std::getenv("LMF_BENCH_W4_ONLY") && std::string(std::getenv("LMF_BENCH_W4_ONLY")) == "1") return 0;
    }

    Model m;
    m.init(c, s);
    std::printf("weights %.2f GB, KV cache %.2f GB\n", m.weight_bytes / 1e9,
                2.0 * c.layers * c.num_blocks * c.nkv * c.block_size * c.hd * 2 / 1e9);

    // end-to-end check: prefill n then decode token n  vs  prefill n+1
    {
      const int n = 100;
      std::vector<int> toks(n + 1);
      for (int i = 0; i <= n; i++) toks[i] = (i * 2654435761u) % c.vocab;
      m.setup_prefill(toks);
      m.forward(n + 1, false, n + 1);
      auto ref = m.download_logits(1);
      m.setup_prefill(std::vector<int>(toks.begin(), toks.begin() + n));
      m.forward(n, false, n);
      std::vector<int> last = {toks[n]};
      m.set_split(1, n + 1);
      m.setup_decode(1, n, &last);
      m.forward(1, true, 1);
      auto got = m.download_logits(1);
      std::vector<double> a(got.begin(), got.end()), r(ref.begin(), ref.end());
      const double e = testing::rel_err(a, r);
      std::printf("end-to-end: logits(prefill %d + decode 1) vs logits(prefill %d): rel err %.2e (bound 2e-2) %s\n", n,
                  n + 1, e, e <= 2e-2 ? "PASS" : "FAIL");
    }

    struct Row { int batch; float eager_ms, graph_ms; double bytes; };
    std::vector<Row> rows;
    for (int b : batches) {
      m.set_split(b, ctx + 1);
      m.setup_decode(b, ctx);
      const float eager = median_ms(s, 3, 10, [&] { m.forward(b, true, 1); });
      cudaGraph_t graph;
      cudaGraphExec_t exec;
      LMF_CUDA_CHECK(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
      m.forward(b, true, 1);
      LMF_CUDA_CHECK(cudaStreamEndCapture(s, &graph));
      LMF_CUDA_CHECK(cudaGraphInstantiate(&exec, graph, 0));
      const float g = median_ms(s, 5, 50, [&] { LMF_CUDA_CHECK(cudaGraphLaunch(exec, s)); });
      LMF_CUDA_CHECK(cudaGraphExecDestroy(exec));
      LMF_CUDA_CHECK(cudaGraphDestroy(graph));
      // the same step with only its linear layers (where the rest of the time goes)
      LMF_CUDA_CHECK(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
      m.forward(b, true, 1, true);
      LMF_CUDA_CHECK(cudaStreamEndCapture(s, &graph));
      LMF_CUDA_CHECK(cudaGraphInstantiate(&exec, graph, 0));
      const float gl = median_ms(s, 5, 30, [&] { LMF_CUDA_CHECK(cudaGraphLaunch(exec, s)); });
      LMF_CUDA_CHECK(cudaGraphExecDestroy(exec));
      LMF_CUDA_CHECK(cudaGraphDestroy(graph));
      std::printf("decode batch %d: linears alone %.3f ms (graph)\n", b, gl);
      const double kv = 2.0 * c.layers * b * (ctx + 1) * c.nkv * c.hd * 2;
      rows.push_back({b, eager, g, (double)m.weight_bytes + kv});
      std::printf("decode batch %d: eager %.3f ms, graph %.3f ms\n", b, eager, g);
    }
    float pf_ms = 0, pf_gemm_ms = 0;
    if (prefill > 0) {
      std::vector<int> toks(prefill);
      for (int i = 0; i < prefill; i++) toks[i] = (i * 40503u + 7) % c.vocab;
      m.setup_prefill(toks);
      g_attention_prefill_impl = 0;
      const float pf_wmma = median_ms(s, 1, 5, [&] { m.forward(prefill, false, prefill); });
      g_attention_prefill_impl = 1;
      pf_ms = median_ms(s, 2, 7, [&] { m.forward(prefill, false, prefill); });
      std::printf("prefill %d: %.1f ms with the flash-attention-2 kernel, %.1f ms with the WMMA kernel\n", prefill, pf_ms, pf_wmma);
      pf_gemm_ms = median_ms(s, 2, 7, [&] { m.forward(prefill, false, prefill, true); });
    }
    const double pf_flops = 2.0 * (double)(m.weight_bytes / 2 - (size_t)c.vocab * c.hidden) * prefill;
    std::printf("\n| decode (ctx %d) | eager ms/step | graph ms/step | limit ms (bytes/BW) | %% of limit | tok/s |\n",
                ctx);
    std::printf("|---|---|---|---|---|---|\n");
    for (auto& r : rows) {
      const double lim = r.bytes / bw * 1e3;
      std::printf("| batch %d | %.3f | %.3f | %.3f | %.0f%% | %.0f |\n", r.batch, r.eager_ms, r.graph_ms, lim,
                  100.0 * lim / r.graph_ms, r.batch * 1e3 / r.graph_ms);
    }
    if (prefill > 0)
      std::printf("| prefill %d | %.1f ms | %.0f tok/s | GEMMs alone %.1f ms (%.0f TFLOP/s) | layer stack at %.0f%% of its GEMM time | %.0f%% of 8192^3 rate |\n",
                  prefill, pf_ms, prefill / (pf_ms * 1e-3), pf_gemm_ms, pf_flops / (pf_gemm_ms * 1e-3) / 1e12,
                  100.0 * pf_gemm_ms / pf_ms, 100.0 * pf_flops / (pf_ms * 1e-3) / mm_flops);
    std::printf("copy BW %.0f GB/s; cuBLAS 8192^3 %.0f TFLOP/s\n", bw / 1e9, mm_flops / 1e12);
  } catch (const lmfleet::Error& e) {
    std::printf("ERROR %s: %s\n", error_code_name(e.code), e.what());
    return 1;
  }
  return 0;
}
