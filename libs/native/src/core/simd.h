// 8-lane float vectors (GCC/Clang vector extensions). Kernels keep per-lane accumulators so g++ vectorizes
// them without -ffast-math (no reassociation needed); results don't depend on batch size or thread count.
#pragma once
#include <cstdint>
#include <cstring>

namespace lmfleet {

typedef float v8f __attribute__((vector_size(32)));

inline v8f v8_load(const float* p) {
  v8f v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline void v8_store(float* p, v8f v) { std::memcpy(p, &v, sizeof v); }
inline v8f v8_splat(float x) { return v8f{x, x, x, x, x, x, x, x}; }
inline float v8_sum(v8f v) { return ((v[0] + v[4]) + (v[1] + v[5])) + ((v[2] + v[6]) + (v[3] + v[7])); }

// Dot product with a fixed summation order (lane-wise, then a fixed tree, then the tail).
inline float dot_f32(const float* a, const float* b, int64_t n) {
  v8f acc0 = v8_splat(0.f), acc1 = v8_splat(0.f);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    acc0 += v8_load(a + i) * v8_load(b + i);
    acc1 += v8_load(a + i + 8) * v8_load(b + i + 8);
  }
  for (; i + 8 <= n; i += 8) acc0 += v8_load(a + i) * v8_load(b + i);
  float s = v8_sum(acc0 + acc1);
  for (; i < n; i++) s += a[i] * b[i];
  return s;
}

// y += alpha * x
inline void axpy_f32(float* y, const float* x, float alpha, int64_t n) {
  v8f va = v8_splat(alpha);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) v8_store(y + i, v8_load(y + i) + va * v8_load(x + i));
  for (; i < n; i++) y[i] += alpha * x[i];
}

}  // namespace lmfleet
