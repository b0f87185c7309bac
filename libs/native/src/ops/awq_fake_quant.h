// awq_fake_quant: AWQ's candidate weights in one pass. For W [rows, cols] (out x in, row-major), an optional
// per-input-channel scale s [cols] and an optional clip per (row, group) [rows, cols/group]:
//   ws = W diag(s)                                   (one f32 multiply per element)
//   per (row, group): v = clamp(ws, -clip, clip), mn/mx = min/max v,
//     scale = f16(max(mx - mn, 1e-5) / qmax)  (f64 math, rounded to f32 then f16: the checkpoint stores f16 scales;
//             a zero scale becomes the smallest normal f16),  zero = clamp(round(-mn / scale), 0, qmax)
//     q = clamp(round(v / scale) + zero, 0, qmax)      (f64 division, round half up: JavaScript's Math.round)
//   out = ((q - zero) * scale) / s                    (f32, IEEE division)
// This is bit for bit the TypeScript pack.ts quantizeLinear + dequantizeLinear with awq.ts' column scaling, on
// both backends. Optionally (codes != null) the integer codes q [rows, cols], zeros and scales [rows, groups].
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

#ifdef __CUDACC__
#define LMF_AWQ_HD __host__ __device__ __forceinline__
#else
#define LMF_AWQ_HD inline
#endif

namespace lmfleet {

struct awq_fake_quant_args {
  const float* w;      // [rows, cols]
  const float* scale;  // [cols] or null (no column scaling)
  const float* clip;   // [rows, cols / group] or null (no clipping)
  float* out;          // [rows, cols]
  uint8_t* codes;      // [rows, cols] or null; when set, zeros and scales are written too
  uint8_t* zeros;      // [rows, cols / group]
  float* scales;       // [rows, cols / group]
  int64_t rows, cols;
  int bits, group;
};

// f32 -> f16 -> f32 with round to nearest even (as io/half.ts f32ToF16Bits / f16BitsToF32), subnormals included.
LMF_AWQ_HD float awq_round_f16(float f) {
  uint32_t x;
#ifdef __CUDA_ARCH__
  x = __float_as_uint(f);
#else
  std::memcpy(&x, &f, 4);
#endif
  const uint32_t sign = (x >> 16) & 0x8000u;
  const int exp = (int)((x >> 23) & 0xff);
  uint32_t mant = x & 0x7fffffu;
  uint32_t h;
  if (exp == 0xff) {
    h = sign | 0x7c00u | (mant ? 0x200u : 0u);
  } else {
    const int e = exp - 127 + 15;
    if (e >= 0x1f) {
      h = sign | 0x7c00u;
    } else if (e <= 0) {
      if (e < -10) {
        h = sign;
      } else {
        mant |= 0x800000u;
        const int shift = 14 - e;
        uint32_t hv = mant >> shift;
        const uint32_t rem = mant & ((1u << shift) - 1), halfway = 1u << (shift - 1);
        if (rem > halfway || (rem == halfway && (hv & 1))) hv++;
        h = sign | hv;
      }
    } else {
      uint32_t hv = ((uint32_t)e << 10) | (mant >> 13);
      const uint32_t rem = mant & 0x1fffu;
      if (rem > 0x1000u || (rem == 0x1000u && (hv & 1))) hv++;
      h = sign | hv;
    }
  }
  // back to f32
  const uint32_t hs = (h & 0x8000u) << 16, he = (h >> 10) & 0x1f, hm = h & 0x3ff;
  float r;
  if (he == 0) {
    r = (float)hm * 5.9604644775390625e-8f;  // 2^-24, exact
    return hs ? -r : r;
  }
  const uint32_t bits = he == 0x1f ? (hs | 0x7f800000u | (hm << 13)) : (hs | ((he - 15 + 127) << 23) | (hm << 13));
#ifdef __CUDA_ARCH__
  r = __uint_as_float(bits);
#else
  std::memcpy(&r, &bits, 4);
#endif
  return r;
}

// JavaScript's Math.round: the nearest integer, halves towards +infinity (exact for every double).
LMF_AWQ_HD double awq_js_round(double v) {
  const double f = floor(v);
  return v - f >= 0.5 ? f + 1.0 : f;
}

// (scale, zero) of one group from its clamped min and max.
LMF_AWQ_HD void awq_group_params(float mn, float mx, int qmax, float* scale, int* zero) {
  double d = (double)mx - (double)mn;
  if (d < 1e-5) d = 1e-5;  // Math.max(mx - mn, 1e-5)
  float s = awq_round_f16((float)(d / qmax));
  if (!(s > 0.f)) s = 6.103515625e-5f;  // the smallest normal f16: never a zero scale
  double z = awq_js_round(-(double)mn / (double)s);
  z = z < 0 ? 0 : (z > qmax ? qmax : z);
  *scale = s;
  *zero = (int)z;
}

LMF_AWQ_HD int awq_code(float v, float s, int zero, int qmax) {
  double q = awq_js_round((double)v / (double)s) + zero;
  return (int)(q < 0 ? 0 : (q > qmax ? qmax : q));
}

LMF_AWQ_HD float awq_clamp(float v, float c) { return v > c ? c : (v < -c ? -c : v); }

}  // namespace lmfleet
