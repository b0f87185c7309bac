#include "ops/attention.h"

#include <cmath>
#include <cstring>
#include <vector>

#include "core/backend_cpu.h"
#include "core/op_call.h"
#include "core/simd.h"

namespace lmfleet {

namespace {
constexpr int64_t QCHUNK = 16;
}

void attention_cpu(const attention_args& a, ThreadPool& pool) {
  if (a.heads % a.kv_heads) fail(ErrorCode::InvalidArgument, "attention: heads must be a multiple of kv_heads");
  const int64_t group = a.heads / a.kv_heads, D = a.head_dim, kvw = a.kv_heads * D;
  // Validate and build the task list: (seq, head, query chunk).
  std::vector<int64_t> task_start(a.num_seqs + 1, 0);
  for (int64_t s = 0; s < a.num_seqs; s++) {
    int32_t q_len = a.seq_info[s * 3 + 1], ctx = a.seq_info[s * 3 + 2];
    if (q_len < 0 || ctx < q_len || ctx > a.max_blocks * a.block_size)
      fail(ErrorCode::InvalidArgument, "attention: bad seq_info for sequence " + std::to_string(s));
    for (int64_t b = 0; b < (ctx + a.block_size - 1) / a.block_size; b++) {
      int32_t blk = a.block_tables[s * a.max_blocks + b];
      if (blk < 0 || blk >= a.num_blocks)
        fail(ErrorCode::InvalidArgument, "attention: block " + std::to_string(blk) + " out of range");
    }
    task_start[s + 1] = task_start[s] + a.heads * ((q_len + QCHUNK - 1) / QCHUNK);
  }
  pool.run(task_start[a.num_seqs], [&](int64_t task) {
    int64_t s = 0;
    while (task_start[s + 1] <= task) s++;
    const int64_t local = task - task_start[s];
    const int32_t q_start = a.seq_info[s * 3], q_len = a.seq_info[s * 3 + 1], ctx = a.seq_info[s * 3 + 2];
    const int64_t chunks = (q_len + QCHUNK - 1) / QCHUNK;
    const int64_t h = local / chunks, chunk = local % chunks;
    const int64_t kvh = h / group;
    const int32_t* table = a.block_tables + s * a.max_blocks;
    thread_local std::vector<float> scores;
    thread_local std::vector<float> acc;
    if ((int64_t)scores.size() < ctx) scores.resize(ctx);
    if ((int64_t)acc.size() < D) acc.resize(D);
    for (int64_t j = chunk * QCHUNK; j < std::min<int64_t>(q_len, (chunk + 1) * QCHUNK); j++) {
      const int64_t pos = ctx - q_len + j;
      const float* q = a.q + ((q_start + j) * a.heads + h) * D;
      float mx = -INFINITY;
      for (int64_t p = 0; p <= pos; p++) {
        const float* k = a.k_cache + ((int64_t)table[p / a.block_size] * a.block_size + p % a.block_size) * kvw + kvh * D;
        float sc = dot_f32(q, k, D) * a.scale;
        scores[p] = sc;
        mx = sc > mx ? sc : mx;
      }
      float sum = 0.f;
      for (int64_t p = 0; p <= pos; p++) {
        float e = std::exp(scores[p] - mx);
        scores[p] = e;
        sum += e;
      }
      std::memset(acc.data(), 0, D * 4);
      for (int64_t p = 0; p <= pos; p++) {
        const float* v = a.v_cache + ((int64_t)table[p / a.block_size] * a.block_size + p % a.block_size) * kvw + kvh * D;
        axpy_f32(acc.data(), v, scores[p], D);
      }
      float* o = a.out + ((q_start + j) * a.heads + h) * D;
      const float inv = 1.0f / sum;
      for (int64_t d = 0; d < D; d++) o[d] = acc[d] * inv;
    }
  });
}

// inputs: q [tokens, heads, head_dim], k_cache [num_blocks, block_size, kv_heads, head_dim], v_cache (same),
//         block_tables i32 [num_seqs, max_blocks], seq_info i32 [num_seqs, 3] (q_start, q_len, ctx_len)
// params: scale (default 1/sqrt(head_dim)) -> out f32 [tokens, heads, head_dim]
void attention_run(Backend& be, OpCall& call) {
  call.expect_inputs(5, 5);
  auto q = call.in_f32(0, 3, "q");
  auto kc = call.in_f32(1, 4, "k_cache");
  auto vc = call.in_f32(2, 4, "v_cache");
  auto bt = call.in_i32(3, 2, "block_tables");
  auto si = call.in_i32(4, 2, "seq_info");
  const auto& qs = call.inputs[0].shape;
  const auto& ks = call.inputs[1].shape;
  if (call.inputs[2].shape != ks) call.bad("k_cache and v_cache must have the same shape");
  if (ks[3] != qs[2]) call.bad("head_dim of q and cache differ");
  if (call.inputs[4].shape[1] != 3) call.bad("seq_info must be [num_seqs, 3]");
  int64_t num_seqs = call.inputs[4].shape[0];
  if (call.inputs[3].shape[0] != num_seqs) call.bad("block_tables must have one row per sequence");
  for (int64_t s = 0; s < num_seqs; s++)
    if (si[s * 3] < 0 || si[s * 3 + 1] < 0 || si[s * 3] + si[s * 3 + 1] > qs[0]) call.bad("seq_info out of range");
  auto& out = call.add_output(DType::F32, qs);
  Buffer bq = stage(be, q), bk = stage(be, kc), bv = stage(be, vc), bo(&be, out.bytes.size());
  be.attention({bq.as<float>(), bo.as<float>(), bk.as<float>(), bv.as<float>(), ks[0], ks[1], bt.data(),
                call.inputs[3].shape[1], si.data(), num_seqs, qs[1], ks[2], qs[2],
                (float)call.num("scale", 1.0 / std::sqrt((double)qs[2]))});
  fetch(be, out, bo);
}

}  // namespace lmfleet
