// Host-side RoPE frequency table for the standalone CUDA tests and benchmark (the addon uses the engine's
// rope_inv_freq from ops/rope.h; this copy keeps src/cuda/test_kernels.cu free of the CPU backend's sources).
#pragma once
#include <cmath>
#include <string>
#include <vector>

namespace lmfleet {

// Rotary frequencies (Hugging Face's rope_type semantics), computed on the host in double:
//   default  inv_freq[i] = theta^(-2i/rot)
//   linear   inv_freq / factor                     (HF divides positions by factor: same angles)
//   dynamic  NTK: when seq_len > original max, theta' = theta * (factor*seq_len/max - (factor-1))^(rot/(rot-2))
//   llama3   per-wavelength blend between inv_freq and inv_freq/factor
struct RopeFreqParams {
  std::string type = "default";
  double theta = 10000.0;
  double factor = 1.0;
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  int original_max_position = 8192;  // llama3: original_max_position_embeddings; dynamic: max_position_embeddings
  int rot_dim = 0;
};

inline std::vector<float> rope_inv_freq_table(const RopeFreqParams& p, int seq_len) {
  const int rot = p.rot_dim;
  double base = p.theta;
  if (p.type == "dynamic" && seq_len > p.original_max_position) {
    base = p.theta * std::pow(p.factor * seq_len / p.original_max_position - (p.factor - 1.0), rot / (rot - 2.0));
  }
  std::vector<float> f(rot / 2);
  for (int i = 0; i < rot / 2; i++) {
    double inv = 1.0 / std::pow(base, (2.0 * i) / rot);
    if (p.type == "linear") inv /= p.factor;
    if (p.type == "llama3") {
      const double low_wl = p.original_max_position / p.low_freq_factor;
      const double high_wl = p.original_max_position / p.high_freq_factor;
      const double wl = 2.0 * M_PI / inv;
      if (wl > low_wl) {
        inv = inv / p.factor;
      } else if (wl >= high_wl) {
        const double smooth = (p.original_max_position / wl - p.low_freq_factor) / (p.high_freq_factor - p.low_freq_factor);
        inv = (1.0 - smooth) * inv / p.factor + smooth * inv;
      }
    }
    f[i] = (float)inv;
  }
  return f;
}

}  // namespace lmfleet
