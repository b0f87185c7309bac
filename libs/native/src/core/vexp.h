// Vectorizable exp for float arrays (softmax): exp(x) = 2^n * p(r), r = x - n ln2, |r| <= ln2/2, degree-6
// polynomial (max relative error ~2 ulp); inputs below -87.3 give ~0. Written with vector extensions so
// it vectorizes without -ffast-math; the result does not depend on where an element sits in the array.
#pragma once
#include <cstdint>
#include <cstring>

namespace lmfleet {

#if defined(__AVX512F__)
constexpr int kExpVW = 16;
#else
constexpr int kExpVW = 8;
#endif
typedef float vexp_f __attribute__((vector_size(kExpVW * 4)));
typedef int32_t vexp_i __attribute__((vector_size(kExpVW * 4)));

inline vexp_f vexp(vexp_f x) {
  const vexp_f lo = vexp_f{} - 87.3f;
  x = x < lo ? lo : x;
  const vexp_f magic = vexp_f{} + 12582912.0f;  // 1.5 * 2^23: rounds to nearest integer
  vexp_f t = x * 1.44269504088896341f + magic;
  vexp_f n = t - magic;
  vexp_f r = x - n * 0.693145751953125f;  // ln2 split in two for an exact n*ln2_hi
  r = r - n * 1.428606765330187045e-06f;
  vexp_f p = vexp_f{} + (1.0f / 720);
  p = p * r + (1.0f / 120);
  p = p * r + (1.0f / 24);
  p = p * r + (1.0f / 6);
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  vexp_i ni = __builtin_convertvector(n, vexp_i);
  vexp_i bits = (ni + 127) << 23;
  vexp_f scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

// y[i] = exp(x[i] - sub) for i < n.
inline void exp_sub_array(const float* x, float sub, float* y, int64_t n) {
  int64_t i = 0;
  for (; i + kExpVW <= n; i += kExpVW) {
    vexp_f v;
    std::memcpy(&v, x + i, sizeof v);
    v = vexp(v - sub);
    std::memcpy(y + i, &v, sizeof v);
  }
  if (i < n) {
    float tmp[kExpVW];
    for (int j = 0; j < kExpVW; j++) tmp[j] = i + j < n ? x[i + j] : sub;
    vexp_f v;
    std::memcpy(&v, tmp, sizeof v);
    v = vexp(v - sub);
    std::memcpy(tmp, &v, sizeof v);
    for (int64_t j = 0; i + j < n; j++) y[i + j] = tmp[j];
  }
}

}  // namespace lmfleet
