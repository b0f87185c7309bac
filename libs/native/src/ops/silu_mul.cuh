#pragma once
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "ops/silu_mul.h"

namespace lmfleet {
// SwiGLU: out[r, i] = silu(gate[r, i]) * up[r, i], with gate = gate_up + r*ld and up = gate + inter
// (the fused gate|up GEMM output, ld >= 2*inter). f32 inside, one rounding. act: GeGLU (gelu_mul_f32) instead.
void silu_mul_cuda(const half* gate_up, int ld, half* out, int rows, int inter, cudaStream_t s,
                   Activation act = Activation::Silu);
}  // namespace lmfleet
