#pragma once
#include <cuda_fp16.h>
#include <cuda_runtime.h>

namespace lmfleet {
// y[r, :] = x[r, :] * rsqrt(mean(x[r, :]^2) + eps) * w, statistics in f32. x and y may alias.
void rms_norm_cuda(const half* x, const half* w, half* y, int rows, int cols, float eps, cudaStream_t s);
// Fused residual add + norm (the decoder's "residual += sublayer_out; h = norm(residual)"):
//   residual[r, :] = half(residual[r, :] + x[r, :]);  y[r, :] = rms_norm(residual[r, :]) * w.
void add_rms_norm_cuda(half* residual, const half* x, const half* w, half* y, int rows, int cols, float eps,
                       cudaStream_t s);
}  // namespace lmfleet
