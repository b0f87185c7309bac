#pragma once
// Device helpers shared by the W4A16 kernels (ops/w4a16_gemm.cu) and the grouped experts' W4A16 GEMV (ops/moe.cu):
// the m16n8k16 mma and the dequantization of one packed word of our layout (ops/w4a16_gemm.h) into f16 pairs.
#include <cuda_fp16.h>

#include <cstdint>

namespace lmfleet {

__device__ __forceinline__ void mma16816(float* c, const uint32_t* a, uint32_t b0, uint32_t b1) {
  asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
               : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// One packed word (lane (g, t) of an 8-row tile: row g, k = 32 j + 8 i + 2 t and the next k for i = 0..3) -> its 4
// f16 pairs ((1024 + q) - (1024 + z)) s, AutoAWQ's f16 weights bit for bit. As mma operands: pairs 0, 1 feed one k16
// step, pairs 2, 3 the next (the B fragment of an 8-row tile, or half of the A fragment of a 16-row tile pair).
__device__ __forceinline__ void dequant_word(uint32_t w, half2 z1024, half2 s, uint32_t* b) {
#pragma unroll
  for (int i = 0; i < 4; i++) {
    uint32_t v = ((w >> (4 * i)) & 0x000F000Fu) | 0x64006400u;
    half2 h = __hmul2(__hsub2(*reinterpret_cast<half2*>(&v), z1024), s);
    b[i] = *reinterpret_cast<uint32_t*>(&h);
  }
}

// A (scale, zero) pair -> the scale in both halves and 1024 + zero in both halves (dequant_word's arguments).
__device__ __forceinline__ void scale_zero(half2 sz, half2* s, half2* z1024) {
  *s = __half2half2(__low2half(sz));
  *z1024 = __hadd2(__half2half2(__high2half(sz)), __float2half2_rn(1024.f));
}

}  // namespace lmfleet
