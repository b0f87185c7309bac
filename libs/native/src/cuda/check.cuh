// The one CUDA check macro: every runtime/driver/cuBLAS call and every launch goes through it, and a failure
// throws lmfleet::Error{E_CUDA} naming the expression, file and line (never abort()).
#pragma once
#include <cuda_runtime.h>

#include <string>

#include "core/error.h"

namespace lmfleet {

[[noreturn]] inline void cuda_fail(const char* what, const char* detail, const char* file, int line) {
  fail(ErrorCode::Cuda, std::string(what) + " failed: " + detail + " at " + file + ":" + std::to_string(line));
}

}  // namespace lmfleet

#define LMF_CUDA_CHECK(expr)                                                                   \
  do {                                                                                         \
    cudaError_t lmf_e_ = (expr);                                                               \
    if (lmf_e_ != cudaSuccess) ::lmfleet::cuda_fail(#expr, cudaGetErrorString(lmf_e_), __FILE__, __LINE__); \
  } while (0)

// After every kernel launch: catches bad launch configurations (grid/smem) at once.
#define LMF_CUDA_LAUNCHED() LMF_CUDA_CHECK(cudaGetLastError())
