// silu_mul: out[r, i] = silu(gate[r, i]) * up[r, i], gate/up rows `ld` floats apart (the decoder passes one
// fused gate_up projection: gate = gu, up = gu + inter, ld = 2 * inter). GeGLU (Gemma) instead: gelu(gate) * up, with
// the tanh approximation 0.5 g (1 + tanh(sqrt(2 / pi) (g + 0.044715 g^3))) (PyTorch's gelu 'tanh': GeluTanh) or exact,
// 0.5 g (1 + erf(g / sqrt 2)) (Gelu: transformers' "gelu", which Gemma 1 configs name).
#pragma once
#include <cmath>
#include <cstdint>

namespace lmfleet {
enum class Activation : int { Silu = 0, GeluTanh = 1, Gelu = 2 };  // the MLP's gate activation (ModelConfig::act)
struct silu_mul_args {
  const float* gate;
  const float* up;
  int64_t ld;
  float* out;  // [rows, n]
  int64_t rows, n;
  Activation act = Activation::Silu;
};
inline float gelu_ref(float g, Activation a) {
  return a == Activation::Gelu ? 0.5f * g * (1.f + std::erf(g * 0.7071067811865476f))
                               : 0.5f * g * (1.f + std::tanh(0.7978845608028654f * (g + 0.044715f * g * g * g)));
}
}  // namespace lmfleet
