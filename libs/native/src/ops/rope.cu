#include "cuda/check.cuh"
#include "cuda/device_utils.cuh"
#include "ops/rope.cuh"

namespace lmfleet {

// grid: ntok; block: threads stride over (nh + nkv) heads x hd/2 pairs for q/k, then nkv x hd for v.
__global__ void rope_kv_store_kernel(half* qkv, int ld, const int* __restrict__ positions,
                                     const float* __restrict__ inv_freq, int inv_freq_stride, int rot_dim, int nh, int nkv, int hd,
                                     half* k_cache, half* v_cache, const int* __restrict__ slots, int block_size) {
  const int t = blockIdx.x;
  half* row = qkv + (size_t)t * ld;
  const float pos = (float)positions[t];
  inv_freq += (size_t)t * inv_freq_stride;
  const int half_rot = rot_dim / 2;
  const int slot = k_cache ? slots[t] : -1;
  const int nqk = nh + nkv;
  // q and k: each thread handles one pair (i, i + half_rot) of one head; dims >= rot_dim are copied for k.
  const int pairs_per_head = hd / 2;  // covers rotated pairs and (for k) the unrotated tail, two dims per item
  for (int item = threadIdx.x; item < nqk * pairs_per_head; item += blockDim.x) {
    const int h = item / pairs_per_head, i = item % pairs_per_head;
    half* head = row + h * hd;
    const bool is_k = h >= nh;
    half* dst = nullptr;
    if (is_k && slot >= 0) dst = k_cache + ((size_t)slot * nkv + (h - nh)) * hd;
    if (i < half_rot) {
      float s, c;
      sincosf(pos * inv_freq[i], &s, &c);
      const float x1 = __half2float(head[i]), x2 = __half2float(head[i + half_rot]);
      const half o1 = __float2half(x1 * c - x2 * s), o2 = __float2half(x2 * c + x1 * s);
      head[i] = o1;
      head[i + half_rot] = o2;
      if (dst) { dst[i] = o1; dst[i + half_rot] = o2; }
    } else if (dst) {
      // unrotated tail dims [rot_dim, hd): pair index i maps to dims rot_dim + 2*(i - half_rot) + {0,1}
      const int d = rot_dim + 2 * (i - half_rot);
      dst[d] = head[d];
      dst[d + 1] = head[d + 1];
    }
  }
  if (slot >= 0) {
    const half* v = row + nqk * hd;
    for (int item = threadIdx.x; item < nkv * hd; item += blockDim.x) {
      const int h = item / hd, d = item % hd;
      v_cache[((size_t)slot * nkv + h) * hd + d] = v[h * hd + d];
    }
  }
}

void rope_kv_store_cuda(half* qkv, int ld, const int* positions, const float* inv_freq, int inv_freq_stride, int rot_dim, int ntok,
                        int nh, int nkv, int hd, half* k_cache, half* v_cache, const int* slots, int block_size,
                        cudaStream_t s) {
  if (ntok <= 0) return;
  if (rot_dim <= 0 || rot_dim > hd || rot_dim % 2 || hd % 2)
    fail(ErrorCode::InvalidArgument, "rope: rot_dim must be even and in (0, head_dim]");
  rope_kv_store_kernel<<<ntok, 256, 0, s>>>(qkv, ld, positions, inv_freq, inv_freq_stride, rot_dim, nh, nkv, hd, k_cache, v_cache,
                                            slots, block_size);
  LMF_CUDA_LAUNCHED();
}

}  // namespace lmfleet
