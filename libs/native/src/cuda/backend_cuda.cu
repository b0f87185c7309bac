#include "cuda/backend_cuda.h"

#include <cstring>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/env.h"
#include "core/error.h"
#include "cuda/check.cuh"
#include "cuda/f32_ops.cuh"
#include "ops/add.h"
#include "ops/argmax.cuh"
#include "ops/argmax.h"
#include "ops/attention.h"
#include "ops/embedding.h"
#include "ops/kv_store.h"
#include "ops/linear.cuh"
#include "ops/linear.h"
#include "ops/log_softmax.cuh"
#include "ops/log_softmax.h"
#include "ops/nll.cuh"
#include "ops/nll.h"
#include "ops/rms_norm.h"
#include "ops/rope.h"
#include "ops/sample.cuh"
#include "ops/sample.h"
#include "ops/silu_mul.h"
#include "ops/w4a16_gemm.h"

namespace lmfleet {

CudaLinearWeight::~CudaLinearWeight() {
  cudaSetDevice(device);
  if (w) cudaFree(w);
  if (bias) cudaFree(bias);
}

CudaW4A16Weight::~CudaW4A16Weight() {
  cudaSetDevice(device);
  if (qweight) cudaFree(qweight);
  if (sz) cudaFree(sz);
  if (bias) cudaFree(bias);
}

DeviceScratch::~DeviceScratch() {
  if (p_) host_ ? cudaFreeHost(p_) : cudaFree(p_);
}

void* DeviceScratch::get(size_t bytes) {
  if (bytes > bytes_) {
    // cudaFree / cudaFreeHost wait for the device: no kernel or copy still uses it
    if (p_) LMF_CUDA_CHECK(host_ ? cudaFreeHost(p_) : cudaFree(p_));
    p_ = nullptr;
    const size_t grown = std::max(bytes, bytes_ * 3 / 2);
    LMF_CUDA_CHECK(host_ ? cudaMallocHost(&p_, grown) : cudaMalloc(&p_, grown));
    bytes_ = grown;
  }
  return p_;
}

CudaBackend::CudaBackend(int device) : device_(device) {
  int count = 0;
  cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess || count == 0)
    fail(ErrorCode::BackendUnavailable, std::string("cuda: no usable GPU (") +
                                            (e != cudaSuccess ? cudaGetErrorString(e) : "0 devices") + ")");
  if (device < 0 || device >= count)
    fail(ErrorCode::BackendUnavailable, "cuda: device " + std::to_string(device) + " does not exist (" +
                                            std::to_string(count) + " visible)");
  cudaDeviceProp prop;
  LMF_CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
  if (prop.major < 8)
    fail(ErrorCode::BackendUnavailable, std::string("cuda: ") + prop.name + " is sm_" + std::to_string(prop.major) +
                                            std::to_string(prop.minor) + "; sm_80 or newer is needed");
  bind();
  LMF_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  gemm_ = std::make_unique<CublasGemm>(stream_);
}

CudaBackend::~CudaBackend() {
  cudaSetDevice(device_);
  if (stream_) cudaStreamSynchronize(stream_);
  gemm_.reset();
  if (stream_) cudaStreamDestroy(stream_);
}

void CudaBackend::bind() const { LMF_CUDA_CHECK(cudaSetDevice(device_)); }

int64_t CudaBackend::available_memory_bytes() const {
  bind();
  size_t free_b = 0, total_b = 0;
  LMF_CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
  return (int64_t)free_b;
}

void* CudaBackend::alloc(size_t bytes) {
  bind();
  void* p = nullptr;
  cudaError_t e = cudaMalloc(&p, bytes ? bytes : 1);
  if (e == cudaErrorMemoryAllocation) {
    cudaGetLastError();
    fail(ErrorCode::Cuda, "cuda: out of device memory allocating " + std::to_string(bytes) + " bytes");
  }
  LMF_CUDA_CHECK(e);
  return p;
}

void CudaBackend::release(void* p) {
  if (!p) return;
  cudaSetDevice(device_);
  cudaFree(p);
}

void CudaBackend::upload(void* dst, const void* src, size_t bytes) {
  bind();
  LMF_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream_));
  LMF_CUDA_CHECK(cudaStreamSynchronize(stream_));
}

void CudaBackend::download(void* dst, const void* src, size_t bytes) {
  bind();
  LMF_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream_));
  LMF_CUDA_CHECK(cudaStreamSynchronize(stream_));
}

