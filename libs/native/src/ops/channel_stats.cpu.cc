#include "ops/channel_stats.h"

#include <algorithm>
#include <vector>

#include "core/backend_cpu.h"
#include "core/op_call.h"

namespace lmfleet {

// Blocks of 64 columns per task, rows in order inside (each column's f64 sum adds its rows in row order,
// as the TypeScript accumulator did and the CUDA kernel does).
void channel_stats_cpu(const channel_stats_args& a, ThreadPool& pool) {
  constexpr int64_t B = 64;
  pool.parallel_for((a.cols + B - 1) / B, [&](int64_t b, int64_t e) {
    for (int64_t blk = b; blk < e; blk++) {
      const int64_t c0 = blk * B, n = std::min(B, a.cols - c0);
      float amax[B], mn[B], mx[B];
      double sum[B];
      for (int64_t j = 0; j < n; j++) {
        amax[j] = a.absmax[c0 + j];
        sum[j] = a.abssum[c0 + j];
        mn[j] = a.min[c0 + j];
        mx[j] = a.max[c0 + j];
      }
      for (int64_t r = 0; r < a.rows; r++) {
        const float* x = a.x + r * a.cols + c0;
        for (int64_t j = 0; j < n; j++) {
          const float v = x[j], av = v < 0 ? -v : v;
          if (av > amax[j]) amax[j] = av;
          sum[j] += av;
          if (v < mn[j]) mn[j] = v;
          if (v > mx[j]) mx[j] = v;
        }
      }
      for (int64_t j = 0; j < n; j++) {
        a.absmax[c0 + j] = amax[j];
        a.abssum[c0 + j] = sum[j];
        a.min[c0 + j] = mn[j];
        a.max[c0 + j] = mx[j];
      }
    }
  }, 1);
}

// inputs: x [rows, cols] (f32, f16 or bf16), absmax [cols], abssum [cols, 2] (f32 hi, lo), min [cols], max [cols]
// (all f32: the running statistics; start from 0, 0, +inf, -inf). outputs: the updated absmax, abssum, min, max.
void channel_stats_run(Backend& be, OpCall& call) {
  call.expect_inputs(5, 5);
  auto x = call.in_f32(0, 2, "x");
  const int64_t rows = call.inputs[0].shape[0], cols = call.inputs[0].shape[1];
  const char* names[] = {"", "absmax", "abssum", "min", "max"};
  for (size_t i = 1; i < 5; i++) {
    const HostTensor& t = call.in(i, i == 2 ? 2 : 1, names[i]);
    if (t.dtype != DType::F32) call.bad(std::string(names[i]) + " must be f32");
    if (t.shape[0] != cols || (i == 2 && t.shape[1] != 2))
      call.bad(std::string(names[i]) + " must be [" + std::to_string(cols) + (i == 2 ? ", 2" : "") + "], got " + t.shape_str());
  }
  auto amax = call.in_f32(1, 1, "absmax"), pair = call.in_f32(2, 2, "abssum"), mn = call.in_f32(3, 1, "min"),
       mx = call.in_f32(4, 1, "max");
  std::vector<double> sum((size_t)cols);
  for (int64_t c = 0; c < cols; c++) sum[c] = (double)pair[2 * c] + (double)pair[2 * c + 1];
  Buffer bx = stage(be, x), ba = stage(be, amax), bs = stage(be, sum), bn = stage(be, mn), bm = stage(be, mx);
  be.channel_stats({bx.as<float>(), rows, cols, ba.as<float>(), bs.as<double>(), bn.as<float>(), bm.as<float>()});
  be.download(amax.data(), ba.get(), amax.size() * 4);
  be.download(sum.data(), bs.get(), sum.size() * 8);
  be.download(mn.data(), bn.get(), mn.size() * 4);
  be.download(mx.data(), bm.get(), mx.size() * 4);
  for (int64_t c = 0; c < cols; c++) {
    const float hi = (float)sum[c];
    pair[2 * c] = hi;
    pair[2 * c + 1] = (float)(sum[c] - (double)hi);
  }
  auto put = [&](const std::vector<float>& v, std::vector<int64_t> shape) {
    HostTensor& t = call.add_output(DType::F32, std::move(shape));
    std::memcpy(t.bytes.data(), v.data(), t.bytes.size());
  };
  put(amax, {cols});
  put(pair, {cols, 2});
  put(mn, {cols});
  put(mx, {cols});
}

}  // namespace lmfleet
