#include "ops/log_softmax.h"

#include <cmath>

#include "core/backend_cpu.h"
#include "core/op_call.h"
#include "core/vexp.h"
#include <algorithm>

namespace lmfleet {

void row_logsumexp(const float* x, int64_t n, float* max_out, double* lse_out) {
  float mx = x[0];
  for (int64_t i = 1; i < n; i++) mx = x[i] > mx ? x[i] : mx;
  // exp through the vector exp (f32, ~2 ulp), summed in double in index order.
  double s = 0;
  float buf[256];
  for (int64_t i0 = 0; i0 < n; i0 += 256) {
    const int64_t m = std::min<int64_t>(256, n - i0);
    exp_sub_array(x + i0, mx, buf, m);
    for (int64_t i = 0; i < m; i++) s += buf[i];
  }
  *max_out = mx;
  *lse_out = std::log(s);
}

void log_softmax_cpu(const log_softmax_args& a, ThreadPool& pool) {
  pool.parallel_for(a.rows, [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; r++) {
      float mx;
      double lse;
      row_logsumexp(a.x + r * a.vocab, a.vocab, &mx, &lse);
      for (int64_t i = 0; i < a.vocab; i++) a.out[r * a.vocab + i] = (float)((double)(a.x[r * a.vocab + i] - mx) - lse);
    }
  });
}

// inputs: x [rows, vocab] -> f32 [rows, vocab]
void log_softmax_run(Backend& be, OpCall& call) {
  call.expect_inputs(1, 1);
  auto x = call.in_f32(0, 2, "x");
  int64_t rows = call.inputs[0].shape[0], vocab = call.inputs[0].shape[1];
  if (vocab <= 0) call.bad("vocab must be > 0");
  auto& out = call.add_output(DType::F32, {rows, vocab});
  Buffer bx = stage(be, x), bo(&be, out.bytes.size());
  be.log_softmax({bx.as<float>(), bo.as<float>(), rows, vocab});
  fetch(be, out, bo);
}

}  // namespace lmfleet