void CudaBackend::synchronize() {
  bind();
  LMF_CUDA_CHECK(cudaStreamSynchronize(stream_));
}

int* CudaBackend::stage_i32(int slot, const int32_t* host, int64_t n) {
  int* d = scratch_[slot].as<int>((size_t)std::max<int64_t>(n, 1));
  if (n > 0) {
    LMF_CUDA_CHECK(cudaMemcpyAsync(d, host, (size_t)n * 4, cudaMemcpyHostToDevice, stream_));
    LMF_CUDA_CHECK(cudaStreamSynchronize(stream_));  // pageable source: keep the host array's lifetime simple
  }
  return d;
}

std::unique_ptr<LinearWeight> CudaBackend::prepare_linear(const void* w, DType dtype, const void* bias,
                                                          DType bias_dtype, int64_t n, int64_t k) {
  bind();
  auto to_f16 = [](const void* src, DType t, int64_t count) {
    std::vector<uint16_t> h((size_t)count);
    if (t == DType::F16) {
      std::memcpy(h.data(), src, (size_t)count * 2);
    } else if (t == DType::F32) {
      const float* f = static_cast<const float*>(src);
      for (int64_t i = 0; i < count; i++) h[i] = f32_to_f16(f[i]);
    } else if (t == DType::BF16) {
      const uint16_t* b = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < count; i++) h[i] = f32_to_f16(bf16_to_f32(b[i]));
    } else {
      fail(ErrorCode::InvalidArgument, std::string("linear: weight dtype ") + dtype_name(t) + " is not f32/f16/bf16");
    }
    return h;
  };
  auto lw = std::make_unique<CudaLinearWeight>();
  lw->n = n;
  lw->k = k;
  lw->device = device_;
  lw->has_bias = bias != nullptr;
  lw->w = static_cast<half*>(alloc((size_t)n * k * 2));
  if (dtype == DType::F16) {  // as stored: no host copy
    upload(lw->w, w, (size_t)n * k * 2);
  } else {
    auto hw = to_f16(w, dtype, n * k);
    upload(lw->w, hw.data(), hw.size() * 2);
  }
  if (bias) {
    auto hb = to_f16(bias, bias_dtype, n);
    lw->bias = static_cast<half*>(alloc((size_t)n * 2));
    upload(lw->bias, hb.data(), hb.size() * 2);
  }
  return lw;
}

std::unique_ptr<LinearWeight> CudaBackend::prepare_w4a16(const W4A16Host& w, const void* bias, DType bias_dtype) {
  bind();
  w4a16_check_shape(w.n, w.k, w.group, "prepare_w4a16");
  if (w.qweight.size() != (size_t)(w.n / 8) * (w.kp / 128) * 128 || w.scales_zeros.size() != (size_t)(w.kp / w.group) * w.n * 2)
    fail(ErrorCode::Internal, "prepare_w4a16: packed sizes do not match the shape");
  auto lw = std::make_unique<CudaW4A16Weight>();
  lw->n = w.n;
  lw->k = w.k;
  lw->kp = w.kp;
  lw->group = w.group;
  lw->device = device_;
  lw->has_bias = bias != nullptr;
  lw->qweight = static_cast<uint32_t*>(alloc(w.qweight.size() * 4));
  upload(lw->qweight, w.qweight.data(), w.qweight.size() * 4);
  lw->sz = static_cast<half2*>(alloc(w.scales_zeros.size() * 2));
  upload(lw->sz, w.scales_zeros.data(), w.scales_zeros.size() * 2);
  if (bias) {
    std::vector<uint16_t> hb((size_t)w.n);
    std::vector<float> f((size_t)w.n);
    convert_to_f32(bias, bias_dtype, w.n, f.data());
    for (int64_t i = 0; i < w.n; i++) hb[i] = f32_to_f16(f[i]);
    lw->bias = static_cast<half*>(alloc((size_t)w.n * 2));
    upload(lw->bias, hb.data(), hb.size() * 2);
  }
  return lw;
}

bool CudaBackend::supports(const std::string& op) const {
#define LMFLEET_OP(name) if (op == #name) return true;
#include "ops/ops.def"
#undef LMFLEET_OP
  return false;
}

