#include "ops/embedding.h"

#include <cstring>

#include "core/backend_cpu.h"
#include "core/op_call.h"

namespace lmfleet {

void embedding_cpu(const embedding_args& a, ThreadPool&) {
  for (int64_t t = 0; t < a.n; t++) {
    int32_t id = a.ids[t];
    if (id < 0 || id >= a.vocab)
      fail(ErrorCode::InvalidArgument,
           "token id " + std::to_string(id) + " at position " + std::to_string(t) + " is outside [0, " +
               std::to_string(a.vocab) + ")");
    std::memcpy(a.out + t * a.hidden, a.table + (int64_t)id * a.hidden, (size_t)a.hidden * 4);
    if (a.scale != 1.f)
      for (int64_t i = 0; i < a.hidden; i++) a.out[t * a.hidden + i] *= a.scale;
  }
}

// inputs: ids i32 [n], table [vocab, hidden] -> out f32 [n, hidden]; scale (default 1) multiplies the rows
void embedding_run(Backend& be, OpCall& call) {
  call.expect_inputs(2, 2);
  auto ids = call.in_i32(0, 1, "ids");
  auto table = call.in_f32(1, 2, "table");
  int64_t vocab = call.inputs[1].shape[0], hidden = call.inputs[1].shape[1];
  auto& out = call.add_output(DType::F32, {(int64_t)ids.size(), hidden});
  Buffer t = stage(be, table);
  Buffer o(&be, out.bytes.size());
  be.embedding({ids.data(), (int64_t)ids.size(), t.as<float>(), vocab, hidden, o.as<float>(), (float)call.num("scale", 1.0)});
  fetch(be, out, o);
}

}  // namespace lmfleet
