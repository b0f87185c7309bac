// W4A16 on the CPU: the layout helpers (pack from codes or from AutoAWQ, concat, dequantize) and the reference
// GEMM. The reference dequantizes 8 rows at a time to f32 (exactly the f16-rounded (q - z) * s the CUDA kernels
// compute) and takes dot products in a fixed order, so a row's result does not depend on the batch around it.
#include "ops/w4a16_gemm.h"

#include <algorithm>
#include <cstring>
#include <string>

#include "core/backend_cpu.h"
#include "core/dtype.h"
#include "core/error.h"
#include "core/op_call.h"

namespace lmfleet {

namespace {
constexpr int kOff[8] = {0, 8, 16, 24, 1, 9, 17, 25};  // k offset (plus 2t) of nibble p
constexpr int kAwqOrder[8] = {0, 2, 4, 6, 1, 3, 5, 7};  // AutoAWQ: nibble j holds column 8c + kAwqOrder[j]

inline float dq(int q, int z, uint16_t s) {
  // (q - z) * s rounded to f16, as fp16 torch and the kernels' __hsub2/__hmul2 compute it
  return f16_to_f32(f32_to_f16((float)(q - z) * f16_to_f32(s)));
}

W4A16Host empty_host(int64_t n, int64_t k, int64_t group) {
  W4A16Host w;
  w.n = n;
  w.k = k;
  w.kp = w4a16_padded_k(k);
  w.group = group;
  w.qweight.assign((size_t)(n / 8) * (w.kp / 128) * 128, 0u);
  w.scales_zeros.assign((size_t)(w.kp / group) * n * 2, 0);
  return w;
}

inline void put_code(W4A16Host& w, int64_t r, int64_t c, uint32_t q) {
  int64_t word;
  int nib;
  w4a16_locate(r, c, w.kp, &word, &nib);
  w.qweight[word] |= (q & 0xFu) << (4 * nib);
}

inline int get_code(const W4A16Host& w, int64_t r, int64_t c) {
  int64_t word;
  int nib;
  w4a16_locate(r, c, w.kp, &word, &nib);
  return (int)((w.qweight[word] >> (4 * nib)) & 0xFu);
}
}  // namespace

void w4a16_check_shape(int64_t n, int64_t k, int64_t group, const char* what) {
  if (group != 32 && group != 64 && group != 128)
    fail(ErrorCode::InvalidArgument, std::string(what) + ": W4A16 group size must be 32, 64 or 128, got " + std::to_string(group));
  if (n <= 0 || k <= 0 || n % 8)
    fail(ErrorCode::InvalidArgument, std::string(what) + ": W4A16 needs out features > 0 and a multiple of 8, got " + std::to_string(n));
  if (k % group)
    fail(ErrorCode::InvalidArgument, std::string(what) + ": in features " + std::to_string(k) + " is not a multiple of the group size " +
                                         std::to_string(group));
}

void w4a16_locate(int64_t r, int64_t c, int64_t kp, int64_t* word, int* nibble) {
  const int64_t tile = r / 8, g = r % 8, kb = c / 128, kk = c % 128, j = kk / 32, o = kk % 32;
  const int64_t step = o / 16, within = o % 16, hi8 = within / 8, c8 = within % 8, t = c8 / 2, e = c8 % 2;
  const int64_t pair = step * 2 + hi8;
  *nibble = (int)(pair + 4 * e);
  *word = ((tile * (kp / 128) + kb) * 32 + (g * 4 + t)) * 4 + j;
}

W4A16Host w4a16_slice(const W4A16Host& w, int64_t r0, int64_t nr, int64_t c0, int64_t kc) {
  const int64_t g = w.group;
  if (r0 < 0 || nr <= 0 || r0 + nr > w.n || r0 % 8 || nr % 8)
    fail(ErrorCode::InvalidArgument, "w4a16_slice: rows [" + std::to_string(r0) + ", +" + std::to_string(nr) + ") of " + std::to_string(w.n) +
                                         " must be whole 8-row tiles");
  if (c0 < 0 || kc <= 0 || c0 + kc > w.k || c0 % g || kc % g)
    fail(ErrorCode::InvalidArgument, "w4a16_slice: columns [" + std::to_string(c0) + ", +" + std::to_string(kc) + ") of " + std::to_string(w.k) +
                                         " must be whole groups of " + std::to_string(g));
  W4A16Host o = empty_host(nr, kc, g);
  for (int64_t r = 0; r < nr; r++)
    for (int64_t c = 0; c < kc; c++) put_code(o, r, c, (uint8_t)get_code(w, r0 + r, c0 + c));
  for (int64_t gi = 0; gi < kc / g; gi++)
    for (int64_t r = 0; r < nr; r++) {
      o.scales_zeros[(gi * nr + r) * 2] = w.scales_zeros[((c0 / g + gi) * w.n + r0 + r) * 2];
      o.scales_zeros[(gi * nr + r) * 2 + 1] = w.scales_zeros[((c0 / g + gi) * w.n + r0 + r) * 2 + 1];
    }
  return o;
}

W4A16Host w4a16_pack(const uint8_t* q, const uint8_t* z, const uint16_t* s, int64_t n, int64_t k, int64_t group) {
  w4a16_check_shape(n, k, group, "w4a16_pack");
  W4A16Host w = empty_host(n, k, group);
  const int64_t G = k / group;
  for (int64_t r = 0; r < n; r++)
    for (int64_t c = 0; c < k; c++) put_code(w, r, c, q[r * k + c]);
  for (int64_t gi = 0; gi < G; gi++)
    for (int64_t r = 0; r < n; r++) {
      w.scales_zeros[(gi * n + r) * 2] = s[r * G + gi];
      w.scales_zeros[(gi * n + r) * 2 + 1] = f32_to_f16((float)z[r * G + gi]);
    }
  return w;
}

W4A16Host w4a16_pack_awq(const int32_t* qweight, const int32_t* qzeros, const uint16_t* scales, int64_t n, int64_t k,
                         int64_t group, ThreadPool* pool) {
  w4a16_check_shape(n, k, group, "w4a16_pack_awq");
  W4A16Host w = empty_host(n, k, group);
  const int64_t nw = n / 8, G = k / group, tiles = n / 8, KB = w.kp / 128;
  // One task per (tile, k128 block): it owns 128 words of the output, so tasks never share a word.
  auto work = [&](int64_t b, int64_t e) {
    for (int64_t task = b; task < e; task++) {
      const int64_t tile = task / KB, kb = task % KB;
      for (int64_t c = kb * 128; c < std::min(k, kb * 128 + 128); c++) {
        const uint32_t word = (uint32_t)qweight[c * nw + tile];
        for (int j = 0; j < 8; j++) put_code(w, tile * 8 + kAwqOrder[j], c, (word >> (4 * j)) & 0xFu);
      }
    }
  };
  if (pool) pool->parallel_for(tiles * KB, work, 16);
  else work(0, tiles * KB);
  for (int64_t gi = 0; gi < G; gi++)
    for (int64_t c8 = 0; c8 < nw; c8++) {
      const uint32_t zw = (uint32_t)qzeros[gi * nw + c8];
      for (int j = 0; j < 8; j++) {
        const int64_t r = c8 * 8 + kAwqOrder[j];
        w.scales_zeros[(gi * n + r) * 2] = scales[gi * n + r];
        w.scales_zeros[(gi * n + r) * 2 + 1] = f32_to_f16((float)((zw >> (4 * j)) & 0xFu));
      }
    }
  return w;
}

W4A16Host w4a16_concat_rows(const std::vector<const W4A16Host*>& parts) {
  if (parts.empty()) fail(ErrorCode::Internal, "w4a16_concat_rows: no parts");
  const int64_t k = parts[0]->k, group = parts[0]->group;
  int64_t n = 0;
  for (auto* p : parts) {
    if (p->k != k || p->group != group) fail(ErrorCode::ModelFormat, "W4A16 weights fused into one linear must share in features and group size");
    n += p->n;
  }
  W4A16Host w = empty_host(n, k, group);
  size_t wo = 0;
  int64_t r0 = 0;
  for (auto* p : parts) {
    std::memcpy(w.qweight.data() + wo, p->qweight.data(), p->qweight.size() * 4);
    wo += p->qweight.size();
    for (int64_t gi = 0; gi < w.kp / group; gi++)
      std::memcpy(&w.scales_zeros[(gi * n + r0) * 2], &p->scales_zeros[(size_t)gi * p->n * 2], (size_t)p->n * 4);
    r0 += p->n;
  }
  return w;
}

void w4a16_dequantize(const W4A16Host& w, float* out) {
  for (int64_t r = 0; r < w.n; r++)
    for (int64_t c = 0; c < w.k; c++) {
      const size_t sz = (size_t)((c / w.group) * w.n + r) * 2;
      out[r * w.k + c] = dq(get_code(w, r, c), (int)f16_to_f32(w.scales_zeros[sz + 1]), w.scales_zeros[sz]);
    }
}

void w4a16_gemm_cpu(const w4a16_gemm_args& a, ThreadPool& pool) {
  const int64_t M = a.m, N = a.n, K = a.k, kp = w4a16_padded_k(K), KB = kp / 128;
  if (M <= 0) return;
  w4a16_check_shape(N, K, a.group, "w4a16_gemm");
  pool.parallel_for(N / 8, [&](int64_t tb, int64_t te) {
    std::vector<float> wt((size_t)8 * K);
    for (int64_t tile = tb; tile < te; tile++) {
      // dequantize the tile's 8 rows
      for (int64_t kb = 0; kb < KB; kb++)
        for (int lane = 0; lane < 32; lane++)
          for (int j = 0; j < 4; j++) {
            const uint32_t word = a.qweight[((tile * KB + kb) * 32 + lane) * 4 + j];
            const int g = lane / 4, t = lane % 4;
            const int64_t r = tile * 8 + g;
            for (int p = 0; p < 8; p++) {
              const int64_t c = kb * 128 + 32 * j + kOff[p] + 2 * t;
              if (c >= K) continue;
              const size_t sz = (size_t)((c / a.group) * N + r) * 2;
              wt[(size_t)g * K + c] = dq((int)((word >> (4 * p)) & 0xFu), (int)f16_to_f32(a.scales_zeros[sz + 1]), a.scales_zeros[sz]);
            }
          }
      for (int64_t i = 0; i < M; i++) {
        const float* x = a.x + i * K;
        for (int g = 0; g < 8; g++) {
          const float* wr = &wt[(size_t)g * K];
          float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
          int64_t c = 0;
          for (; c + 8 <= K; c += 8)
            for (int u = 0; u < 8; u++) acc[u] += x[c + u] * wr[c + u];
          for (; c < K; c++) acc[0] += x[c] * wr[c];
          float s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
          const int64_t r = tile * 8 + g;
          a.y[i * N + r] = s + (a.bias ? a.bias[r] : 0.f);
        }
      }
    }
  });
}

// inputs (layout "awq", the default): x [m, k] (f32/f16/bf16), qweight i32 [k, n/8], qzeros i32 [k/group, n/8],
//   scales f16 [k/group, n], optional bias [n]   (AutoAWQ GEMM tensors, converted here)
// inputs (layout "lmfleet"): x [m, k], qweight i32 [n/8, kp/128, 128], scales_zeros f16 [kp/group, n, 2], optional bias
// params: group (required), layout ("awq" | "lmfleet") -> y f32 [m, n]
void w4a16_gemm_run(Backend& be, OpCall& call) {
  const std::string layout = call.str("layout", "awq");
  if (layout != "awq" && layout != "lmfleet") call.bad("layout must be awq or lmfleet, got " + layout);
  const bool awq = layout == "awq";
  call.expect_inputs(awq ? 4 : 3, awq ? 5 : 4);
  auto x = call.in_f32(0, 2, "x");
  const int64_t m = call.inputs[0].shape[0], k = call.inputs[0].shape[1];
  if (!call.has("group")) call.bad("param group is required");
  const int64_t group = (int64_t)call.num("group", 0);
  const HostTensor& qw = call.in(1, awq ? 2 : 3, "qweight");
  if (qw.dtype != DType::I32) call.bad("qweight must be i32");
  W4A16Host w;
  size_t bias_at;
  if (awq) {
    const HostTensor& qz = call.in(2, 2, "qzeros");
    const HostTensor& sc = call.in(3, 2, "scales");
    const int64_t n = qw.shape[1] * 8;
    w4a16_check_shape(n, k, group, "w4a16_gemm");
    if (qw.shape[0] != k) call.bad("qweight must be [" + std::to_string(k) + ", n/8], got " + qw.shape_str());
    if (qz.dtype != DType::I32 || qz.shape != std::vector<int64_t>{k / group, n / 8})
      call.bad("qzeros must be i32 [" + std::to_string(k / group) + ", " + std::to_string(n / 8) + "], got " + qz.shape_str());
    if (sc.dtype != DType::F16 || sc.shape != std::vector<int64_t>{k / group, n})
      call.bad("scales must be f16 [" + std::to_string(k / group) + ", " + std::to_string(n) + "], got " + sc.shape_str());
    w = w4a16_pack_awq(reinterpret_cast<const int32_t*>(qw.bytes.data()), reinterpret_cast<const int32_t*>(qz.bytes.data()),
                       reinterpret_cast<const uint16_t*>(sc.bytes.data()), n, k, group);
    bias_at = 4;
  } else {
    const HostTensor& sz = call.in(2, 3, "scales_zeros");
    const int64_t n = sz.shape[1], kp = w4a16_padded_k(k);
    w4a16_check_shape(n, k, group, "w4a16_gemm");
    if (qw.shape != std::vector<int64_t>{n / 8, kp / 128, 128})
      call.bad("qweight must be [" + std::to_string(n / 8) + ", " + std::to_string(kp / 128) + ", 128], got " + qw.shape_str());
    if (sz.dtype != DType::F16 || sz.shape != std::vector<int64_t>{kp / group, n, 2})
      call.bad("scales_zeros must be f16 [" + std::to_string(kp / group) + ", " + std::to_string(n) + ", 2], got " + sz.shape_str());
    w.n = n; w.k = k; w.kp = kp; w.group = group;
    w.qweight.resize(qw.bytes.size() / 4);
    std::memcpy(w.qweight.data(), qw.bytes.data(), qw.bytes.size());
    w.scales_zeros.resize(sz.bytes.size() / 2);
    std::memcpy(w.scales_zeros.data(), sz.bytes.data(), sz.bytes.size());
    bias_at = 3;
  }
  std::vector<float> bias;
  if (call.inputs.size() > bias_at) {
    bias = call.in_f32(bias_at, 1, "bias");
    if ((int64_t)bias.size() != w.n) call.bad("bias must be [" + std::to_string(w.n) + "]");
  }
  auto& out = call.add_output(DType::F32, {m, w.n});
  Buffer bx = stage(be, x), bq = stage(be, w.qweight), bs = stage(be, w.scales_zeros), by(&be, out.bytes.size());
  Buffer bb;
  if (!bias.empty()) bb = stage(be, bias);
  be.w4a16_gemm({bx.as<float>(), bq.as<uint32_t>(), bs.as<uint16_t>(), bias.empty() ? nullptr : bb.as<float>(), by.as<float>(), m,
                 w.n, k, group});
  fetch(be, out, by);
}

}  // namespace lmfleet

