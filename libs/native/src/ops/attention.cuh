#pragma once
#include <cuda_fp16.h>
#include <cuda_runtime.h>

namespace lmfleet {

// Paged KV cache: per layer k_cache/v_cache [num_blocks, block_size, nkv, hd] (the CPU backend's layout, f16); block_tables [batch, max_blocks]
// maps a sequence's token t to block block_tables[b][t / block_size], row t % block_size.
// head_dim: 16, 32, 64, 96, 128 or 256 for the f16 cache. quant_policy 8 / 4 (ops/kv_quant.h; the same head dims): k_cache /
// v_cache hold int8 / int4 rows (bytes, passed as half*) and k_param / v_param [slots, nkv, 2] f32 their (scale, zero);
// both kernels dequantize as they load (decode: in registers; prefill: into the shared-memory tile).

// Decode attention: one query token per sequence (position ctx_lens[b] - 1, whose k/v are already in the cache).
// q: [batch, nh*hd] with row stride ldq; out: [batch, nh*hd] with row stride ldo. GQA: q head h reads kv head
// h / (nh / nkv), any ratio (a block holds up to 8 query heads; larger groups run as several blocks per kv head). Flash-decoding: the context is cut into splits of split_len tokens; blocks of one sequence
// run in parallel and a second kernel merges them. The grid has max_splits splits per sequence whatever the
// context (graph-safe: contexts may grow between replays up to max_splits * split_len tokens).
// workspace: attention_decode_workspace_bytes(batch, nh, hd, max_splits) bytes of device memory.
size_t attention_decode_workspace_bytes(int batch, int nh, int hd, int max_splits);
// The split length CudaDecoder (and the benchmarks) use for `pairs` (sequence, kv head) pairs and contexts up to
// max_ctx tokens: short splits when few pairs would leave SMs idle; one split of 256 (no combine) when 256-1023 pairs
// fill the GPU and the contexts are short. Session 16 (test/bench/RESULTS.md): in bench_attention the one split beat
// 128 / 64 by 2-5 us per layer at 256-2048 pairs and 136-192 tokens, and 128 was as fast or faster from 512 tokens on;
// in the engine it made batch 16 (512 pairs) 2.5% faster, fp16 and W4 alike, but not batch 64 (2048 pairs: +0.3 /
// +0.7%, within the runs' spread), which keeps 128. At 256-511 pairs 128 beat 64 from 1000 tokens on.
inline int attention_decode_split_len(int pairs, int max_ctx) {
  if (pairs < 128) return 32;
  if (pairs >= 256 && pairs < 1024 && max_ctx <= 256) return 256;
  return pairs < 256 ? 64 : 128;
}
// With the PDL preload on (linear.cuh pdl_preload) and an f16 cache, the decode attention loads the K and V rows of its
// split's first 32 tokens, all but the newest, before griddepcontrol.wait (the rope + KV store kernel before it writes
// only the newest). Default on; LMFLEET_ATTN_PREFETCH=0 off (read at each launch).
bool attn_prefetch();
// the online-softmax decode kernel (K and V rows of a round loaded together; default), LMFLEET_ATTN_ONLINE=0: the
// two-phase kernel
bool attn_online();
void attention_decode_cuda(const half* q, int ldq, const half* k_cache, const half* v_cache,
                           const int* block_tables, int max_blocks, const int* ctx_lens, half* out, int ldo,
                           int batch, int nh, int nkv, int hd, int block_size, float scale, int split_len,
                           int max_splits, void* workspace, cudaStream_t s, int quant_policy = 0,
                           const float* k_param = nullptr, const float* v_param = nullptr, int window = 0,
                           bool prefetch_ok = true, float softcap = 0.f);
// prefetch_ok false: no K / V rows before griddepcontrol.wait, whatever attn_prefetch says. For steps where the kernel
// before this one wrote more than each sequence's newest row (a speculative verification step run as one-token
// sequences: the j-th reads the j rows before it, written in the same step).

// Prefill attention (causal, tensor cores): num_seqs sequences; sequence b has q_lens[b] new tokens whose q rows
// start at row q_starts[b] of q ([ntok, nh*hd], row stride ldq), and ctx_lens[b] tokens in the cache including
// the new ones (history first). New token i sits at position ctx_lens[b] - q_lens[b] + i and sees keys <= it.
// max_q_len bounds q_lens (grid size). out rows are the q rows (row stride ldo).
// window > 0 (both kernels): sliding-window attention, a query at position p sees keys (p - window, p] only (the
// window's keys stay in the cache; the decode splits cover [ctx - window, ctx), so max_splits may count the window).
void attention_prefill_cuda(const half* q, int ldq, const half* k_cache, const half* v_cache,
                            const int* block_tables, int max_blocks, const int* q_starts, const int* q_lens,
                            const int* ctx_lens, half* out, int ldo, int num_seqs, int max_q_len, int nh, int nkv,
                            int hd, int block_size, float scale, cudaStream_t s, int quant_policy = 0,
                            const float* k_param = nullptr, const float* v_param = nullptr, int window = 0,
                            float softcap = 0.f);
// softcap > 0 (both kernels; Gemma 2): each score x = scale q.k becomes softcap tanh(x / softcap) before the softmax.
// Which prefill kernel runs: 1 = mma.sync flash-attention-2 (default), 0 = the WMMA kernel (kept as a cross-check).
extern int g_attention_prefill_impl;

}  // namespace lmfleet
