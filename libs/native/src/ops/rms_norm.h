// rms_norm: out[r] = x[r] / sqrt(mean(x[r]^2) + eps) * w. out may alias x.
#pragma once
#include <cstdint>

namespace lmfleet {
struct rms_norm_args {
  const float* x;
  const float* w;
  float* out;
  int64_t rows, dim;
  float eps;
};
}  // namespace lmfleet
