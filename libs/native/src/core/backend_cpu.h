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
// W4A16 weights on the cpu (ops/w4a16_gemm.cpu.cc): kept packed; linear_cpu hands them to w4a16_linear_cpu.
std::unique_ptr<LinearWeight> prepare_w4a16_cpu(const W4A16Host& w, const void* bias, DType bias_dtype);
struct linear_args;
void w4a16_linear_cpu(const linear_args& a, ThreadPool& pool);

}  // namespace lmfleet
