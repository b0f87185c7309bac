#include "ops/kv_store.h"

#include <cstring>

#include "core/backend_cpu.h"
#include "core/op_call.h"

namespace lmfleet {

void kv_store_cpu(const kv_store_args& a, ThreadPool&) {
  const int64_t ld = a.ld ? a.ld : a.width;
  for (int64_t t = 0; t < a.tokens; t++) {
    int32_t s = a.slots[t];
    if (s < 0) continue;
    if (s >= a.num_slots) fail(ErrorCode::InvalidArgument, "kv_store: slot " + std::to_string(s) + " out of range");
    std::memcpy(a.k_cache + (int64_t)s * a.width, a.k + t * ld, (size_t)a.width * 4);
    std::memcpy(a.v_cache + (int64_t)s * a.width, a.v + t * ld, (size_t)a.width * 4);
  }
}

// inputs: k [tokens, width], v [tokens, width], slots i32 [tokens], k_cache [num_slots, width],
//         v_cache [num_slots, width] -> k_cache', v_cache'
void kv_store_run(Backend& be, OpCall& call) {
  call.expect_inputs(5, 5);
  auto k = call.in_f32(0, 2, "k");
  auto v = call.in_f32(1, 2, "v");
  auto slots = call.in_i32(2, 1, "slots");
  auto kc = call.in_f32(3, 2, "k_cache");
  auto vc = call.in_f32(4, 2, "v_cache");
  int64_t tokens = call.inputs[0].shape[0], width = call.inputs[0].shape[1];
  if (call.inputs[1].shape != call.inputs[0].shape || (int64_t)slots.size() != tokens ||
      call.inputs[3].shape[1] != width || call.inputs[4].shape != call.inputs[3].shape)
    call.bad("shape mismatch");
  auto& ko = call.add_output(DType::F32, call.inputs[3].shape);
  auto& vo = call.add_output(DType::F32, call.inputs[4].shape);
  (void)ko; (void)vo;
  Buffer bk = stage(be, k), bv = stage(be, v), bkc = stage(be, kc), bvc = stage(be, vc);
  be.kv_store({bk.as<float>(), bv.as<float>(), slots.data(), tokens, width, bkc.as<float>(), bvc.as<float>(),
               call.inputs[3].shape[0]});
  fetch(be, call.outputs[0], bkc);
  fetch(be, call.outputs[1], bvc);
}

}  // namespace lmfleet
