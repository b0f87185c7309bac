#include "ops/add.h"

#include "core/backend_cpu.h"
#include "core/op_call.h"

namespace lmfleet {

void add_cpu(const add_args& a, ThreadPool& pool) {
  pool.parallel_for(a.n, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; i++) a.out[i] = a.a[i] + a.b[i];
  }, 1 << 15);
}

// inputs: a, b (same shape) -> out f32 (same shape)
void add_run(Backend& be, OpCall& call) {
  call.expect_inputs(2, 2);
  auto x = call.in_f32(0, -1, "a");
  auto y = call.in_f32(1, -1, "b");
  if (call.inputs[0].shape != call.inputs[1].shape)
    call.bad("a and b must have the same shape, got " + call.inputs[0].shape_str() + " and " +
             call.inputs[1].shape_str());
  auto& out = call.add_output(DType::F32, call.inputs[0].shape);
  Buffer ba = stage(be, x), bb = stage(be, y), bo(&be, out.bytes.size());
  be.add({ba.as<float>(), bb.as<float>(), bo.as<float>(), (int64_t)x.size()});
  fetch(be, out, bo);
}

}  // namespace lmfleet