void CudaBackend::embedding(const embedding_args& a) {
  bind();
  for (int64_t i = 0; i < a.n; i++)
    if (a.ids[i] < 0 || a.ids[i] >= a.vocab)
      fail(ErrorCode::InvalidArgument, "embedding: id " + std::to_string(a.ids[i]) + " is outside [0, " +
                                           std::to_string(a.vocab) + ")");
  int* ids = stage_i32(0, a.ids, a.n);
  embedding_f32_cuda(ids, a.table, a.out, a.n, a.hidden, stream_, a.scale);
}

void CudaBackend::rms_norm(const rms_norm_args& a) {
  bind();
  rms_norm_f32_cuda(a.x, a.w, a.out, a.rows, a.dim, a.eps, stream_);
}

void CudaBackend::linear(const linear_args& a) {
  bind();
  if (a.w && a.w->group > 0) {
    const auto* q = dynamic_cast<const CudaW4A16Weight*>(a.w);
    if (!q) fail(ErrorCode::Internal, "linear: W4A16 weight was not prepared by the cuda backend");
    if (a.m <= 0) return;
    half* x16 = x16_.as<half>((size_t)(a.m * q->k));
    f32_to_f16_cuda(a.x, x16, a.m * q->k, stream_);
    gemm_->linear_w4a16_f32out(x16, (int)q->k, q->dev(), a.y, (int)q->n, (int)a.m);
    return;
  }
  const auto* w = dynamic_cast<const CudaLinearWeight*>(a.w);
  if (!w) fail(ErrorCode::Internal, "linear: weight was not prepared by the cuda backend");
  if (a.m <= 0) return;
  half* x16 = x16_.as<half>((size_t)(a.m * w->k));
  f32_to_f16_cuda(a.x, x16, a.m * w->k, stream_);
  gemm_->linear_f32out(x16, (int)w->k, w->w, w->bias, a.y, (int)w->n, (int)a.m, (int)w->n, (int)w->k);
}

void CudaBackend::w4a16_gemm(const w4a16_gemm_args& a) {
  bind();
  w4a16_check_shape(a.n, a.k, a.group, "w4a16_gemm");
  if (a.m <= 0) return;
  half* x16 = x16_.as<half>((size_t)(a.m * a.k));
  f32_to_f16_cuda(a.x, x16, a.m * a.k, stream_);
  half* b16 = nullptr;
  if (a.bias) {
    b16 = scratch_[6].as<half>((size_t)a.n);
    f32_to_f16_cuda(a.bias, b16, a.n, stream_);
  }
  const W4A16Dev w{a.qweight, reinterpret_cast<const half2*>(a.scales_zeros), b16, (int)a.n, (int)a.k,
                   (int)w4a16_padded_k(a.k), (int)a.group};
  gemm_->linear_w4a16_f32out(x16, (int)a.k, w, a.y, (int)a.n, (int)a.m);
}

void CudaBackend::rope(const rope_args& a) {
  bind();
  // the per-head norm (Qwen3) is fused into the f16 decoder's rope_kv_store_cuda; this f32 op-level path has none
  if (a.norm_w) fail(ErrorCode::Internal, "cuda rope: the per-head norm runs in the decoder's rope + KV store kernel only");
  int* pos = stage_i32(0, a.positions, a.tokens);
  rope_f32_cuda(a.x, a.ld, a.tokens, a.heads, a.head_dim, a.rotary_dim, pos, a.inv_freq, a.inv_freq_stride, stream_, a.cs_scale);
}

void CudaBackend::kv_store(const kv_store_args& a) {
  bind();
  // The quantized cache lives in the fused f16 decoder (CudaDecoder: rope_kv_store_cuda / attention_*_cuda with
  // quant_policy, checked by test_kernels.cu); this f32 op-level path keeps the float cache only.
  if (a.quant_policy)
    fail(ErrorCode::InvalidArgument, "kv_store: quant_policy " + std::to_string(a.quant_policy) + " is not supported by the cuda op-level path (the cuda decoder supports it)");
  for (int64_t t = 0; t < a.tokens; t++)
    if (a.slots[t] >= a.num_slots) fail(ErrorCode::InvalidArgument, "kv_store: slot out of range");
  int* slots = stage_i32(0, a.slots, a.tokens);
  kv_store_f32_cuda(a.k, a.v, a.ld, slots, a.tokens, a.width, a.k_cache, a.v_cache, stream_);
}

