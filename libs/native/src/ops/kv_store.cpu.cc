#include "ops/kv_store.h"

#include <cstring>

#include "core/backend_cpu.h"
#include "core/op_call.h"
#include "ops/kv_quant.h"

namespace lmfleet {

namespace {
// One row of head_dim values -> quantized bytes + (scale, zero).
void quantize_row(const float* x, int64_t n, int policy, const float* fixed, uint8_t* dst, float* param) {
  float scale, zero;
  if (fixed) {
    scale = fixed[0];
    zero = fixed[1];
  } else {
    float mn = x[0], mx = x[0];
    for (int64_t i = 1; i < n; i++) {
      mn = x[i] < mn ? x[i] : mn;
      mx = x[i] > mx ? x[i] : mx;
    }
    kv_quant_params(mn, mx, policy, &scale, &zero);
  }
  const float inv = kv_quant_inv_scale(scale);
  const int qmax = kv_quant_qmax(policy);
  if (policy == 8) {
    for (int64_t i = 0; i < n; i++) dst[i] = (uint8_t)kv_quant_one(x[i], inv, zero, qmax);
  } else {
    for (int64_t i = 0; i < n; i += 2)
      dst[i / 2] = (uint8_t)(kv_quant_one(x[i], inv, zero, qmax) | (kv_quant_one(x[i + 1], inv, zero, qmax) << 4));
  }
  param[0] = scale;
  param[1] = zero;
}
}  // namespace

void kv_store_cpu(const kv_store_args& a, ThreadPool&) {
  const int64_t ld = a.ld ? a.ld : a.width;
  if (!kv_quant_policy_valid(a.quant_policy))
    fail(ErrorCode::InvalidArgument, "kv_store: quant_policy must be 0, 4 or 8, got " + std::to_string(a.quant_policy));
  const int p = a.quant_policy;
  int64_t heads = 0, rb = 0;
  if (p) {
    if (a.head_dim <= 0 || a.width % a.head_dim || a.head_dim % 2 || !a.k_param || !a.v_param)
      fail(ErrorCode::InvalidArgument, "kv_store: a quantized cache needs an even head_dim dividing width and param buffers");
    heads = a.width / a.head_dim;
    rb = kv_quant_row_bytes(p, a.head_dim);
  }
  for (int64_t t = 0; t < a.tokens; t++) {
    int32_t s = a.slots[t];
    if (s < 0) continue;
    if (s >= a.num_slots) fail(ErrorCode::InvalidArgument, "kv_store: slot " + std::to_string(s) + " out of range");
    if (!p) {
      std::memcpy(a.k_cache + (int64_t)s * a.width, a.k + t * ld, (size_t)a.width * 4);
      std::memcpy(a.v_cache + (int64_t)s * a.width, a.v + t * ld, (size_t)a.width * 4);
      continue;
    }
    uint8_t* kc = reinterpret_cast<uint8_t*>(a.k_cache);
    uint8_t* vc = reinterpret_cast<uint8_t*>(a.v_cache);
    for (int64_t h = 0; h < heads; h++) {
      const int64_t row = (int64_t)s * heads + h;
      quantize_row(a.k + t * ld + h * a.head_dim, a.head_dim, p, a.k_static ? a.k_static + 2 * h : nullptr,
                   kc + row * rb, a.k_param + 2 * row);
      quantize_row(a.v + t * ld + h * a.head_dim, a.head_dim, p, a.v_static ? a.v_static + 2 * h : nullptr,
                   vc + row * rb, a.v_param + 2 * row);
    }
  }
}

// inputs: k [tokens, width], v [tokens, width], slots i32 [tokens], k_cache [num_slots, width],
//         v_cache [num_slots, width] -> k_cache', v_cache'
// quantized (params quant_policy 8|4, head_dim): k_cache/v_cache u8 [num_slots, width * bits / 8], then
//   k_param, v_param f32 [num_slots, kv_heads, 2], optionally k_static, v_static f32 [kv_heads, 2] (calibrated)
//   -> k_cache', v_cache', k_param', v_param'
void kv_store_run(Backend& be, OpCall& call) {
  const int p = (int)call.num("quant_policy", 0);
  if (!kv_quant_policy_valid(p)) call.bad("quant_policy must be 0, 4 or 8");
  if (p) {
    call.expect_inputs(7, 9);
    auto k = call.in_f32(0, 2, "k");
    auto v = call.in_f32(1, 2, "v");
    auto slots = call.in_i32(2, 1, "slots");
    const int64_t tokens = call.inputs[0].shape[0], width = call.inputs[0].shape[1];
    const int64_t hd = (int64_t)call.num("head_dim", 0);
    if (hd <= 0 || width % hd || hd % 2) call.bad("head_dim must be even and divide the row width");
    const int64_t heads = width / hd, rb = heads * kv_quant_row_bytes(p, hd);
    const HostTensor &kc = call.in(3, 2, "k_cache"), &vc = call.in(4, 2, "v_cache");
    if (kc.dtype != DType::U8 || vc.dtype != DType::U8) call.bad("a quantized cache must be u8");
    const int64_t ns = kc.shape[0];
    if (call.inputs[1].shape != call.inputs[0].shape || (int64_t)slots.size() != tokens || kc.shape[1] != rb ||
        vc.shape != kc.shape)
      call.bad("shape mismatch (cache rows must be " + std::to_string(rb) + " bytes)");
    auto kp = call.in_f32(5, 3, "k_param");
    auto vp = call.in_f32(6, 3, "v_param");
    if ((int64_t)kp.size() != ns * heads * 2 || vp.size() != kp.size()) call.bad("k_param/v_param must be [num_slots, kv_heads, 2]");
    std::vector<float> ks, vs;
    if (call.inputs.size() > 7) {
      if (call.inputs.size() != 9) call.bad("pass both k_static and v_static");
      ks = call.in_f32(7, 2, "k_static");
      vs = call.in_f32(8, 2, "v_static");
      if ((int64_t)ks.size() != heads * 2 || vs.size() != ks.size()) call.bad("k_static/v_static must be [kv_heads, 2]");
    }
    call.add_output(DType::U8, kc.shape);
    call.add_output(DType::U8, vc.shape);
    call.add_output(DType::F32, call.inputs[5].shape);
    call.add_output(DType::F32, call.inputs[6].shape);
    Buffer bk = stage(be, k), bv = stage(be, v), bkc = stage(be, kc.bytes), bvc = stage(be, vc.bytes);
    Buffer bkp = stage(be, kp), bvp = stage(be, vp), bks, bvs;
    if (!ks.empty()) { bks = stage(be, ks); bvs = stage(be, vs); }
    kv_store_args a{bk.as<float>(), bv.as<float>(), slots.data(), tokens, width, bkc.as<float>(), bvc.as<float>(), ns};
    a.quant_policy = p;
    a.head_dim = hd;
    a.k_param = bkp.as<float>();
    a.v_param = bvp.as<float>();
    a.k_static = ks.empty() ? nullptr : bks.as<float>();
    a.v_static = vs.empty() ? nullptr : bvs.as<float>();
    be.kv_store(a);
    fetch(be, call.outputs[0], bkc);
    fetch(be, call.outputs[1], bvc);
    fetch(be, call.outputs[2], bkp);
    fetch(be, call.outputs[3], bvp);
    return;
  }
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
