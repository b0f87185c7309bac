#include "ops/rms_norm.h"

#include <cmath>

#include "core/backend_cpu.h"
#include "core/op_call.h"
#include "core/simd.h"

namespace lmfleet {

void rms_norm_cpu(const rms_norm_args& a, ThreadPool& pool) {
  pool.parallel_for(a.rows, [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; r++) {
      const float* x = a.x + r * a.dim;
      float* y = a.out + r * a.dim;
      float ss = dot_f32(x, x, a.dim);
      float inv = 1.0f / std::sqrt(ss / (float)a.dim + a.eps);
      for (int64_t i = 0; i < a.dim; i++) y[i] = (x[i] * inv) * a.w[i];
    }
  }, 16);
}

// inputs: x [rows, dim], w [dim]; params: eps (default 1e-6) -> out f32 [rows, dim]
void rms_norm_run(Backend& be, OpCall& call) {
  call.expect_inputs(2, 2);
  auto x = call.in_f32(0, 2, "x");
  auto w = call.in_f32(1, 1, "w");
  int64_t rows = call.inputs[0].shape[0], dim = call.inputs[0].shape[1];
  if (call.inputs[1].shape[0] != dim) call.bad("w must be [" + std::to_string(dim) + "]");
  auto& out = call.add_output(DType::F32, {rows, dim});
  Buffer bx = stage(be, x), bw = stage(be, w), bo(&be, out.bytes.size());
  be.rms_norm({bx.as<float>(), bw.as<float>(), bo.as<float>(), rows, dim, (float)call.num("eps", 1e-6)});
  fetch(be, out, bo);
}

}  // namespace lmfleet
