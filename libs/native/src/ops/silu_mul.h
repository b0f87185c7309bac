// silu_mul: out[r, i] = silu(gate[r, i]) * up[r, i], gate/up rows `ld` floats apart (the decoder passes one
// fused gate_up projection: gate = gu, up = gu + inter, ld = 2 * inter).
#pragma once
#include <cstdint>

namespace lmfleet {
struct silu_mul_args {
  const float* gate;
  const float* up;
  int64_t ld;
  float* out;  // [rows, n]
  int64_t rows, n;
};
}  // namespace lmfleet