void CudaBackend::attention(const attention_args& a) {
  bind();
  if (a.quant_policy)
    fail(ErrorCode::InvalidArgument, "attention: quant_policy " + std::to_string(a.quant_policy) + " is not supported by the cuda op-level path (the cuda decoder supports it)");
  if (a.kv_heads <= 0 || a.heads % a.kv_heads) fail(ErrorCode::InvalidArgument, "attention: heads must be a multiple of kv_heads");
  std::vector<int32_t> tok_seq;
  int64_t max_ctx = 1;
  for (int64_t s = 0; s < a.num_seqs; s++) {
    const int32_t q_start = a.seq_info[3 * s], q_len = a.seq_info[3 * s + 1], ctx = a.seq_info[3 * s + 2];
    if (q_len < 0 || ctx < q_len || ctx > a.max_blocks * a.block_size)
      fail(ErrorCode::InvalidArgument, "attention: bad seq_info for sequence " + std::to_string(s));
    for (int64_t b = 0; b < (ctx + a.block_size - 1) / a.block_size; b++) {
      const int32_t blk = a.block_tables[s * a.max_blocks + b];
      if (blk < 0 || blk >= a.num_blocks) fail(ErrorCode::InvalidArgument, "attention: block " + std::to_string(blk) + " out of range");
    }
    if ((int64_t)tok_seq.size() < q_start + q_len) tok_seq.resize(q_start + q_len, 0);
    for (int32_t j = 0; j < q_len; j++) tok_seq[q_start + j] = (int32_t)s;
    max_ctx = std::max<int64_t>(max_ctx, ctx);
  }
  const int64_t tokens = (int64_t)tok_seq.size();
  int* bt = stage_i32(0, a.block_tables, a.num_seqs * a.max_blocks);
  int* si = stage_i32(1, a.seq_info, a.num_seqs * 3);
  int* ts = stage_i32(2, tok_seq.data(), tokens);
  float* scores = scores_.as<float>((size_t)(std::max<int64_t>(tokens, 1) * a.heads * max_ctx));
  attention_f32_cuda(a.q, a.ldq, a.out, a.k_cache, a.v_cache, a.block_size, bt, a.max_blocks, si, ts, tokens, a.heads,
                     a.kv_heads, a.head_dim, a.scale, scores, max_ctx, stream_, a.window, a.softcap);
}

void CudaBackend::silu_mul(const silu_mul_args& a) {
  bind();
  silu_mul_f32_cuda(a.gate, a.up, a.ld, a.out, a.rows, a.n, stream_, (int)a.act);
}

void CudaBackend::add(const add_args& a) {
  bind();
  add_f32_cuda(a.a, a.b, a.out, a.n, stream_);
}

void CudaBackend::argmax(const argmax_args& a) {
  bind();
  argmax_cuda(a.logits, (int)a.vocab, (int)a.vocab, (int)a.rows, a.out, nullptr, stream_);
}