namespace lmfleet {

// The cpu backend dequantizes W4A16 weights once at load into the f32 GEMM panels (linear.cpu.cc): its f32 GEMM
// is far faster than computing from 4-bit codes, and the dequantized values are exactly the f16-rounded
// (q - z) * s. w4a16_gemm_cpu above stays the reference for runOp, the specs and the CUDA checks.
std::unique_ptr<LinearWeight> prepare_w4a16_cpu(const W4A16Host& w, const void* bias, DType bias_dtype, ThreadPool& pool) {
  w4a16_check_shape(w.n, w.k, w.group, "prepare_w4a16");
  std::vector<float> deq((size_t)w.n * w.k);
  pool.parallel_for(w.n / 8, [&](int64_t tb, int64_t te) {
    for (int64_t tile = tb; tile < te; tile++)
      for (int64_t r = tile * 8; r < tile * 8 + 8; r++)
        for (int64_t c = 0; c < w.k; c++) {
          const size_t sz = (size_t)((c / w.group) * w.n + r) * 2;
          deq[(size_t)r * w.k + c] = dq(get_code(w, r, c), (int)f16_to_f32(w.scales_zeros[sz + 1]), w.scales_zeros[sz]);
        }
  });
  return prepare_linear_cpu(deq.data(), DType::F32, bias, bias_dtype, w.n, w.k, pool);
}

}  // namespace lmfleet
