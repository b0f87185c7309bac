// f32-activation kernels for the op-level Backend interface (runOp, specs): the same functions as the CPU
// backend's ops on device memory, written plainly. The decoder's hot path does not use these: it runs the
// f16 kernels of ops/*.cu (see cuda_decoder.h).
#pragma once
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace lmfleet {
void embedding_f32_cuda(const int* ids, const float* table, float* out, int64_t n, int64_t hidden, cudaStream_t s,
                        float scale = 1.f);
void rms_norm_f32_cuda(const float* x, const float* w, float* out, int64_t rows, int64_t dim, float eps, cudaStream_t s);
void add_f32_cuda(const float* a, const float* b, float* out, int64_t n, cudaStream_t s);
void silu_mul_f32_cuda(const float* gate, const float* up, int64_t ld, float* out, int64_t rows, int64_t n,
                       cudaStream_t s, int act = 0);  // act: Activation's value (ops/silu_mul.h)
// x [tokens, heads, head_dim] in place, token rows ld floats apart; inv_freq [rot/2] or per token (inv_freq_stride).
void rope_f32_cuda(float* x, int64_t ld, int64_t tokens, int64_t heads, int64_t head_dim, int64_t rot_dim,
                   const int* positions, const float* inv_freq, int64_t inv_freq_stride, cudaStream_t s, float cs_scale = 1.f);
// cache rows of `width` floats, row = slot; k/v token rows ld floats apart.
void kv_store_f32_cuda(const float* k, const float* v, int64_t ld, const int* slots, int64_t tokens, int64_t width,
                       float* k_cache, float* v_cache, cudaStream_t s);
// Plain causal paged attention; tok_seq [tokens] maps each query token to its sequence; seq_info [S,3] device;
// scores: workspace of tokens * heads * max_ctx floats.
// q rows (one per token) ldq floats apart; out dense [tokens, heads, head_dim].
void attention_f32_cuda(const float* q, int64_t ldq, float* out, const float* k_cache, const float* v_cache, int64_t block_size,
                        const int* block_tables, int64_t max_blocks, const int* seq_info, const int* tok_seq,
                        int64_t tokens, int64_t heads, int64_t kv_heads, int64_t head_dim, float scale, float* scores,
                        int64_t max_ctx, cudaStream_t s, int64_t window = 0, float softcap = 0.f);
void f32_to_f16_cuda(const float* x, half* y, int64_t n, cudaStream_t s);
void f16_to_f32_cuda(const half* x, float* y, int64_t n, cudaStream_t s);
// y[r, c] += bias[c] (f32 rows of ld)
void add_bias_f32_cuda(float* y, int64_t ld, const half* bias, int64_t rows, int64_t cols, cudaStream_t s);
}  // namespace lmfleet