// Sampling on the device with the caller's uniforms (SamplingRow::u), so a request's draws come from its own
// RNG as on the CPU. The GPU walks the CDF in token-index order (the CPU in logit order): for the same u the
// two backends may pick different tokens of the same distribution.
void CudaBackend::sample(const sample_args& a) {
  bind();
  const int rows = (int)a.rows, vocab = (int)a.vocab;
  if (rows <= 0) return;
  std::vector<float> temp(rows), topp(rows), minp(rows), pen(rows), pres(rows), freq(rows);
  std::vector<int32_t> topk(rows), hist, starts(1, 0), gstarts(rows);
  std::vector<double> u(rows);
  bool penalize = false, openai_pen = false;
  for (int r = 0; r < rows; r++) {
    const SamplingRow& p = a.params[r];
    temp[r] = p.temperature;
    topk[r] = p.top_k;
    topp[r] = p.top_p;
    minp[r] = p.min_p;
    pen[r] = p.repetition_penalty;
    pres[r] = p.presence_penalty;
    freq[r] = p.frequency_penalty;
    u[r] = p.u;
    const bool rep = p.repetition_penalty != 1.f && p.repetition_penalty > 0.f;
    const bool pf = (p.presence_penalty != 0.f || p.frequency_penalty != 0.f) && p.history_len > p.penalty_from;
    const int32_t base = (int32_t)hist.size();
    if ((rep || pf) && p.history_len > 0) {
      penalize = penalize || rep;
      openai_pen = openai_pen || pf;
      hist.insert(hist.end(), p.history, p.history + p.history_len);
    }
    starts.push_back((int32_t)hist.size());
    gstarts[r] = std::min<int32_t>((int32_t)hist.size(), base + (int32_t)std::max<int64_t>(0, p.penalty_from));
  }
  // one staging buffer: doubles, floats, ints back to back; pinned, with the sampled tokens' landing place after it (the
  // copies then go straight to the device's copy engine: a pageable copy stages through the driver and the host waits
  // for the device in a slower way). The last call's copies ended with its synchronize.
  const size_t nf = 6 * (size_t)rows, ni = (size_t)rows + starts.size() + hist.size() + (size_t)rows + (size_t)rows;
  const size_t host_bytes = 8 * (size_t)rows + 4 * (nf + ni) + 8, out_at = (host_bytes + 15) / 16 * 16;
  std::vector<unsigned char> pageable;  // LMFLEET_SAMPLE_PINNED=0: the pageable copies instead (an A/B switch)
  const bool pinned = env_switch("LMFLEET_SAMPLE_PINNED", true);
  if (!pinned) pageable.resize(out_at + 4 * (size_t)rows);
  unsigned char* hp = pinned ? static_cast<unsigned char*>(sample_host_.get(out_at + 4 * (size_t)rows)) : pageable.data();
  std::memcpy(hp, u.data(), 8 * (size_t)rows);
  float* hf = reinterpret_cast<float*>(hp + 8 * (size_t)rows);
  std::memcpy(hf, temp.data(), 4 * rows);
  std::memcpy(hf + rows, topp.data(), 4 * rows);
  std::memcpy(hf + 2 * rows, pen.data(), 4 * rows);
  std::memcpy(hf + 3 * rows, pres.data(), 4 * rows);
  std::memcpy(hf + 4 * rows, freq.data(), 4 * rows);
  std::memcpy(hf + 5 * rows, minp.data(), 4 * rows);
  int32_t* hi = reinterpret_cast<int32_t*>(hf + 6 * rows);
  std::memcpy(hi, topk.data(), 4 * rows);
  std::memcpy(hi + rows, starts.data(), 4 * starts.size());
  if (!hist.empty()) std::memcpy(hi + rows + starts.size(), hist.data(), 4 * hist.size());
  std::memcpy(hi + rows + starts.size() + hist.size() + rows, gstarts.data(), 4 * rows);
  unsigned char* dev = static_cast<unsigned char*>(scratch_[3].get(host_bytes));
  LMF_CUDA_CHECK(cudaMemcpyAsync(dev, hp, host_bytes, cudaMemcpyHostToDevice, stream_));
  const double* du = reinterpret_cast<const double*>(dev);
  const float* df = reinterpret_cast<const float*>(dev + 8 * (size_t)rows);
  const int32_t* di = reinterpret_cast<const int32_t*>(df + 6 * rows);
  const int32_t* dhist = di + rows + starts.size();
  int* dout = reinterpret_cast<int*>(const_cast<int32_t*>(dhist + hist.size()));
  const int32_t* dgstarts = dhist + hist.size() + rows;
  // guided rows (SamplingRow::allowed): their masks go up in one copy (unguided rows send none) and the tokens they do
  // not allow become -inf in the logits' copy, before the penalties (which keep -inf), so every draw is an allowed token
  int nmask = 0;
  for (int r = 0; r < rows; r++) nmask += a.params[r].allowed != nullptr;
  const int words = (vocab + 31) / 32;
  const int* dmask_row = nullptr;
  const uint32_t* dmasks = nullptr;
  if (nmask > 0) {
    const size_t mbytes = 4 * (size_t)rows + 4 * (size_t)nmask * words;
    int32_t* mh = static_cast<int32_t*>(mask_host_.get(mbytes));
    uint32_t* mw = reinterpret_cast<uint32_t*>(mh + rows);
    for (int r = 0, k = 0; r < rows; r++) {
      mh[r] = a.params[r].allowed ? k : -1;
      if (a.params[r].allowed) std::memcpy(mw + (size_t)k++ * words, a.params[r].allowed, 4 * (size_t)words);
    }
    int32_t* md = static_cast<int32_t*>(scratch_[7].get(mbytes));
    LMF_CUDA_CHECK(cudaMemcpyAsync(md, mh, mbytes, cudaMemcpyHostToDevice, stream_));
    dmask_row = md;
    dmasks = reinterpret_cast<const uint32_t*>(md + rows);
  }
  // logit bias (SamplingRow::bias_ids / bias_vals): (row, id, value) triples up in one copy, added after the mask
  int nbias = 0;
  for (int r = 0; r < rows; r++) nbias += std::max(0, a.params[r].n_bias);
  const int *dbrow = nullptr, *dbid = nullptr;
  const float* dbval = nullptr;
  if (nbias > 0) {
    const size_t bbytes = 12 * (size_t)nbias;
    int32_t* bh = static_cast<int32_t*>(bias_host_.get(bbytes));
    float* bv = reinterpret_cast<float*>(bh + 2 * (size_t)nbias);
    for (int r = 0, k = 0; r < rows; r++)
      for (int32_t i = 0; i < a.params[r].n_bias; i++, k++) {
        bh[k] = r;
        bh[nbias + k] = a.params[r].bias_ids[i];
        bv[k] = a.params[r].bias_vals[i];
      }
    int32_t* bd = static_cast<int32_t*>(bias_dev_.get(bbytes));
    LMF_CUDA_CHECK(cudaMemcpyAsync(bd, bh, bbytes, cudaMemcpyHostToDevice, stream_));
    dbrow = bd;
    dbid = bd + nbias;
    dbval = reinterpret_cast<const float*>(bd + 2 * (size_t)nbias);
  }
  const float* logits = a.logits;
  float* copy = nullptr;  // the caller's logits stay untouched: masks, biases and penalties work on a copy
  if (penalize || openai_pen || nmask > 0 || nbias > 0) {
    copy = scratch_[4].as<float>((size_t)rows * vocab);
    LMF_CUDA_CHECK(cudaMemcpyAsync(copy, a.logits, (size_t)rows * vocab * 4, cudaMemcpyDeviceToDevice, stream_));
    logits = copy;
    if (nmask > 0) token_mask_cuda(copy, vocab, vocab, rows, dmasks, words, dmask_row, stream_);
    if (nbias > 0) logit_bias_cuda(copy, vocab, dbrow, dbid, dbval, nbias, stream_);
  }
  if (penalize || openai_pen) {
    // One zeroed workspace: the repetition bitmap, then the presence/frequency counts (each kernel leaves it zeroed).
    const size_t ws = std::max(sample_bitmap_bytes(rows, vocab), openai_pen ? (size_t)rows * vocab * sizeof(int) : (size_t)0);
    void* work = scratch_[5].get(ws);
    LMF_CUDA_CHECK(cudaMemsetAsync(work, 0, ws, stream_));
    if (penalize)
      repetition_penalty_cuda(copy, vocab, vocab, rows, dhist, di + rows, df + 2 * rows, static_cast<unsigned*>(work), stream_);
    if (openai_pen)
      presence_frequency_penalty_cuda(copy, vocab, vocab, rows, dhist, dgstarts, di + rows, df + 3 * rows, df + 4 * rows,
                                      static_cast<int*>(work), stream_);
  }
  SampleParamsDevice p{df, di, df + rows, nullptr, nullptr, du, df + 5 * rows};
  sample_cuda(logits, vocab, vocab, rows, p, dout, nullptr, stream_);
  int32_t* hout = reinterpret_cast<int32_t*>(hp + out_at);
  LMF_CUDA_CHECK(cudaMemcpyAsync(hout, dout, 4 * (size_t)rows, cudaMemcpyDeviceToHost, stream_));
  LMF_CUDA_CHECK(cudaStreamSynchronize(stream_));
  std::memcpy(a.out, hout, 4 * (size_t)rows);
}

void CudaBackend::log_softmax(const log_softmax_args& a) {
  bind();
  log_softmax_cuda(a.x, a.out, (int)a.vocab, (int)a.rows, (int)a.vocab, stream_);
}

void CudaBackend::nll(const nll_args& a) {
  bind();
  for (int64_t r = 0; r < a.rows; r++)
    if (a.targets[r] < 0 || a.targets[r] >= a.vocab) fail(ErrorCode::InvalidArgument, "nll: target out of range");
  int* t = stage_i32(0, a.targets, a.rows);
  nll_cuda(a.logits, (int)a.vocab, t, a.out, (int)a.rows, (int)a.vocab, stream_);
}

std::unique_ptr<Backend> make_cuda_backend(int device) { return std::make_unique<CudaBackend>(device); }

}  // namespace lmfleet
