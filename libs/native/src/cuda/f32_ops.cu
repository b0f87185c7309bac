#include "cuda/check.cuh"
#include "cuda/device_utils.cuh"
#include "cuda/f32_ops.cuh"

namespace lmfleet {

namespace {
inline unsigned grid_for(int64_t n, int threads = 256) {
  int64_t b = (n + threads - 1) / threads;
  return (unsigned)(b > 65535LL * 16 ? 65535LL * 16 : (b < 1 ? 1 : b));
}
#define LMF_GRID_STRIDE(i, n) \
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < (n); i += (int64_t)gridDim.x * blockDim.x)

__global__ void embedding_f32_kernel(const int* ids, const float* table, float* out, int64_t hidden, float scale) {
  const int64_t r = blockIdx.x;
  const float* src = table + (int64_t)ids[r] * hidden;
  for (int64_t i = threadIdx.x; i < hidden; i += blockDim.x) out[r * hidden + i] = src[i] * scale;
}
__global__ void rms_norm_f32_kernel(const float* x, const float* w, float* out, int64_t dim, float eps) {
  __shared__ float scr[32];
  const float* xr = x + blockIdx.x * dim;
  float ss = 0.f;
  for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) ss += xr[i] * xr[i];
  ss = block_sum(ss, scr);
  const float r = rsqrtf(ss / dim + eps);
  for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) out[blockIdx.x * dim + i] = xr[i] * r * w[i];
}
__global__ void add_f32_kernel(const float* a, const float* b, float* out, int64_t n) {
  LMF_GRID_STRIDE(i, n) out[i] = a[i] + b[i];
}
__global__ void silu_mul_f32_kernel(const float* g, const float* u, int64_t ld, float* out, int64_t rows, int64_t n, int act) {
  LMF_GRID_STRIDE(i, rows * n) {
    const int64_t r = i / n, c = i % n;
    const float gv = g[r * ld + c];
    out[i] = act == 2   ? gelu_mul_f32<2>(gv, u[r * ld + c])
             : act == 1 ? gelu_mul_f32<1>(gv, u[r * ld + c])
                        : gv / (1.f + expf(-gv)) * u[r * ld + c];
  }
}
__global__ void rope_f32_kernel(float* x, int64_t ld, int64_t heads, int64_t hd, int64_t rot, const int* positions,
                                const float* inv_freq, int64_t stride, float cs_scale) {
  const int64_t t = blockIdx.x;
  const float pos = (float)positions[t];
  const float* f = inv_freq + t * stride;
  const int64_t half_rot = rot / 2;
  for (int64_t i = threadIdx.x; i < heads * half_rot; i += blockDim.x) {
    const int64_t h = i / half_rot, j = i % half_rot;
    float* p = x + t * ld + h * hd;
    float sn, cs;
    sincosf(pos * f[j], &sn, &cs);
    sn *= cs_scale;
    cs *= cs_scale;
    const float a = p[j], b = p[j + half_rot];
    p[j] = a * cs - b * sn;
    p[j + half_rot] = b * cs + a * sn;
  }
}
__global__ void kv_store_f32_kernel(const float* k, const float* v, int64_t ld, const int* slots, int64_t width,
                                    float* kc, float* vc) {
  const int64_t t = blockIdx.x;
  const int slot = slots[t];
  if (slot < 0) return;
  for (int64_t i = threadIdx.x; i < width; i += blockDim.x) {
    kc[(int64_t)slot * width + i] = k[t * ld + i];
    vc[(int64_t)slot * width + i] = v[t * ld + i];
  }
}
// grid (tokens, heads), 128 threads
__global__ void attention_f32_kernel(const float* q, int64_t ldq, float* out, const float* kc, const float* vc, int64_t bs,
                                     const int* bt, int64_t max_blocks, const int* seq_info, const int* tok_seq,
                                     int64_t heads, int64_t kvh_n, int64_t hd, float scale, float* scores,
                                     int64_t max_ctx, int64_t window, float softcap) {
  __shared__ float scr[32];
  const int64_t t = blockIdx.x, h = blockIdx.y;
  const int s = tok_seq[t];
  const int q_start = seq_info[3 * s], q_len = seq_info[3 * s + 1], ctx = seq_info[3 * s + 2];
  const int64_t pos = ctx - q_len + (t - q_start);
  const int64_t lo = window > 0 && pos + 1 > window ? pos + 1 - window : 0;  // sliding window: keys [lo, pos]
  const int64_t kvh = h / (heads / kvh_n), width = kvh_n * hd;
  const float* qr = q + t * ldq + h * hd;
  float* sc = scores + (t * heads + h) * max_ctx;
  const int* table = bt + (int64_t)s * max_blocks;
  float mx = -INFINITY;
  for (int64_t p = lo + threadIdx.x; p <= pos; p += blockDim.x) {
    const float* kr = kc + ((int64_t)table[p / bs] * bs + p % bs) * width + kvh * hd;
    float d = 0.f;
    for (int64_t i = 0; i < hd; i++) d += qr[i] * kr[i];
    d *= scale;
    if (softcap > 0.f) d = softcap * tanhf(d / softcap);
    sc[p] = d;
    mx = fmaxf(mx, d);
  }
  mx = block_max(mx, scr);
  float sum = 0.f;
  for (int64_t p = lo + threadIdx.x; p <= pos; p += blockDim.x) sum += (sc[p] = expf(sc[p] - mx));
  sum = block_sum(sum, scr);  // (its barriers also order the score writes before the reads below)
  for (int64_t d = threadIdx.x; d < hd; d += blockDim.x) {
    float acc = 0.f;
    for (int64_t p = lo; p <= pos; p++) acc += sc[p] * vc[((int64_t)table[p / bs] * bs + p % bs) * width + kvh * hd + d];
    out[(t * heads + h) * hd + d] = acc / sum;
  }
}
__global__ void f32_to_f16_kernel(const float* x, half* y, int64_t n) { LMF_GRID_STRIDE(i, n) y[i] = __float2half(x[i]); }
__global__ void f16_to_f32_kernel(const half* x, float* y, int64_t n) { LMF_GRID_STRIDE(i, n) y[i] = __half2float(x[i]); }
__global__ void add_bias_f32_kernel(float* y, int64_t ld, const half* bias, int64_t rows, int64_t cols) {
  LMF_GRID_STRIDE(i, rows * cols) y[(i / cols) * ld + i % cols] += __half2float(bias[i % cols]);
}
}  // namespace

