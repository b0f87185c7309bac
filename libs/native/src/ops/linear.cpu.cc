// Blocked GEMM for y = x W^T + b on the CPU.
// W is packed once into panels of NR output columns (2 vectors: 16 or 32): panel p holds W[p*NR + j, k] at
// [k][j], so the micro-kernel streams a panel row (two vectors) per k and broadcasts one x value per row: an
// outer-product update with MR x 16 accumulators in registers, no horizontal reductions, vectorized by
// g++ through vector extensions without -ffast-math. K is split in KC blocks (panel slice stays in L1,
// the x block in L2); threads split the (row block, column block) grid. Each output element is summed in
// the same order whatever M, the tiling of rows or the thread count, so a row's result does not depend
// on the batch it is in (batch-invariant decode).
#include "ops/linear.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "core/backend_cpu.h"
#include "core/op_call.h"
#include "core/simd.h"

namespace lmfleet {

namespace {

// Vector width: 16 floats (one zmm) when built for AVX-512, else 8 (one ymm; plain SSE splits it in two).
#if defined(__AVX512F__)
constexpr int64_t VW = 16;
#else
constexpr int64_t VW = 8;
#endif
typedef float vf __attribute__((vector_size(VW * 4)));
inline vf vf_load(const float* p) {
  vf v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline void vf_store(float* p, vf v) { std::memcpy(p, &v, sizeof v); }
inline vf vf_splat(float x) { return vf{} + x; }

constexpr int64_t NR = 2 * VW;  // panel width: two vectors
constexpr int64_t KC = 256;
constexpr int64_t MC = 48;        // rows per task (multiple of MR)
constexpr int64_t NC_PANELS = 128 / NR;  // panels per task (128 columns)
constexpr int MR = 6;

class PackedLinearCpu final : public LinearWeight {
 public:
  float* panels = nullptr;  // [n_panels][k][NR]
  std::vector<float> bias;
  int64_t n_panels = 0;
  ~PackedLinearCpu() override { std::free(panels); }
  size_t bytes() const override { return (size_t)n_panels * k * NR * 4 + bias.size() * 4; }
};

template <int R>
inline void micro_kernel(const float* a, int64_t lda, const float* bp, int64_t kc, float* c, int64_t ldc, int64_t ncols,
                         bool first, const float* bias) {
  vf acc0[R], acc1[R];
#pragma GCC unroll 8
  for (int r = 0; r < R; r++) {
    acc0[r] = vf_splat(0.f);
    acc1[r] = vf_splat(0.f);
  }
  for (int64_t k = 0; k < kc; k++) {
    vf b0 = vf_load(bp + k * NR), b1 = vf_load(bp + k * NR + VW);
#pragma GCC unroll 8
    for (int r = 0; r < R; r++) {
      vf av = vf_splat(a[r * lda + k]);
      acc0[r] += av * b0;
      acc1[r] += av * b1;
    }
  }
  for (int r = 0; r < R; r++) {
    float* crow = c + r * ldc;
    alignas(64) float tmp[NR];
    vf_store(tmp, acc0[r]);
    vf_store(tmp + VW, acc1[r]);
    if (first) {
      if (bias) {
        for (int64_t j = 0; j < ncols; j++) crow[j] = bias[j] + tmp[j];
      } else {
        for (int64_t j = 0; j < ncols; j++) crow[j] = tmp[j];
      }
    } else {
      for (int64_t j = 0; j < ncols; j++) crow[j] += tmp[j];
    }
  }
}

inline void run_rows(int rows, const float* a, int64_t lda, const float* bp, int64_t kc, float* c, int64_t ldc,
                     int64_t ncols, bool first, const float* bias) {
  switch (rows) {
    case 6: micro_kernel<6>(a, lda, bp, kc, c, ldc, ncols, first, bias); break;
    case 5: micro_kernel<5>(a, lda, bp, kc, c, ldc, ncols, first, bias); break;
    case 4: micro_kernel<4>(a, lda, bp, kc, c, ldc, ncols, first, bias); break;
    case 3: micro_kernel<3>(a, lda, bp, kc, c, ldc, ncols, first, bias); break;
    case 2: micro_kernel<2>(a, lda, bp, kc, c, ldc, ncols, first, bias); break;
    default: micro_kernel<1>(a, lda, bp, kc, c, ldc, ncols, first, bias); break;
  }
}

}  // namespace

std::unique_ptr<LinearWeight> prepare_linear_cpu(const void* w, DType dtype, const void* bias, DType bias_dtype,
                                                 int64_t n, int64_t k, ThreadPool& pool) {
  if (n <= 0 || k <= 0) fail(ErrorCode::InvalidArgument, "linear weight must have positive shape");
  auto p = std::make_unique<PackedLinearCpu>();
  p->n = n;
  p->k = k;
  p->n_panels = (n + NR - 1) / NR;
  size_t bytes = (size_t)p->n_panels * k * NR * 4;
  p->panels = static_cast<float*>(std::aligned_alloc(64, (bytes + 63) / 64 * 64));
  if (!p->panels) fail(ErrorCode::Internal, "out of host memory packing a linear weight");
  const size_t es = dtype_size(dtype);
  pool.parallel_for(p->n_panels, [&](int64_t pb, int64_t pe) {
    std::vector<float> row((size_t)k);
    for (int64_t pi = pb; pi < pe; pi++) {
      float* dst = p->panels + pi * k * NR;
      for (int64_t j = 0; j < NR; j++) {
        int64_t nn = pi * NR + j;
        if (nn < n) {
          convert_to_f32(static_cast<const uint8_t*>(w) + (size_t)nn * k * es, dtype, k, row.data());
          for (int64_t kk = 0; kk < k; kk++) dst[kk * NR + j] = row[kk];
        } else {
          for (int64_t kk = 0; kk < k; kk++) dst[kk * NR + j] = 0.f;
        }
      }
    }
  });
  if (bias) {
    p->has_bias = true;
    p->bias.resize((size_t)n);
    convert_to_f32(bias, bias_dtype, n, p->bias.data());
  }
  return p;
}

void linear_cpu(const linear_args& a, ThreadPool& pool) {
  const auto* w = dynamic_cast<const PackedLinearCpu*>(a.w);
  if (!w) fail(ErrorCode::Internal, "linear: weight was not prepared by the cpu backend");
  const int64_t M = a.m, N = w->n, K = w->k;
  if (M <= 0) return;
  const int64_t mblocks = (M + MC - 1) / MC;
  const int64_t nblocks = (w->n_panels + NC_PANELS - 1) / NC_PANELS;
  const float* bias = w->has_bias ? w->bias.data() : nullptr;
  pool.run(mblocks * nblocks, [&](int64_t task) {
    int64_t mb = task / nblocks, nb = task % nblocks;
    int64_t m0 = mb * MC, m1 = std::min(M, m0 + MC);
    int64_t p0 = nb * NC_PANELS, p1 = std::min(w->n_panels, p0 + NC_PANELS);
    for (int64_t k0 = 0; k0 < K; k0 += KC) {
      int64_t kc = std::min(KC, K - k0);
      for (int64_t p = p0; p < p1; p++) {
        const float* bp = w->panels + p * K * NR + k0 * NR;
        int64_t n0 = p * NR, ncols = std::min(NR, N - n0);
        for (int64_t m = m0; m < m1; m += MR) {
          int rows = (int)std::min<int64_t>(MR, m1 - m);
          run_rows(rows, a.x + m * K + k0, K, bp, kc, a.y + m * N + n0, N, ncols, k0 == 0, bias ? bias + n0 : nullptr);
        }
      }
    }
  });
}

// inputs: x [m, k] (f32/f16/bf16), w [n, k] (f32/f16/bf16), optional bias [n] -> y f32 [m, n]
void linear_run(Backend& be, OpCall& call) {
  call.expect_inputs(2, 3);
  auto x = call.in_f32(0, 2, "x");
  const HostTensor& wt = call.in(1, 2, "w");
  if (wt.dtype != DType::F32 && wt.dtype != DType::F16 && wt.dtype != DType::BF16)
    call.bad(std::string("w must be f32, f16 or bf16, got ") + dtype_name(wt.dtype));
  int64_t m = call.inputs[0].shape[0], k = call.inputs[0].shape[1], n = wt.shape[0];
  if (wt.shape[1] != k) call.bad("w must be [n, " + std::to_string(k) + "], got " + wt.shape_str());
  const void* bias = nullptr;
  DType bias_dtype = DType::F32;
  if (call.inputs.size() == 3) {
    const HostTensor& b = call.in(2, 1, "bias");
    if (b.shape[0] != n) call.bad("bias must be [" + std::to_string(n) + "], got " + b.shape_str());
    if (b.dtype != DType::F32 && b.dtype != DType::F16 && b.dtype != DType::BF16) call.bad("bias must be float");
    bias = b.bytes.data();
    bias_dtype = b.dtype;
  }
  auto pw = be.prepare_linear(wt.bytes.data(), wt.dtype, bias, bias_dtype, n, k);
  auto& out = call.add_output(DType::F32, {m, n});
  Buffer bx = stage(be, x), by(&be, out.bytes.size());
  be.linear({bx.as<float>(), pw.get(), by.as<float>(), m});
  fetch(be, out, by);
}

}  // namespace lmfleet
