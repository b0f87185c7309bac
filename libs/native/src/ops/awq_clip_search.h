// AWQ's weight-clipping search for one linear, in one op: per output row and input group, shrink max|w| of the
// group to (1 - step / n_grid) of itself for step = 0 .. steps - 1, fake-quantize the clamped group (the
// awq_fake_quant math, ops/awq_fake_quant.h) and measure the error of the group's partial outputs on the
// token sample X: err(step) = sum_t (sum_k X[t, g*G + k] * r[k])^2 with r = Q(clamp(w, c)) - w. The step
// with the smallest error wins (first one on ties); its clip value goes out, with that error.
// Numerics (both backends): the clip value of a step is c = f32(f64(max|w|) * (1 - step / n_grid)) (the value
// awq_fake_quant's clip input then reproduces), clamping and the residual in f32, each token's dot product in
// f32 with one fused multiply-add per k in k order, the squares summed in f64.
#pragma once
#include <cstdint>

#include "ops/awq_fake_quant.h"

namespace lmfleet {

struct awq_clip_search_args {
  const float* w;  // [rows, cols]
  const float* x;  // [tokens, cols]
  float* clip;     // [rows, cols / group] out: the chosen max|w| per (row, group)
  float* err;      // [rows, cols / group] out: its error
  int64_t rows, cols, tokens;
  int bits, group, steps, n_grid;
};

LMF_AWQ_HD float awq_clip_value(float org_max, int step, int n_grid) {
  return (float)((double)org_max * (1.0 - (double)step / (double)n_grid));
}

}  // namespace lmfleet