void embedding_f32_cuda(const int* ids, const float* table, float* out, int64_t n, int64_t hidden, cudaStream_t s,
                        float scale) {
  if (n <= 0) return;
  embedding_f32_kernel<<<(unsigned)n, 256, 0, s>>>(ids, table, out, hidden, scale);
  LMF_CUDA_LAUNCHED();
}
void rms_norm_f32_cuda(const float* x, const float* w, float* out, int64_t rows, int64_t dim, float eps, cudaStream_t s) {
  if (rows <= 0) return;
  rms_norm_f32_kernel<<<(unsigned)rows, 256, 0, s>>>(x, w, out, dim, eps);
  LMF_CUDA_LAUNCHED();
}
void add_f32_cuda(const float* a, const float* b, float* out, int64_t n, cudaStream_t s) {
  if (n <= 0) return;
  add_f32_kernel<<<grid_for(n), 256, 0, s>>>(a, b, out, n);
  LMF_CUDA_LAUNCHED();
}
void silu_mul_f32_cuda(const float* gate, const float* up, int64_t ld, float* out, int64_t rows, int64_t n,
                       cudaStream_t s, int act) {
  if (rows * n <= 0) return;
  silu_mul_f32_kernel<<<grid_for(rows * n), 256, 0, s>>>(gate, up, ld, out, rows, n, act);
  LMF_CUDA_LAUNCHED();
}
void rope_f32_cuda(float* x, int64_t ld, int64_t tokens, int64_t heads, int64_t head_dim, int64_t rot_dim,
                   const int* positions, const float* inv_freq, int64_t inv_freq_stride, cudaStream_t s, float cs_scale) {
  if (tokens <= 0) return;
  rope_f32_kernel<<<(unsigned)tokens, 256, 0, s>>>(x, ld ? ld : heads * head_dim, heads, head_dim, rot_dim, positions, inv_freq,
                                                   inv_freq_stride, cs_scale);
  LMF_CUDA_LAUNCHED();
}
void kv_store_f32_cuda(const float* k, const float* v, int64_t ld, const int* slots, int64_t tokens, int64_t width,
                       float* k_cache, float* v_cache, cudaStream_t s) {
  if (tokens <= 0) return;
  kv_store_f32_kernel<<<(unsigned)tokens, 256, 0, s>>>(k, v, ld ? ld : width, slots, width, k_cache, v_cache);
  LMF_CUDA_LAUNCHED();
}
void attention_f32_cuda(const float* q, int64_t ldq, float* out, const float* k_cache, const float* v_cache, int64_t block_size,
                        const int* block_tables, int64_t max_blocks, const int* seq_info, const int* tok_seq,
                        int64_t tokens, int64_t heads, int64_t kv_heads, int64_t head_dim, float scale, float* scores,
                        int64_t max_ctx, cudaStream_t s, int64_t window, float softcap) {
  if (tokens <= 0) return;
  attention_f32_kernel<<<dim3((unsigned)tokens, (unsigned)heads), 128, 0, s>>>(
      q, ldq ? ldq : heads * head_dim, out, k_cache, v_cache, block_size, block_tables, max_blocks, seq_info, tok_seq, heads, kv_heads, head_dim,
      scale, scores, max_ctx, window, softcap);
  LMF_CUDA_LAUNCHED();
}
void f32_to_f16_cuda(const float* x, half* y, int64_t n, cudaStream_t s) {
  if (n <= 0) return;
  f32_to_f16_kernel<<<grid_for(n), 256, 0, s>>>(x, y, n);
  LMF_CUDA_LAUNCHED();
}
void f16_to_f32_cuda(const half* x, float* y, int64_t n, cudaStream_t s) {
  if (n <= 0) return;
  f16_to_f32_kernel<<<grid_for(n), 256, 0, s>>>(x, y, n);
  LMF_CUDA_LAUNCHED();
}
void add_bias_f32_cuda(float* y, int64_t ld, const half* bias, int64_t rows, int64_t cols, cudaStream_t s) {
  if (rows * cols <= 0) return;
  add_bias_f32_kernel<<<grid_for(rows * cols), 256, 0, s>>>(y, ld, bias, rows, cols);
  LMF_CUDA_LAUNCHED();
}

}  // namespace lmfleet
