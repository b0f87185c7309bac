// CudaBackend entries of the quantization-toolchain ops (ops.def: awq_fake_quant, channel_stats, awq_clip_search,
// sq_err) and the AWQ session's resident linears, kept out of
// backend_cuda.cu so that file stays the decoder's. Kernels and their math: ops/<op>.cu, ops/<op>.h.
#include "cuda/backend_cuda.h"
#include "ops/awq_fake_quant.cuh"
#include "ops/awq_fake_quant.h"
#include "ops/channel_stats.cuh"
#include "ops/channel_stats.h"
#include "ops/awq_clip_search.cuh"
#include "ops/awq_clip_search.h"
#include "ops/sq_err.cuh"
#include "ops/sq_err.h"
#include "cuda/check.cuh"
#include "cuda/f32_ops.cuh"
#include "ops/attention.cuh"
#include "ops/attention.h"

#include <algorithm>
#include <vector>

namespace lmfleet {

void CudaBackend::awq_fake_quant(const awq_fake_quant_args& a) {
  bind();
  awq_fake_quant_cuda(a.w, a.scale, a.clip, a.out, a.codes, a.zeros, a.scales, a.rows, a.cols, a.bits, a.group, stream());
}

void CudaBackend::channel_stats(const channel_stats_args& a) {
  bind();
  channel_stats_cuda(a.x, a.rows, a.cols, a.absmax, a.abssum, a.min, a.max, stream());
}

void CudaBackend::awq_clip_search(const awq_clip_search_args& a) {
  bind();
  awq_clip_search_cuda(a.w, a.x, a.clip, a.err, a.rows, a.cols, a.tokens, a.bits, a.group, a.steps, a.n_grid, stream());
}

void CudaBackend::sq_err(const sq_err_args& a) {
  bind();
  sq_err_cuda(a.a, a.b, a.rows, a.cols, a.out, stream());
}

std::unique_ptr<LinearWeight> CudaBackend::prepare_linear_resident(const float* w, const float* bias, int64_t n, int64_t k) {
  bind();
  auto lw = std::make_unique<CudaLinearWeight>();
  lw->n = n;
  lw->k = k;
  lw->device = device();
  lw->has_bias = bias != nullptr;
  lw->w = static_cast<half*>(alloc((size_t)n * k * 2));
  f32_to_f16_cuda(w, lw->w, n * k, stream());
  if (bias) {
    lw->bias = static_cast<half*>(alloc((size_t)n * 2));
    f32_to_f16_cuda(bias, lw->bias, n, stream());
  }
  return lw;
}

// The session's attention: q, k, v to f16, the decoder's causal prefill kernel (flash-attention-2 on tensor cores),
// the output back to f32. Falls back to the f32 op for what that kernel does not take (quantized caches, head
// dims other than 16/32/64/96/128/256, q rows inside a wider buffer).
void CudaBackend::attention_fast(const attention_args& a) {
  bind();
  const int64_t hd = a.head_dim;
  if (a.quant_policy || (hd != 16 && hd != 32 && hd != 64 && hd != 96 && hd != 128 && hd != 256) ||
      (a.ldq && a.ldq != a.heads * hd)) {
    attention(a);
    return;
  }
  if (a.kv_heads <= 0 || a.heads % a.kv_heads) fail(ErrorCode::InvalidArgument, "attention: heads must be a multiple of kv_heads");
  std::vector<int32_t> q_starts((size_t)a.num_seqs), q_lens((size_t)a.num_seqs), ctx((size_t)a.num_seqs);
  int64_t tokens = 0, max_q = 1;
  for (int64_t s = 0; s < a.num_seqs; s++) {
    const int32_t q0 = a.seq_info[3 * s], ql = a.seq_info[3 * s + 1], c = a.seq_info[3 * s + 2];
    if (q0 < 0 || ql < 0 || c < ql || c > a.max_blocks * a.block_size)
      fail(ErrorCode::InvalidArgument, "attention: bad seq_info for sequence " + std::to_string(s));
    for (int64_t b = 0; b < (c + a.block_size - 1) / a.block_size; b++) {
      const int32_t blk = a.block_tables[s * a.max_blocks + b];
      if (blk < 0 || blk >= a.num_blocks) fail(ErrorCode::InvalidArgument, "attention: block " + std::to_string(blk) + " out of range");
    }
    q_starts[s] = q0;
    q_lens[s] = ql;
    ctx[s] = c;
    tokens = std::max<int64_t>(tokens, (int64_t)q0 + ql);
    max_q = std::max<int64_t>(max_q, ql);
  }
  if (tokens == 0) return;
  const int64_t qw = a.heads * hd, kvn = a.num_blocks * a.block_size * a.kv_heads * hd;
  half* q16 = scratch_[3].as<half>((size_t)(tokens * qw));
  half* k16 = scratch_[4].as<half>((size_t)kvn);
  half* v16 = scratch_[5].as<half>((size_t)kvn);
  half* o16 = scratch_[6].as<half>((size_t)(tokens * qw));
  f32_to_f16_cuda(a.q, q16, tokens * qw, stream());
  f32_to_f16_cuda(a.k_cache, k16, kvn, stream());
  f32_to_f16_cuda(a.v_cache, v16, kvn, stream());
  int* bt = stage_i32(0, a.block_tables, a.num_seqs * a.max_blocks);
  int* qs = stage_i32(1, q_starts.data(), a.num_seqs);
  int* qlen = stage_i32(2, q_lens.data(), a.num_seqs);
  int* cl = stage_i32(7, ctx.data(), a.num_seqs);
  attention_prefill_cuda(q16, (int)qw, k16, v16, bt, (int)a.max_blocks, qs, qlen, cl, o16, (int)qw, (int)a.num_seqs, (int)max_q,
                         (int)a.heads, (int)a.kv_heads, (int)hd, (int)a.block_size, a.scale, stream(), 0, nullptr, nullptr,
                         (int)a.window);
  f16_to_f32_cuda(o16, a.out, tokens * qw, stream());
}

}  // namespace lmfleet
