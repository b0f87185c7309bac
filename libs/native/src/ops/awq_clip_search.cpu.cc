#include "ops/awq_clip_search.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "core/backend_cpu.h"
#include "core/op_call.h"

namespace lmfleet {

namespace {
typedef float v16f __attribute__((vector_size(64)));
inline v16f load16(const float* p) {
  v16f v;
  __builtin_memcpy(&v, p, sizeof v);
  return v;
}
}  // namespace

// One task per (group, block of 16 rows): the group's columns of X transposed once ([G][tokens padded to 16], zeros
// past the end). Per row: the residuals of every step, then per 16 tokens and up to 8 steps at once, one vector
// accumulator per step (lane = token) over k in order: x[t, k] * r_step[k] fused into it.
void awq_clip_search_cpu(const awq_clip_search_args& a, ThreadPool& pool) {
  const int G = a.group, qmax = (1 << a.bits) - 1;
  const int64_t groups = a.cols / G, T = a.tokens, T16 = (a.tokens + 15) / 16 * 16;
  constexpr int64_t RB = 16;
  constexpr int SB = 8;
  const int64_t rblocks = (a.rows + RB - 1) / RB;
  pool.parallel_for(groups * rblocks, [&](int64_t b, int64_t e) {
    std::vector<float> xt, r((size_t)a.steps * G), v((size_t)G), cv((size_t)a.steps);
    std::vector<double> err((size_t)a.steps);
    int64_t cur_g = -1;
    for (int64_t task = b; task < e; task++) {
      const int64_t g = task / rblocks, r0 = (task % rblocks) * RB, r1 = std::min(a.rows, r0 + RB);
      if (g != cur_g) {
        xt.assign((size_t)G * T16, 0.f);
        for (int64_t t = 0; t < T; t++)
          for (int k = 0; k < G; k++) xt[(size_t)k * T16 + t] = a.x[t * a.cols + g * G + k];
        cur_g = g;
      }
      for (int64_t o = r0; o < r1; o++) {
        const float* w = a.w + o * a.cols + g * G;
        float org = 0.f;
        for (int k = 0; k < G; k++) org = std::max(org, std::fabs(w[k]));
        for (int step = 0; step < a.steps; step++) {
          const float c = awq_clip_value(org, step, a.n_grid);
          cv[step] = c;
          float mn = INFINITY, mx = -INFINITY;
          for (int k = 0; k < G; k++) {
            v[k] = awq_clamp(w[k], c);
            mn = std::min(mn, v[k]);
            mx = std::max(mx, v[k]);
          }
          float s;
          int z;
          awq_group_params(mn, mx, qmax, &s, &z);
          float* rs = &r[(size_t)step * G];
          for (int k = 0; k < G; k++) rs[k] = (float)(awq_code(v[k], s, z, qmax) - z) * s - w[k];
          err[step] = 0;
        }
        for (int s0 = 0; s0 < a.steps; s0 += SB) {
          const int ns = std::min(SB, a.steps - s0);
          for (int64_t t0 = 0; t0 < T16; t0 += 16) {
            v16f acc[SB];
            for (int j = 0; j < SB; j++) acc[j] = v16f{};
            for (int k = 0; k < G; k++) {
              const v16f xv = load16(&xt[(size_t)k * T16 + t0]);
              for (int j = 0; j < SB; j++)
                if (j < ns) acc[j] += xv * r[(size_t)(s0 + j) * G + k];
            }
            for (int j = 0; j < ns; j++) {
              double sq = 0;
              for (int l = 0; l < 16; l++) sq += (double)acc[j][l] * (double)acc[j][l];
              err[s0 + j] += sq;
            }
          }
        }
        int best = 0;
        for (int step = 1; step < a.steps; step++)
          if (err[step] < err[best]) best = step;
        a.clip[o * groups + g] = cv[best];
        a.err[o * groups + g] = (float)err[best];
      }
    }
  }, 1);
}

// inputs: w [rows, cols], x [tokens, cols] (f32, f16 or bf16). params: group (32/64/128, required), bits (4 or 8,
// default 4), nGrid (default 20), maxShrink (default 0.5: steps = round(maxShrink * nGrid)).
// outputs: clip f32 [rows, cols / group], err f32 [rows, cols / group].
void awq_clip_search_run(Backend& be, OpCall& call) {
  call.expect_inputs(2, 2);
  auto w = call.in_f32(0, 2, "w");
  auto x = call.in_f32(1, 2, "x");
  const int64_t rows = call.inputs[0].shape[0], cols = call.inputs[0].shape[1], tokens = call.inputs[1].shape[0];
  if (call.inputs[1].shape[1] != cols)
    call.bad("x must be [tokens, " + std::to_string(cols) + "], got " + call.inputs[1].shape_str());
  const int bits = (int)call.num("bits", 4);
  if (bits != 4 && bits != 8) call.bad("bits must be 4 or 8, got " + std::to_string(bits));
  if (!call.has("group")) call.bad("param group is required");
  const int group = (int)call.num("group", 0);
  if (group != 32 && group != 64 && group != 128) call.bad("group must be 32, 64 or 128, got " + std::to_string(group));
  if (cols % group != 0) call.bad("w columns " + std::to_string(cols) + " are not a multiple of the group size " + std::to_string(group));
  const double n_grid = call.num("nGrid", 20), shrink = call.num("maxShrink", 0.5);
  if (!(n_grid >= 1 && n_grid <= 1000 && n_grid == std::floor(n_grid))) call.bad("nGrid must be an integer in [1, 1000]");
  if (!(shrink > 0 && shrink <= 1)) call.bad("maxShrink must be in (0, 1]");
  const int steps = std::max(1, (int)std::lround(shrink * n_grid));
  const int64_t groups = cols / group;
  Buffer bw = stage(be, w), bx = stage(be, x), bc(&be, (size_t)(rows * groups) * 4), be_(&be, (size_t)(rows * groups) * 4);
  be.awq_clip_search({bw.as<float>(), bx.as<float>(), bc.as<float>(), be_.as<float>(), rows, cols, tokens, bits, group, steps, (int)n_grid});
  fetch(be, call.add_output(DType::F32, {rows, groups}), bc);
  fetch(be, call.add_output(DType::F32, {rows, groups}), be_);
}

}  // namespace lmfleet
