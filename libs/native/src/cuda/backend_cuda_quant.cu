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

}  // namespace lmfleet
