#include "ops/silu_mul.h"

#include <cmath>

#include "core/backend_cpu.h"
#include "core/op_call.h"
#include "core/vexp.h"

namespace lmfleet {

void silu_mul_cpu(const silu_mul_args& a, ThreadPool& pool) {
  pool.parallel_for(a.rows, [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; r++) {
      const float* g = a.gate + r * a.ld;
      const float* u = a.up + r * a.ld;
      float* o = a.out + r * a.n;
      if (a.act != Activation::Silu) {
        for (int64_t i = 0; i < a.n; i++) o[i] = gelu_ref(g[i], a.act) * u[i];
        continue;
      }
      // o = g * sigmoid(g) * u, exp through the vector exp (o holds -g, then exp(-g)).
      for (int64_t i = 0; i < a.n; i++) o[i] = -g[i];
      exp_sub_array(o, 0.f, o, a.n);
      for (int64_t i = 0; i < a.n; i++) o[i] = g[i] / (1.0f + o[i]) * u[i];
    }
  }, 8);
}

// inputs: gate [rows, n], up [rows, n] -> out f32 [rows, n]; act "silu" (default), "gelu_tanh" or "gelu"
void silu_mul_run(Backend& be, OpCall& call) {
  call.expect_inputs(2, 2);
  auto g = call.in_f32(0, 2, "gate");
  auto u = call.in_f32(1, 2, "up");
  if (call.inputs[0].shape != call.inputs[1].shape) call.bad("gate and up must have the same shape");
  int64_t rows = call.inputs[0].shape[0], n = call.inputs[0].shape[1];
  auto& out = call.add_output(DType::F32, {rows, n});
  Buffer bg = stage(be, g), bu = stage(be, u), bo(&be, out.bytes.size());
  const std::string act = call.str("act", "silu");
  if (act != "silu" && act != "gelu_tanh" && act != "gelu") call.bad("act must be 'silu', 'gelu_tanh' or 'gelu', got '" + act + "'");
  be.silu_mul({bg.as<float>(), bu.as<float>(), n, bo.as<float>(), rows, n,
               act == "gelu" ? Activation::Gelu : act == "gelu_tanh" ? Activation::GeluTanh : Activation::Silu});
  fetch(be, out, bo);
}

}  // namespace lmfleet
