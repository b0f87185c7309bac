// w4a16_gemm: y[m, n] = x[m, k] W^T + bias[n], W [n, k] stored as 4-bit codes with per-group scales and zero points
// (W4A16, AWQ's asymmetric quantization): W[r, c] = (q[r, c] - z[r, c / group]) * s[r, c / group], in f16.
//
// Our layout ("lmfleet-w4a16"), chosen so that one 16-byte load per lane gives a warp the B fragments of
// mma.sync.m16n8k16 for an 8-column x 128-k tile, dequantized in registers with two half2 ops per pair:
//   kp = k rounded up to a multiple of 128 (padded columns have q = 0, scale = 0, zero = 0: weight 0).
//   qweight: uint32 [n/8][kp/128][32 lanes][4 words]. Lane L = 4g + t holds output row r = 8 * tile + g; word j
//     covers k in [128 kb + 32 j, +32); its nibble p (bits 4p..4p+3) holds the code at k offset KOFF[p] + 2t:
//       KOFF = {0, 8, 16, 24, 1, 9, 17, 25}
//     so (word >> 4i) & 0x000F000F | 0x64006400 is the half2 (1024 + q[k0], 1024 + q[k0 + 1]) of pair i: pairs
//     0,1 are the b0,b1 registers of the first k16 step, pairs 2,3 of the second.
//   scales_zeros: half2 [kp/group][n]: .x = scale, .y = zero point (an integer 0..15 as f16). Group-major, so the
//     8 rows of a tile read 32 contiguous bytes.
// Requirements: n % 8 == 0, k % group == 0, group in {32, 64, 128}.
// AutoAWQ GEMM checkpoints (qweight int32 [k, n/8], qzeros int32 [k/group, n/8], scales f16 [k/group, n], nibble j
// of a word = column 8c + {0,2,4,6,1,3,5,7}[j]) convert with w4a16_pack_awq().
#pragma once
#include <cstdint>
#include <vector>

namespace lmfleet {

struct w4a16_gemm_args {
  const float* x;                     // [m, k]
  const uint32_t* qweight;            // backend memory, layout above
  const uint16_t* scales_zeros;       // backend memory, half2 [kp/group][n] as f16 bit pairs
  const float* bias;                  // [n] or null (backend memory)
  float* y;                           // [m, n]
  int64_t m, n, k, group;
};

// Host copy of a W4A16 weight in our layout.
struct W4A16Host {
  int64_t n = 0, k = 0, kp = 0, group = 0;
  std::vector<uint32_t> qweight;       // n/8 * kp/128 * 128 words
  std::vector<uint16_t> scales_zeros;  // kp/group * n * 2 halves
};

inline int64_t w4a16_padded_k(int64_t k) { return (k + 127) / 128 * 128; }
// Throws E_INVALID_ARGUMENT naming the problem when (n, k, group) cannot use the layout.
void w4a16_check_shape(int64_t n, int64_t k, int64_t group, const char* what);
// Where code (r, c) lives: word index into qweight and nibble position (0..7).
void w4a16_locate(int64_t r, int64_t c, int64_t kp, int64_t* word, int* nibble);
// From codes q [n, k] (0..15), zero points z [n, k/group] (0..15), scales s [n, k/group] (f16 bits).
W4A16Host w4a16_pack(const uint8_t* q, const uint8_t* z, const uint16_t* s, int64_t n, int64_t k, int64_t group);
// From the AutoAWQ GEMM tensors (see above). Multi-threaded when a pool is given (nullptr: one thread).
class ThreadPool;
W4A16Host w4a16_pack_awq(const int32_t* qweight, const int32_t* qzeros, const uint16_t* scales, int64_t n, int64_t k,
                         int64_t group, ThreadPool* pool = nullptr);
// Rows of several weights with the same k and group stacked into one (q, k, v -> qkv).
W4A16Host w4a16_concat_rows(const std::vector<const W4A16Host*>& parts);
// Rows [r0, r0 + nr) x columns [c0, c0 + kc) of w (tensor parallelism): whole 8-row tiles and whole groups, with
// their scales and zeros; E_INVALID_ARGUMENT otherwise.
W4A16Host w4a16_slice(const W4A16Host& w, int64_t r0, int64_t nr, int64_t c0, int64_t kc);
// The f16-rounded dequantized weight W [n, k] as f32 (the reference every kernel is compared to).
void w4a16_dequantize(const W4A16Host& w, float* out);

}  // namespace lmfleet
