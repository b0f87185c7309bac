#include "ops/rope.h"

#include <cmath>

#include "core/backend_cpu.h"
#include "core/op_call.h"

namespace lmfleet {

int64_t rope_rotary_dim(const RopeParams& p, int64_t head_dim) {
  int64_t rd = head_dim;
  if (p.rotary > 0 && p.rotary <= 1) rd = (int64_t)std::llround(p.rotary * (double)head_dim);
  else if (p.rotary > 1) rd = (int64_t)p.rotary;
  if (rd <= 0 || rd > head_dim || rd % 2)
    fail(ErrorCode::InvalidArgument, "rope: rotary dim " + std::to_string(rd) + " must be even and in (0, " +
                                         std::to_string(head_dim) + "]");
  return rd;
}

static bool rope_scales_attention(const RopeParams& p) { return p.type == "longrope" || p.type == "yarn"; }

double nope_attention_scale(const RopeParams& p, int64_t head_dim) {
  return p.attention_scale > 0 ? p.attention_scale : 1.0 / std::sqrt((double)head_dim);
}

double rope_attention_scale(const RopeParams& p, int64_t head_dim) {
  const double s = nope_attention_scale(p, head_dim);
  const bool full = rope_rotary_dim(p, head_dim) == head_dim;
  return rope_scales_attention(p) && full ? s * p.attention_factor * p.attention_factor : s;
}

double rope_cs_scale(const RopeParams& p, int64_t head_dim) {
  return rope_scales_attention(p) && rope_rotary_dim(p, head_dim) != head_dim ? p.attention_factor : 1.0;
}

std::vector<float> rope_inv_freq(const RopeParams& p, int64_t head_dim, int64_t seq_len) {
  const int64_t rd = rope_rotary_dim(p, head_dim);
  const int64_t half = rd / 2;
  double base = p.theta;
  if (p.type == "dynamic") {
    int64_t maxpos = p.original_max_position > 0 ? p.original_max_position : p.max_position;
    if (seq_len > maxpos && p.factor > 0)
      base = p.theta * std::pow(p.factor * (double)seq_len / (double)maxpos - (p.factor - 1.0),
                                (double)rd / (double)(rd - 2));
  } else if (p.type == "longrope") {
    if ((int64_t)p.short_factor.size() != half || (int64_t)p.long_factor.size() != half)
      fail(ErrorCode::InvalidArgument, "rope: longrope needs short_factor and long_factor of rotary_dim / 2 = " + std::to_string(half) +
                                           " values each, got " + std::to_string(p.short_factor.size()) + " and " + std::to_string(p.long_factor.size()));
    if (p.original_max_position <= 0) fail(ErrorCode::InvalidArgument, "rope: longrope needs original_max_position_embeddings");
  } else if (p.type == "yarn") {
    if (!(p.factor > 0) || p.original_max_position <= 0 || !(p.beta_fast > 0) || !(p.beta_slow > 0))
      fail(ErrorCode::InvalidArgument, "rope: yarn needs factor > 0, original_max_position_embeddings and beta_fast / beta_slow > 0");
  } else if (p.type != "default" && p.type != "linear" && p.type != "llama3") {
    fail(ErrorCode::InvalidArgument, "rope: unsupported type '" + p.type + "' (default, linear, dynamic, llama3, longrope, yarn)");
  }
  // yarn: the pair index band [low, high] of the ramp between extrapolated (kept) and interpolated (/ factor) pairs:
  // pair i does `rotations` full turns over the original context where i = rd ln(orig / (2 pi rotations)) / (2 ln base)
  double y_low = 0, y_high = 1;
  if (p.type == "yarn") {
    auto band = [&](double rotations) {
      return (double)rd * std::log((double)p.original_max_position / (rotations * 2.0 * M_PI)) / (2.0 * std::log(base));
    };
    y_low = band(p.beta_fast);
    y_high = band(p.beta_slow);
    if (p.truncate) {
      y_low = std::floor(y_low);
      y_high = std::ceil(y_high);
    }
    y_low = std::max(y_low, 0.0);
    y_high = std::min(y_high, (double)(rd - 1));
    if (y_low == y_high) y_high += 0.001;
  }
  // longrope: the long factors once the sequence is longer than the original context (HF's dynamic longrope)
  const std::vector<float>* ext = p.type != "longrope" ? nullptr : seq_len > p.original_max_position ? &p.long_factor : &p.short_factor;
  std::vector<float> inv(half);
  for (int64_t i = 0; i < half; i++) {
    // As HF: computed in float32 from base^(2i/rd).
    float f = (float)(1.0 / std::pow(base, (double)(2 * i) / (double)rd));
    if (ext) f = (float)(1.0 / ((double)(*ext)[i] * std::pow(base, (double)(2 * i) / (double)rd)));
    if (p.type == "linear") f = (float)(f / p.factor);
    if (p.type == "yarn") {  // in float32 as HF: interpolation 1 / (factor base^(2i/rd)), ramp clamp((i - low) / (high - low))
      const float kept = f, interp = (float)(1.0 / (p.factor * std::pow(base, (double)(2 * i) / (double)rd)));
      const float ramp = std::min(1.0f, std::max(0.0f, (float)(((double)i - y_low) / (y_high - y_low))));
      const float keep = 1.0f - ramp;  // HF's inv_freq_extrapolation_factor
      f = interp * (1.0f - keep) + kept * keep;
    }
    if (p.type == "llama3") {
      double old_ctx = (double)(p.original_max_position > 0 ? p.original_max_position : 8192);
      double low_wl = old_ctx / p.low_freq_factor, high_wl = old_ctx / p.high_freq_factor;
      double wl = 2.0 * M_PI / (double)f;
      if (wl > low_wl) {
        f = (float)(f / p.factor);
      } else if (wl >= high_wl) {
        double smooth = (old_ctx / wl - p.low_freq_factor) / (p.high_freq_factor - p.low_freq_factor);
        f = (float)((1.0 - smooth) * f / p.factor + smooth * f);
      }
    }
    inv[i] = f;
  }
  return inv;
}

void rope_cpu(const rope_args& a, ThreadPool& pool) {
  const int64_t half = a.rotary_dim / 2;
  const int64_t ld = a.ld ? a.ld : a.heads * a.head_dim;
  pool.parallel_for(a.tokens, [&](int64_t b, int64_t e) {
    std::vector<float> cs((size_t)half), sn((size_t)half);
    for (int64_t t = b; t < e; t++) {
      const float* inv = a.inv_freq + (a.inv_freq_stride ? t * a.inv_freq_stride : 0);
      const float pos = (float)a.positions[t];
      for (int64_t i = 0; i < half; i++) {
        float ang = pos * inv[i];  // float32 product, as HF
        cs[i] = std::cos(ang) * a.cs_scale;
        sn[i] = std::sin(ang) * a.cs_scale;
      }
      for (int64_t h = 0; h < a.heads; h++) {
        float* x = a.x + t * ld + h * a.head_dim;
        if (a.norm_w) {  // per-head RMSNorm first (Qwen3's q_norm / k_norm), over the whole head
          double ss = 0;
          for (int64_t d = 0; d < a.head_dim; d++) ss += (double)x[d] * x[d];
          const float inv = 1.0f / std::sqrt((float)(ss / (double)a.head_dim) + a.norm_eps);
          for (int64_t d = 0; d < a.head_dim; d++) x[d] = x[d] * inv * a.norm_w[d];
        }
        for (int64_t i = 0; i < half; i++) {
          float x1 = x[i], x2 = x[i + half];
          x[i] = x1 * cs[i] - x2 * sn[i];
          x[i + half] = x2 * cs[i] + x1 * sn[i];
        }
      }
    }
  }, 4);
}

// inputs: x [tokens, heads, head_dim], positions i32 [tokens], and for longrope short_factor, long_factor f32 [rot/2]
// params: type ('default'|'linear'|'dynamic'|'llama3'|'longrope'|'yarn'), theta, factor, lowFreqFactor, highFreqFactor,
//         originalMaxPositionEmbeddings, maxPositionEmbeddings, rotaryDim, seqLen (dynamic / longrope; default max
//         pos+1), betaFast, betaSlow, truncate (yarn), attentionFactor (longrope / yarn: applied here on a partially
//         rotated head only, rope_cs_scale; on a full one it scales the attention, rope_attention_scale).
void rope_run(Backend& be, OpCall& call) {
  call.expect_inputs(2, 4);
  auto x = call.in_f32(0, 3, "x");
  auto pos = call.in_i32(1, 1, "positions");
  int64_t tokens = call.inputs[0].shape[0], heads = call.inputs[0].shape[1], hd = call.inputs[0].shape[2];
  if ((int64_t)pos.size() != tokens) call.bad("positions must be [" + std::to_string(tokens) + "]");
  RopeParams p;
  p.type = call.str("type", "default");
  p.theta = call.num("theta", 10000.0);
  p.factor = call.num("factor", 1.0);
  p.low_freq_factor = call.num("lowFreqFactor", 1.0);
  p.high_freq_factor = call.num("highFreqFactor", 4.0);
  p.original_max_position = (int64_t)call.num("originalMaxPositionEmbeddings", 0);
  p.max_position = (int64_t)call.num("maxPositionEmbeddings", 2048);
  p.rotary = call.num("rotaryDim", 0);
  p.beta_fast = call.num("betaFast", 32.0);
  p.beta_slow = call.num("betaSlow", 1.0);
  p.truncate = call.num("truncate", 1.0) != 0;
  p.attention_factor = call.num("attentionFactor", 1.0);
  if (call.inputs.size() == 4) {
    p.short_factor = call.in_f32(2, 1, "short_factor");
    p.long_factor = call.in_f32(3, 1, "long_factor");
  } else if (call.inputs.size() == 3) {
    call.bad("longrope takes both short_factor and long_factor");
  }
  int64_t maxp = 0;
  for (auto v : pos) maxp = std::max<int64_t>(maxp, v);
  auto inv = rope_inv_freq(p, hd, (int64_t)call.num("seqLen", (double)(maxp + 1)));
  auto& out = call.add_output(DType::F32, call.inputs[0].shape);
  Buffer bx = stage(be, x), bi = stage(be, inv);
  rope_args ra{bx.as<float>(), tokens, heads, hd, rope_rotary_dim(p, hd), pos.data(), bi.as<float>(), 0};
  ra.cs_scale = (float)rope_cs_scale(p, hd);
  be.rope(ra);
  fetch(be, out, bx);
}

}  // namespace lmfleet
