#pragma once
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace lmfleet {
// AWQ fake quantization (ops/awq_fake_quant.h for the math): one warp per (row, group), device pointers.
// w [rows, cols] f32 or f16; scale [cols] / clip [rows, cols/group] f32 or null; out f32 [rows, cols];
// codes u8 [rows, cols] + zeros u8 / scales f32 [rows, cols/group] or null. Bit-exact with the CPU reference.
void awq_fake_quant_cuda(const float* w, const float* scale, const float* clip, float* out, uint8_t* codes,
                         uint8_t* zeros, float* scales, int64_t rows, int64_t cols, int bits, int group, cudaStream_t s);
void awq_fake_quant_cuda(const half* w, const float* scale, const float* clip, float* out, uint8_t* codes,
                         uint8_t* zeros, float* scales, int64_t rows, int64_t cols, int bits, int group, cudaStream_t s);
}  // namespace lmfleet
