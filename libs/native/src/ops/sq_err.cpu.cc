#include "ops/sq_err.h"

#include <algorithm>
#include <vector>

#include "core/backend_cpu.h"
#include "core/op_call.h"

namespace lmfleet {

// Blocks of 64 columns per task, rows in order inside; each difference and its square in f64.
void sq_err_cpu(const sq_err_args& a, ThreadPool& pool) {
  constexpr int64_t B = 64;
  pool.parallel_for((a.cols + B - 1) / B, [&](int64_t b, int64_t e) {
    for (int64_t blk = b; blk < e; blk++) {
      const int64_t c0 = blk * B, n = std::min(B, a.cols - c0);
      double s[B];
      for (int64_t j = 0; j < n; j++) s[j] = a.out[c0 + j];
      for (int64_t r = 0; r < a.rows; r++) {
        const float* x = a.a + r * a.cols + c0;
        const float* y = a.b + r * a.cols + c0;
        for (int64_t j = 0; j < n; j++) {
          const double d = (double)x[j] - (double)y[j];
          s[j] += d * d;
        }
      }
      for (int64_t j = 0; j < n; j++) a.out[c0 + j] = s[j];
    }
  }, 1);
}

// inputs: a, b [rows, cols] (f32, f16 or bf16). output: f32 [cols, 2], the f64 sums per column as (hi, lo) pairs
// (runOp has no f64 dtype).
void sq_err_run(Backend& be, OpCall& call) {
  call.expect_inputs(2, 2);
  auto a = call.in_f32(0, 2, "a");
  auto b = call.in_f32(1, 2, "b");
  if (call.inputs[0].shape != call.inputs[1].shape)
    call.bad("a and b must have the same shape, got " + call.inputs[0].shape_str() + " and " + call.inputs[1].shape_str());
  const int64_t rows = call.inputs[0].shape[0], cols = call.inputs[0].shape[1];
  std::vector<double> sum((size_t)cols, 0.0);
  Buffer ba = stage(be, a), bb = stage(be, b), bs = stage(be, sum);
  be.sq_err({ba.as<float>(), bb.as<float>(), rows, cols, bs.as<double>()});
  be.download(sum.data(), bs.get(), sum.size() * 8);
  HostTensor& t = call.add_output(DType::F32, {cols, 2});
  float* p = reinterpret_cast<float*>(t.bytes.data());
  for (int64_t c = 0; c < cols; c++) {
    p[2 * c] = (float)sum[c];
    p[2 * c + 1] = (float)(sum[c] - (double)p[2 * c]);
  }
}

}  // namespace lmfleet
