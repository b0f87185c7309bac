#include "ops/awq_fake_quant.h"

#include <cmath>
#include <string>
#include <vector>

#include "core/backend_cpu.h"
#include "core/op_call.h"

namespace lmfleet {

void awq_fake_quant_cpu(const awq_fake_quant_args& a, ThreadPool& pool) {
  const int qmax = (1 << a.bits) - 1;
  const int64_t groups = a.cols / a.group;
  pool.parallel_for(a.rows, [&](int64_t b, int64_t e) {
    std::vector<float> ws((size_t)a.group);
    for (int64_t r = b; r < e; r++) {
      for (int64_t g = 0; g < groups; g++) {
        const int64_t base = r * a.cols + g * a.group;
        const float c = a.clip ? a.clip[r * groups + g] : INFINITY;
        float mn = INFINITY, mx = -INFINITY;
        for (int k = 0; k < a.group; k++) {
          const float w = a.w[base + k];
          const float v = awq_clamp(a.scale ? w * a.scale[g * a.group + k] : w, c);
          ws[k] = v;
          if (v < mn) mn = v;
          if (v > mx) mx = v;
        }
        float s;
        int z;
        awq_group_params(mn, mx, qmax, &s, &z);
        if (a.codes) {
          a.zeros[r * groups + g] = (uint8_t)z;
          a.scales[r * groups + g] = s;
        }
        for (int k = 0; k < a.group; k++) {
          const int q = awq_code(ws[k], s, z, qmax);
          if (a.codes) a.codes[base + k] = (uint8_t)q;
          const float d = (float)(q - z) * s;
          a.out[base + k] = a.scale ? d / a.scale[g * a.group + k] : d;
        }
      }
    }
  }, 4);
}

// inputs: w [rows, cols] (f32, f16 or bf16), then optionally s [cols] (rank 1: column scale) and/or
// clip [rows, cols/group] (rank 2), in that order. params: bits (4 or 8, default 4), group (32, 64 or 128),
// codes (0/1, default 0). outputs: out f32 [rows, cols]; with codes=1 also q u8 [rows, cols], zeros u8
// [rows, groups], scales f32 [rows, groups].
void awq_fake_quant_run(Backend& be, OpCall& call) {
  call.expect_inputs(1, 3);
  auto w = call.in_f32(0, 2, "w");
  const int64_t rows = call.inputs[0].shape[0], cols = call.inputs[0].shape[1];
  const int bits = (int)call.num("bits", 4);
  if (bits != 4 && bits != 8) call.bad("bits must be 4 or 8, got " + std::to_string(bits));
  if (!call.has("group")) call.bad("param group is required");
  const int group = (int)call.num("group", 0);
  if (group != 32 && group != 64 && group != 128) call.bad("group must be 32, 64 or 128, got " + std::to_string(group));
  if (cols % group != 0)
    call.bad("w columns " + std::to_string(cols) + " are not a multiple of the group size " + std::to_string(group));
  const int64_t groups = cols / group;
  std::vector<float> s, clip;
  for (size_t i = 1; i < call.inputs.size(); i++) {
    const HostTensor& t = call.inputs[i];
    if (t.shape.size() == 1) {
      if (!s.empty() || !clip.empty()) call.bad("the scale [cols] comes before the clip and only once");
      s = call.in_f32(i, 1, "scale");
      if (t.shape[0] != cols) call.bad("scale must be [" + std::to_string(cols) + "], got " + t.shape_str());
    } else if (t.shape.size() == 2) {
      if (!clip.empty()) call.bad("clip given twice");
      clip = call.in_f32(i, 2, "clip");
      if (t.shape[0] != rows || t.shape[1] != groups)
        call.bad("clip must be [" + std::to_string(rows) + ", " + std::to_string(groups) + "], got " + t.shape_str());
    } else {
      call.bad("input " + std::to_string(i) + " must be a scale [cols] or a clip [rows, groups], got " + t.shape_str());
    }
  }
  const bool codes = call.num("codes", 0) != 0;
  auto& out = call.add_output(DType::F32, {rows, cols});
  Buffer bw = stage(be, w), bs, bc, bo(&be, out.bytes.size()), bq, bz, bsc;
  if (!s.empty()) bs = stage(be, s);
  if (!clip.empty()) bc = stage(be, clip);
  if (codes) {
    bq = Buffer(&be, (size_t)(rows * cols));
    bz = Buffer(&be, (size_t)(rows * groups));
    bsc = Buffer(&be, (size_t)(rows * groups) * 4);
  }
  be.awq_fake_quant({bw.as<float>(), s.empty() ? nullptr : bs.as<float>(), clip.empty() ? nullptr : bc.as<float>(),
                     bo.as<float>(), codes ? bq.as<uint8_t>() : nullptr, codes ? bz.as<uint8_t>() : nullptr,
                     codes ? bsc.as<float>() : nullptr, rows, cols, bits, group});
  fetch(be, out, bo);
  if (codes) {
    // add_output may reallocate `outputs`: fetch `out` before adding more
    fetch(be, call.add_output(DType::U8, {rows, cols}), bq);
    fetch(be, call.add_output(DType::U8, {rows, groups}), bz);
    fetch(be, call.add_output(DType::F32, {rows, groups}), bsc);
  }
}

}  // namespace lmfleet
