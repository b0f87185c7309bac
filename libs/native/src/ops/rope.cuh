#pragma once
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <string>
#include <vector>

namespace lmfleet {

// Rotary frequencies (Hugging Face's rope_type semantics), computed on the host in double:
//   default  inv_freq[i] = theta^(-2i/rot)
//   linear   inv_freq / factor                     (HF divides positions by factor: same angles)
//   dynamic  NTK: when seq_len > original max, theta' = theta * (factor*seq_len/max - (factor-1))^(rot/(rot-2))
//   llama3   per-wavelength blend between inv_freq and inv_freq/factor
struct RopeParams {
  std::string type = "default";
  double theta = 10000.0;
  double factor = 1.0;
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  int original_max_position = 8192;  // llama3: original_max_position_embeddings; dynamic: max_position_embeddings
  int rot_dim = 0;
};

inline std::vector<float> rope_inv_freq(const RopeParams& p, int seq_len) {
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

// Rotary embedding (rotate_half layout: dims i and i + rot/2 form a pair) applied in place to the q and k heads
// of a fused qkv buffer [ntok, (nh + 2*nkv) * hd] with row stride ld (q heads, then k heads, then v heads).
// Angle = float(positions[t]) * inv_freq[i] (f32, like HF), cos/sin in f32; dims >= rot_dim are left as is.
// When k_cache is not null, the rotated k and the v of every token are also stored in the paged KV cache:
// token t goes to slot slots[t] (block = slot / block_size), cache layout [num_blocks, nkv, block_size, hd].
// Tokens with slots[t] < 0 are not stored.
void rope_kv_store_cuda(half* qkv, int ld, const int* positions, const float* inv_freq, int rot_dim, int ntok,
                        int nh, int nkv, int hd, half* k_cache, half* v_cache, const int* slots, int block_size,
                        cudaStream_t s);

}  // namespace lmfleet
