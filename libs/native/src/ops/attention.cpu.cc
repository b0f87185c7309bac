#include "ops/attention.h"

#include <cmath>
#include <cstring>
#include <vector>

#include "core/backend_cpu.h"
#include "core/op_call.h"
#include "core/simd.h"
#include "core/vexp.h"
#include "ops/kv_quant.h"
#include <algorithm>

namespace lmfleet {

namespace {
constexpr int64_t QCHUNK = 32;  // queries per task
constexpr int QR = 4;           // queries computed together (register blocking)
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
}  // namespace

// One task = (sequence, kv head, chunk of QCHUNK queries), all query heads of the kv head's group.
// The task gathers the keys it needs from the paged cache into a d-major scratch Kt[d][p], so scores
// for QR queries x VW keys accumulate in registers over d (vectorized, no horizontal sums); softmax uses the vector exp; P.V accumulates V rows (contiguous in d). Every score, softmax
// sum and output is accumulated in a fixed order (d, then key position), so results don't depend on
// chunking, batch composition or threads: prefill, chunked prefill and decode give identical bits.
void attention_cpu(const attention_args& a, ThreadPool& pool) {
  if (a.heads % a.kv_heads) fail(ErrorCode::InvalidArgument, "attention: heads must be a multiple of kv_heads");
  const int qp = a.quant_policy;
  if (!kv_quant_policy_valid(qp)) fail(ErrorCode::InvalidArgument, "attention: quant_policy must be 0, 4 or 8");
  if (qp && (a.head_dim % 2 || !a.k_param || !a.v_param))
    fail(ErrorCode::InvalidArgument, "attention: a quantized cache needs an even head_dim and param buffers");
  if (a.window < 0) fail(ErrorCode::InvalidArgument, "attention: window must be >= 0");
  const int64_t group = a.heads / a.kv_heads, D = a.head_dim, kvw = a.kv_heads * D, bs = a.block_size;
  const int64_t ldq = a.ldq ? a.ldq : a.heads * D;
  std::vector<int64_t> task_start(a.num_seqs + 1, 0);
  for (int64_t s = 0; s < a.num_seqs; s++) {
    int32_t q_len = a.seq_info[s * 3 + 1], ctx = a.seq_info[s * 3 + 2];
    if (q_len < 0 || ctx < q_len || ctx > a.max_blocks * bs)
      fail(ErrorCode::InvalidArgument, "attention: bad seq_info for sequence " + std::to_string(s));
    for (int64_t b = 0; b < (ctx + bs - 1) / bs; b++) {
      int32_t blk = a.block_tables[s * a.max_blocks + b];
      if (blk < 0 || blk >= a.num_blocks)
        fail(ErrorCode::InvalidArgument, "attention: block " + std::to_string(blk) + " out of range");
    }
    task_start[s + 1] = task_start[s] + a.kv_heads * ((q_len + QCHUNK - 1) / QCHUNK);
  }
  pool.run(task_start[a.num_seqs], [&](int64_t task) {
    int64_t s = 0;
    while (task_start[s + 1] <= task) s++;
    const int64_t local = task - task_start[s];
    const int32_t q_start = a.seq_info[s * 3], q_len = a.seq_info[s * 3 + 1], ctx = a.seq_info[s * 3 + 2];
    const int64_t chunks = (q_len + QCHUNK - 1) / QCHUNK;
    const int64_t kvh = local / chunks, chunk = local % chunks;
    const int64_t j0 = chunk * QCHUNK, j1 = std::min<int64_t>(q_len, j0 + QCHUNK);
    const int64_t nk = ctx - q_len + j1;  // keys 0..nk-1 are visible to some query of the chunk
    // sliding window: query j sees keys [ctx - q_len + j + 1 - window, ...]; the chunk's first query the lowest, from
    // k0 (rounded down to the vector width) on. Keys below a query's own start are gathered but never read.
    const int64_t k0 = a.window > 0 ? std::max<int64_t>(0, ctx - q_len + j0 + 1 - a.window) / VW * VW : 0;
    const int32_t* table = a.block_tables + s * a.max_blocks;
    auto krow = [&](const float* cache, int64_t p) {
      return cache + ((int64_t)table[p / bs] * bs + p % bs) * kvw + kvh * D;
    };
    // Quantized cache: rows are dequantized once per task, K into kt below, V into the scratch vq [nk][D].
    const int64_t qrb = qp ? kv_quant_row_bytes(qp, D) : 0;
    auto dequant = [&](const float* cache, const float* param, int64_t p, float* dst) {
      const int64_t row = ((int64_t)table[p / bs] * bs + p % bs) * a.kv_heads + kvh;
      const uint8_t* src = reinterpret_cast<const uint8_t*>(cache) + row * qrb;
      const float scale = param[2 * row], zero = param[2 * row + 1];
      if (qp == 8) {
        for (int64_t d = 0; d < D; d++) dst[d] = kv_dequant_one(src[d], scale, zero);
      } else {
        for (int64_t d = 0; d < D; d += 2) {
          dst[d] = kv_dequant_one(src[d / 2] & 15, scale, zero);
          dst[d + 1] = kv_dequant_one(src[d / 2] >> 4, scale, zero);
        }
      }
    };
    // Keys in d-major order, padded with zeros to a multiple of the vector width.
    const int64_t nkp = (nk + VW - 1) / VW * VW;
    thread_local std::vector<float> kt, sc, vq, krq;
    if ((int64_t)kt.size() < D * nkp) kt.resize(D * nkp);
    if ((int64_t)sc.size() < QR * nkp) sc.resize(QR * nkp);
    if (qp) {
      if ((int64_t)vq.size() < nk * D) vq.resize(nk * D);
      if ((int64_t)krq.size() < D) krq.resize(D);
      for (int64_t p = k0; p < nk; p++) dequant(a.v_cache, a.v_param, p, vq.data() + p * D);
    }
    // V row of key p: from the cache, or dequantized
    auto vrow = [&](int64_t p) { return qp ? vq.data() + p * D : krow(a.v_cache, p); };
    for (int64_t p = k0; p < nk; p++) {
      const float* k = qp ? (dequant(a.k_cache, a.k_param, p, krq.data()), krq.data()) : krow(a.k_cache, p);
      for (int64_t d = 0; d < D; d++) kt[d * nkp + p] = k[d];
    }
    for (int64_t d = 0; d < D; d++)
      for (int64_t p = nk; p < nkp; p++) kt[d * nkp + p] = 0.f;
    const bool vec_pv = D % VW == 0;
    for (int64_t hg = 0; hg < group; hg++) {
      const int64_t h = kvh * group + hg;
      for (int64_t jb = j0; jb < j1; jb += QR) {
        const int nq = (int)std::min<int64_t>(QR, j1 - jb);
        int64_t len[QR] = {0, 0, 0, 0}, lo[QR] = {0, 0, 0, 0};
        const float* qp[QR];
        int64_t kmax = 0;
        for (int j = 0; j < QR; j++) {
          const int jj = j < nq ? j : nq - 1;  // padding rows repeat the last query (results unused)
          len[j] = ctx - q_len + jb + jj + 1;  // keys visible to this query: [lo, len)
          lo[j] = a.window > 0 ? std::max<int64_t>(0, len[j] - a.window) : 0;
          qp[j] = a.q + (q_start + jb + jj) * ldq + h * D;
          kmax = std::max(kmax, len[j]);
        }
        // Scores: QR queries x VW keys in registers, summed over d in order.
        for (int64_t p0 = k0; p0 < kmax; p0 += VW) {
          vf acc[QR];
          for (int j = 0; j < QR; j++) acc[j] = vf{};
          const float* kp = kt.data() + p0;
          for (int64_t d = 0; d < D; d++) {
            const vf kv = vf_load(kp + d * nkp);
            for (int j = 0; j < QR; j++) acc[j] += (vf{} + qp[j][d]) * kv;
          }
          for (int j = 0; j < QR; j++) vf_store(sc.data() + j * nkp + p0, acc[j]);
        }
        float inv_sum[QR];
        for (int j = 0; j < nq; j++) {
          float* sj = sc.data() + j * nkp;
          float mx = -INFINITY;
          for (int64_t p = lo[j]; p < len[j]; p++) {
            sj[p] *= a.scale;
            if (a.softcap > 0.f) sj[p] = a.softcap * std::tanh(sj[p] / a.softcap);
            mx = sj[p] > mx ? sj[p] : mx;
          }
          exp_sub_array(sj + lo[j], mx, sj + lo[j], len[j] - lo[j]);
          float sum = 0.f;
          for (int64_t p = lo[j]; p < len[j]; p++) sum += sj[p];
          inv_sum[j] = 1.0f / sum;
        }
        // P.V: per query, V rows accumulated in key order; 4 vectors of d held in registers.
        for (int j = 0; j < nq; j++) {
          const float* sj = sc.data() + j * nkp;
          float* out = a.out + (q_start + jb + j) * a.heads * D + h * D;
          if (vec_pv) {
            for (int64_t d0 = 0; d0 < D; d0 += 4 * VW) {
              const int nv = (int)std::min<int64_t>(4, (D - d0) / VW);
              vf o[4] = {vf{}, vf{}, vf{}, vf{}};
              for (int64_t p = lo[j]; p < len[j]; p++) {
                const float* v = vrow(p) + d0;
                const vf w = vf{} + sj[p];
                for (int i = 0; i < nv; i++) o[i] += w * vf_load(v + i * VW);
              }
              for (int i = 0; i < nv; i++) vf_store(out + d0 + i * VW, o[i] * inv_sum[j]);
            }
          } else {
            std::vector<float> o((size_t)D, 0.f);
            for (int64_t p = lo[j]; p < len[j]; p++) {
              const float* v = vrow(p);
              for (int64_t d = 0; d < D; d++) o[d] += sj[p] * v[d];
            }
            for (int64_t d = 0; d < D; d++) out[d] = o[d] * inv_sum[j];
          }
        }
      }
    }
  });
}

// inputs: q [tokens, heads, head_dim], k_cache [num_blocks, block_size, kv_heads, head_dim], v_cache (same),
//         block_tables i32 [num_seqs, max_blocks], seq_info i32 [num_seqs, 3] (q_start, q_len, ctx_len)
// params: scale (default 1/sqrt(head_dim)), window (sliding window, default 0: none), softcap (default 0: none) -> out f32 [tokens, heads, head_dim]
// quantized (param quant_policy 8|4): k_cache/v_cache u8 [num_blocks, block_size, kv_heads, head_dim * bits / 8],
//         then k_param, v_param f32 [num_blocks, block_size, kv_heads, 2] (scale, zero) as kv_store wrote them
void attention_run(Backend& be, OpCall& call) {
  const int p = (int)call.num("quant_policy", 0);
  if (!kv_quant_policy_valid(p)) call.bad("quant_policy must be 0, 4 or 8");
  call.expect_inputs(p ? 7 : 5, p ? 7 : 5);
  auto q = call.in_f32(0, 3, "q");
  auto bt = call.in_i32(3, 2, "block_tables");
  auto si = call.in_i32(4, 2, "seq_info");
  const auto& qs = call.inputs[0].shape;
  const auto& ks = call.inputs[1].shape;
  std::vector<float> kc, vc, kp, vp;
  if (p) {
    const HostTensor &k = call.in(1, 4, "k_cache"), &v = call.in(2, 4, "v_cache");
    if (k.dtype != DType::U8 || v.dtype != DType::U8) call.bad("a quantized cache must be u8");
    if (qs[2] % 2 || ks[3] != kv_quant_row_bytes(p, qs[2])) call.bad("cache rows must be head_dim * bits / 8 bytes");
    kp = call.in_f32(5, 4, "k_param");
    vp = call.in_f32(6, 4, "v_param");
    const auto& ps = call.inputs[5].shape;
    if (ps[0] != ks[0] || ps[1] != ks[1] || ps[2] != ks[2] || ps[3] != 2 || call.inputs[6].shape != ps)
      call.bad("k_param/v_param must be [num_blocks, block_size, kv_heads, 2]");
  } else {
    kc = call.in_f32(1, 4, "k_cache");
    vc = call.in_f32(2, 4, "v_cache");
    if (ks[3] != qs[2]) call.bad("head_dim of q and cache differ");
  }
  if (call.inputs[2].shape != ks) call.bad("k_cache and v_cache must have the same shape");
  if (call.inputs[4].shape[1] != 3) call.bad("seq_info must be [num_seqs, 3]");
  int64_t num_seqs = call.inputs[4].shape[0];
  if (call.inputs[3].shape[0] != num_seqs) call.bad("block_tables must have one row per sequence");
  for (int64_t s = 0; s < num_seqs; s++)
    if (si[s * 3] < 0 || si[s * 3 + 1] < 0 || si[s * 3] + si[s * 3 + 1] > qs[0]) call.bad("seq_info out of range");
  auto& out = call.add_output(DType::F32, qs);
  Buffer bq = stage(be, q), bo(&be, out.bytes.size()), bk, bv, bkp, bvp;
  if (p) {
    bk = stage(be, call.inputs[1].bytes);
    bv = stage(be, call.inputs[2].bytes);
    bkp = stage(be, kp);
    bvp = stage(be, vp);
  } else {
    bk = stage(be, kc);
    bv = stage(be, vc);
  }
  attention_args a{bq.as<float>(), bo.as<float>(), bk.as<float>(), bv.as<float>(), ks[0], ks[1], bt.data(),
                   call.inputs[3].shape[1], si.data(), num_seqs, qs[1], ks[2], qs[2],
                   (float)call.num("scale", 1.0 / std::sqrt((double)qs[2]))};
  a.quant_policy = p;
  a.window = (int64_t)call.num("window", 0);
  a.softcap = (float)call.num("softcap", 0);
  if (!(a.softcap >= 0)) call.bad("softcap must be >= 0");
  if (a.window < 0) call.bad("window must be >= 0");
  a.k_param = p ? bkp.as<float>() : nullptr;
  a.v_param = p ? bvp.as<float>() : nullptr;
  be.attention(a);
  fetch(be, out, bo);
}

}  // namespace lmfleet
