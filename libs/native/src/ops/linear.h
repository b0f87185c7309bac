// linear: y[m, n] = sum_k x[m, k] * W[n, k] + bias[n]  (x W^T + b, W row-major [out, in] as in HF).
// The weight is prepared once by Backend::prepare_linear (cpu: f32, packed into 16-column panels).
#pragma once
#include <cstdint>

namespace lmfleet {
class LinearWeight;
struct linear_args {
  const float* x;  // [m, k]
  const LinearWeight* w;
  float* y;  // [m, n]
  int64_t m;
};
}  // namespace lmfleet
