// CudaBackend entries of the quantization-toolchain ops (ops.def: awq_fake_quant, channel_stats), kept out of
// backend_cuda.cu so that file stays the decoder's. Kernels and their math: ops/<op>.cu, ops/<op>.h.
#include "cuda/backend_cuda.h"
#include "ops/awq_fake_quant.cuh"
#include "ops/awq_fake_quant.h"
#include "ops/channel_stats.cuh"
#include "ops/channel_stats.h"

namespace lmfleet {

void CudaBackend::awq_fake_quant(const awq_fake_quant_args& a) {
  bind();
  awq_fake_quant_cuda(a.w, a.scale, a.clip, a.out, a.codes, a.zeros, a.scales, a.rows, a.cols, a.bits, a.group, stream());
}

void CudaBackend::channel_stats(const channel_stats_args& a) {
  bind();
  channel_stats_cuda(a.x, a.rows, a.cols, a.absmax, a.abssum, a.min, a.max, stream());
}

}  // namespace lmfleet
