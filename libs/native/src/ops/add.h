// add: out = a + b (elementwise; out may alias a). The residual add.
#pragma once
#include <cstdint>

namespace lmfleet {
struct add_args {
  const float* a;
  const float* b;
  float* out;
  int64_t n;
};
}  // namespace lmfleet
