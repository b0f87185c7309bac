#include "ops/argmax.h"

#include "core/backend_cpu.h"
#include "core/op_call.h"

namespace lmfleet {

void argmax_cpu(const argmax_args& a, ThreadPool&) {
  for (int64_t r = 0; r < a.rows; r++) a.out[r] = argmax_row(a.logits + r * a.vocab, a.vocab);
}

// inputs: logits [rows, vocab] -> i32 [rows]
void argmax_run(Backend& be, OpCall& call) {
  call.expect_inputs(1, 1);
  auto x = call.in_f32(0, 2, "logits");
  int64_t rows = call.inputs[0].shape[0], vocab = call.inputs[0].shape[1];
  if (vocab <= 0) call.bad("vocab must be > 0");
  auto& out = call.add_output(DType::I32, {rows});
  Buffer bx = stage(be, x), bo(&be, out.bytes.size());
  be.argmax({bx.as<float>(), rows, vocab, bo.as<int32_t>()});
  fetch(be, out, bo);
}

}  // namespace lmfleet
