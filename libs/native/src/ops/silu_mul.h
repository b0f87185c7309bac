// silu_mul: out[r, i] = silu(gate[r, i]) * up[r, i], gate/up rows `ld` floats apart (the decoder passes one
// fused gate_up projection: gate = gu, up = gu + inter, ld = 2 * inter). With `gelu` (GeGLU, Gemma): gelu(gate) * up
// with the tanh approximation, 0.5 g (1 + tanh(sqrt(2 / pi) (g + 0.044715 g^3))) (PyTorch's gelu 'tanh').
#pragma once
#include <cmath>
#include <cstdint>

namespace lmfleet {
struct silu_mul_args {
  const float* gate;
  const float* up;
  int64_t ld;
  float* out;  // [rows, n]
  int64_t rows, n;
  bool gelu = false;
};
inline float gelu_tanh_ref(float g) { return 0.5f * g * (1.f + std::tanh(0.7978845608028654f * (g + 0.044715f * g * g * g))); }
}  // namespace lmfleet
