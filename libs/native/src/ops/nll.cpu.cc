#include "ops/nll.h"

#include "core/backend_cpu.h"
#include "core/op_call.h"
#include "ops/log_softmax.h"

namespace lmfleet {

void nll_cpu(const nll_args& a, ThreadPool& pool) {
  for (int64_t r = 0; r < a.rows; r++)
    if (a.targets[r] < 0 || a.targets[r] >= a.vocab)
      fail(ErrorCode::InvalidArgument, "nll: target " + std::to_string(a.targets[r]) + " outside [0, " +
                                           std::to_string(a.vocab) + ")");
  pool.parallel_for(a.rows, [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; r++) {
      const float* x = a.logits + r * a.vocab;
      float mx;
      double lse;
      row_logsumexp(x, a.vocab, &mx, &lse);
      a.out[r] = (float)(lse - (double)(x[a.targets[r]] - mx));
    }
  });
}

// inputs: logits [rows, vocab], targets i32 [rows] -> f32 [rows]
void nll_run(Backend& be, OpCall& call) {
  call.expect_inputs(2, 2);
  auto x = call.in_f32(0, 2, "logits");
  auto t = call.in_i32(1, 1, "targets");
  int64_t rows = call.inputs[0].shape[0], vocab = call.inputs[0].shape[1];
  if ((int64_t)t.size() != rows) call.bad("targets must be [" + std::to_string(rows) + "]");
  auto& out = call.add_output(DType::F32, {rows});
  Buffer bx = stage(be, x), bo(&be, out.bytes.size());
  be.nll({bx.as<float>(), t.data(), bo.as<float>(), rows, vocab});
  fetch(be, out, bo);
}

}  // namespace lmfleet
