#include <algorithm>
#include "cuda/check.cuh"
#include "cuda/device_utils.cuh"
#include "ops/rope.cuh"

namespace lmfleet {

// grid (ntok, nh + 2*nkv heads), hd/2 threads: q/k heads rotate one pair (i, i + rot/2) per thread (k also
// goes to the cache, with its unrotated tail), v heads copy two dims per thread into the cache.
__global__ void rope_kv_store_kernel(half* qkv, int ld, const int* __restrict__ positions,
                                     const float* __restrict__ inv_freq, int inv_freq_stride, int rot_dim, int nh,
                                     int nkv, int hd, half* k_cache, half* v_cache, const int* __restrict__ slots) {
  const int t = blockIdx.x, h = blockIdx.y;
  half* row = qkv + (size_t)t * ld;
  const int slot = k_cache ? slots[t] : -1;
  if (h >= nh + nkv) {  // v head
    if (slot < 0) return;
    const int hv = h - nh - nkv;
    const half* v = row + (size_t)h * hd;
    half* dst = v_cache + ((size_t)slot * nkv + hv) * hd;
    for (int d = 2 * threadIdx.x; d < hd; d += 2 * blockDim.x)
      *reinterpret_cast<half2*>(dst + d) = *reinterpret_cast<const half2*>(v + d);
    return;
  }
  const float pos = (float)positions[t];
  const float* f = inv_freq + (size_t)t * inv_freq_stride;
  const int half_rot = rot_dim / 2;
  half* head = row + (size_t)h * hd;
  const bool is_k = h >= nh;
  half* dst = (is_k && slot >= 0) ? k_cache + ((size_t)slot * nkv + (h - nh)) * hd : nullptr;
  for (int i = threadIdx.x; i < hd / 2; i += blockDim.x) {
    if (i < half_rot) {
      float s, c;
      sincosf(pos * f[i], &s, &c);
      const float x1 = __half2float(head[i]), x2 = __half2float(head[i + half_rot]);
      const half o1 = __float2half(x1 * c - x2 * s), o2 = __float2half(x2 * c + x1 * s);
      head[i] = o1;
      head[i + half_rot] = o2;
      if (dst) { dst[i] = o1; dst[i + half_rot] = o2; }
    } else if (dst) {  // unrotated tail [rot_dim, hd), two dims per pair index
      const int d = rot_dim + 2 * (i - half_rot);
      dst[d] = head[d];
      dst[d + 1] = head[d + 1];
    }
  }
}

void rope_kv_store_cuda(half* qkv, int ld, const int* positions, const float* inv_freq, int inv_freq_stride, int rot_dim, int ntok,
                        int nh, int nkv, int hd, half* k_cache, half* v_cache, const int* slots, int block_size,
                        cudaStream_t s) {
  if (ntok <= 0) return;
  if (rot_dim <= 0 || rot_dim > hd || rot_dim % 2 || hd % 2)
    fail(ErrorCode::InvalidArgument, "rope: rot_dim must be even and in (0, head_dim]");
  (void)block_size;
  const int heads = nh + nkv + (k_cache ? nkv : 0);
  rope_kv_store_kernel<<<dim3(ntok, heads), std::min(hd / 2, 256), 0, s>>>(qkv, ld, positions, inv_freq, inv_freq_stride,
                                                                          rot_dim, nh, nkv, hd, k_cache, v_cache, slots);
  LMF_CUDA_LAUNCHED();
}

}  // namespace lmfleet
