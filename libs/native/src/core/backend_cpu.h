// The CPU backend: reference for every op, multi-threaded through a ThreadPool.
#pragma once
#include "core/backend.h"
#include "core/thread_pool.h"

namespace lmfleet {

#define LMFLEET_OP(op) void op##_cpu(const op##_args& a, ThreadPool& pool);
#include "ops/ops.def"
#undef LMFLEET_OP

std::unique_ptr<LinearWeight> prepare_linear_cpu(const void* w, DType dtype, const void* bias, DType bias_dtype,
                                                 int64_t n, int64_t k, ThreadPool& pool);
// W4A16 weights on the cpu (ops/w4a16_gemm.cpu.cc): dequantized once into f32 GEMM panels (a plain linear weight).
std::unique_ptr<LinearWeight> prepare_w4a16_cpu(const W4A16Host& w, const void* bias, DType bias_dtype, ThreadPool& pool);

}  // namespace lmfleet
