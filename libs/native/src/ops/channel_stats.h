// channel_stats: per-column statistics of X [rows, cols] (a linear layer's input, one row per token),
// accumulated into the caller's buffers: absmax[c] = max(absmax[c], max_r |x|), abssum[c] += sum_r |x| (f64,
// rows in order), min[c] = min(min[c], min_r x), max[c] = max(max[c], max_r x). Calibration (`lite calibrate`)
// and the AWQ scale search (mean |x| per input channel) use it; per-head K/V statistics reduce its columns.
// runOp carries abssum as f32 pairs (hi, lo) with hi + lo == the f64 sum to ~2^-48 relative (there is no f64
// tensor dtype); the backends hold it as f64.
#pragma once
#include <cstdint>

namespace lmfleet {
struct channel_stats_args {
  const float* x;  // [rows, cols]
  int64_t rows, cols;
  float* absmax;   // [cols], in/out
  double* abssum;  // [cols], in/out
  float* min;      // [cols], in/out
  float* max;      // [cols], in/out
};
}  // namespace lmfleet
