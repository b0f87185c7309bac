#include <algorithm>
#include "cuda/check.cuh"
#include "cuda/device_utils.cuh"
#include "ops/kv_quant.h"
#include "ops/linear.cuh"
#include "ops/rope.cuh"

namespace lmfleet {

// grid (ntok, nh + 2*nkv heads), hd/2 threads: q/k heads rotate one pair (i, i + rot/2) per thread (k also
// goes to the cache, with its unrotated tail), v heads copy two dims per thread into the cache.
// Quantizes one (token, kv head) row of hd f16 values (already final: roped k, or v) into the cache: block-wide
// min/max, then every thread packs two values. All threads of the block call it.
__device__ void quantize_row_store(const half* x, int hd, int row, uint8_t* cache, float* param, const float* fixed,
                                   int policy) {
  __shared__ float smn[256], smx[256];
  __shared__ float sz[2];
  float scale, zero;
  if (fixed) {
    scale = fixed[0];
    zero = fixed[1];
  } else {
    float mn = INFINITY, mx = -INFINITY;
    for (int d = threadIdx.x; d < hd; d += blockDim.x) {
      const float v = __half2float(x[d]);
      mn = fminf(mn, v);
      mx = fmaxf(mx, v);
    }
    smn[threadIdx.x] = mn;
    smx[threadIdx.x] = mx;
    __syncthreads();
    for (int st = 1; st < (int)blockDim.x; st *= 2) {
      if (threadIdx.x % (2 * st) == 0 && threadIdx.x + st < blockDim.x) {
        smn[threadIdx.x] = fminf(smn[threadIdx.x], smn[threadIdx.x + st]);
        smx[threadIdx.x] = fmaxf(smx[threadIdx.x], smx[threadIdx.x + st]);
      }
      __syncthreads();
    }
    if (threadIdx.x == 0) kv_quant_params(smn[0], smx[0], policy, &sz[0], &sz[1]);
    __syncthreads();
    scale = sz[0];
    zero = sz[1];
  }
  const float inv = kv_quant_inv_scale(scale);
  const int qmax = kv_quant_qmax(policy);
  uint8_t* dst = cache + (size_t)row * kv_quant_row_bytes(policy, hd);
  for (int d = 2 * threadIdx.x; d < hd; d += 2 * blockDim.x) {
    const int q0 = kv_quant_one(__half2float(x[d]), inv, zero, qmax), q1 = kv_quant_one(__half2float(x[d + 1]), inv, zero, qmax);
    if (policy == 8) {
      dst[d] = (uint8_t)q0;
      dst[d + 1] = (uint8_t)q1;
    } else {
      dst[d / 2] = (uint8_t)(q0 | (q1 << 4));
    }
  }
  if (threadIdx.x == 0) {
    param[2 * (size_t)row] = scale;
    param[2 * (size_t)row + 1] = zero;
  }
}

// 1 / rms of one head's hd f16 values (every thread of the block calls it; any blockDim.x <= 256)
__device__ float head_rms_inv(const half* head, int hd, float eps) {
  __shared__ float red[256];
  float ss = 0.f;
  for (int d = threadIdx.x; d < hd; d += blockDim.x) {
    const float v = __half2float(head[d]);
    ss += v * v;
  }
  red[threadIdx.x] = ss;
  __syncthreads();
  for (int st = 1; st < (int)blockDim.x; st *= 2) {
    if (threadIdx.x % (2 * st) == 0 && threadIdx.x + st < blockDim.x) red[threadIdx.x] += red[threadIdx.x + st];
    __syncthreads();
  }
  return rsqrtf(red[0] / (float)hd + eps);
}

// One head value as the rotation reads it: the stored f16, or (qk norm) w * f16(x * inv) rounded to f16.
__device__ __forceinline__ float head_val(const half* head, int d, const half* nw, float inv) {
  const float v = __half2float(head[d]);
  return nw ? __half2float(__float2half(__half2float(nw[d]) * __half2float(__float2half(v * inv)))) : v;
}

__global__ void rope_kv_store_kernel(half* qkv, int ld, const int* __restrict__ positions,
                                     const float* __restrict__ inv_freq, int inv_freq_stride, int rot_dim, int nh,
                                     int nkv, int hd, half* k_cache, half* v_cache, const int* __restrict__ slots,
                                     KvQuantArgs quant, QkNormArgs qk, float cs_scale, int pre) {
  pdl_trigger();  // the decode attention after it may launch (it waits for this kernel before reading)
  const int t = blockIdx.x, h = blockIdx.y;
  half* row = qkv + (size_t)t * ld;
  // pre (pdl_preload): the slot, and this thread's first rope angle, from the host-staged positions / frequencies
  // before the wait; computed the same way as below
  int slot = -1;
  float s0 = 0.f, c0 = 1.f;
  const bool rot0 = pre && h < nh + nkv && (int)threadIdx.x < rot_dim / 2;
  if (pre) {
    slot = k_cache ? slots[t] : -1;
    if (rot0) sincosf((float)positions[t] * inv_freq[(size_t)t * inv_freq_stride + threadIdx.x], &s0, &c0);
  }
  pdl_wait();     // launched as a programmatic dependent (pdl_chain_enabled) of the qkv projection
  if (!pre) slot = k_cache ? slots[t] : -1;
  if (quant.policy && h >= nh) {  // quantized cache: k heads rope in place first, then k and v rows quantize
    const bool is_v = h >= nh + nkv;
    const int kvh = is_v ? h - nh - nkv : h - nh;
    half* head = row + (size_t)h * hd;
    if (!is_v) {
      const float pos = (float)positions[t];
      const float* f = inv_freq + (size_t)t * inv_freq_stride;
      const int half_rot = rot_dim / 2;
      const half* nw = qk.k_w;
      const float inv = nw ? head_rms_inv(head, hd, qk.eps) : 1.f;
      for (int i = threadIdx.x; i < hd / 2; i += blockDim.x) {
        if (i < half_rot) {
          float s = s0, c = c0;
          if (!(rot0 && i == (int)threadIdx.x)) sincosf(pos * f[i], &s, &c);
          rope_pair_f16(head_val(head, i, nw, inv), head_val(head, i + half_rot, nw, inv), s * cs_scale, c * cs_scale,
                        head[i], head[i + half_rot]);
        } else if (nw) {  // the normed, unrotated tail
          const int d = rot_dim + 2 * (i - half_rot);
          const half a = __float2half(head_val(head, d, nw, inv)), b = __float2half(head_val(head, d + 1, nw, inv));
          head[d] = a;
          head[d + 1] = b;
        }
      }
      __syncthreads();
    }
    if (slot < 0) return;  // uniform over the block
    quantize_row_store(head, hd, slot * nkv + kvh, reinterpret_cast<uint8_t*>(is_v ? v_cache : k_cache),
                       is_v ? quant.v_param : quant.k_param,
                       is_v ? (quant.v_static ? quant.v_static + 2 * kvh : nullptr) : (quant.k_static ? quant.k_static + 2 * kvh : nullptr),
                       quant.policy);
    return;
  }
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
  const half* nw = is_k ? qk.k_w : qk.q_w;  // both set or both null
  const float inv = nw ? head_rms_inv(head, hd, qk.eps) : 1.f;
  for (int i = threadIdx.x; i < hd / 2; i += blockDim.x) {
    if (i < half_rot) {
      float s = s0, c = c0;
      if (!(rot0 && i == (int)threadIdx.x)) sincosf(pos * f[i], &s, &c);
      half o1, o2;
      rope_pair_f16(head_val(head, i, nw, inv), head_val(head, i + half_rot, nw, inv), s * cs_scale, c * cs_scale, o1, o2);
      head[i] = o1;
      head[i + half_rot] = o2;
      if (dst) { dst[i] = o1; dst[i + half_rot] = o2; }
    } else if (dst || nw) {  // unrotated tail [rot_dim, hd), two dims per pair index (normed in place with qk norm)
      const int d = rot_dim + 2 * (i - half_rot);
      const half a = __float2half(head_val(head, d, nw, inv)), b = __float2half(head_val(head, d + 1, nw, inv));
      if (nw) { head[d] = a; head[d + 1] = b; }
      if (dst) { dst[d] = a; dst[d + 1] = b; }
    }
  }
}

void rope_kv_store_cuda(half* qkv, int ld, const int* positions, const float* inv_freq, int inv_freq_stride, int rot_dim, int ntok,
                        int nh, int nkv, int hd, half* k_cache, half* v_cache, const int* slots, int block_size,
                        cudaStream_t s, const KvQuantArgs& quant, const QkNormArgs& qk, float cs_scale) {
  if (ntok <= 0) return;
  if (!qk.q_w != !qk.k_w) fail(ErrorCode::InvalidArgument, "rope: the q and k norm weights come together");
  if (rot_dim <= 0 || rot_dim > hd || rot_dim % 2 || hd % 2)
    fail(ErrorCode::InvalidArgument, "rope: rot_dim must be even and in (0, head_dim]");
  if (!kv_quant_policy_valid(quant.policy)) fail(ErrorCode::InvalidArgument, "kv store: quant_policy must be 0, 4 or 8");
  if (quant.policy && (!k_cache || !quant.k_param || !quant.v_param))
    fail(ErrorCode::InvalidArgument, "kv store: a quantized cache needs the cache and param buffers");
  (void)block_size;
  const int heads = nh + nkv + (k_cache ? nkv : 0);
  LMF_CUDA_CHECK(launch_maybe_pdl(pdl_chain_enabled(), rope_kv_store_kernel, dim3(ntok, heads), dim3(std::min(hd / 2, 256)),
                                  s, qkv, ld, positions, inv_freq, inv_freq_stride, rot_dim, nh, nkv, hd, k_cache, v_cache,
                                  slots, quant, qk, cs_scale, pdl_preload() ? 1 : 0));
}

}  // namespace lmfleet
