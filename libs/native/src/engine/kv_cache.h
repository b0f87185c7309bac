// Paged KV cache. BlockAllocator is the bookkeeping (a free list of fixed-size blocks; the scheduler only
// needs this, so it is tested without memory). KvCache adds the memory: per layer K and V pools
// [num_blocks, block_size, kv_heads * head_dim] on the backend, Backend::kv_element_bytes() per element (the
// KvView pointers are float* for the cpu decoder; the cuda decoder reads them as f16). Sequences own block tables (vectors of
// block ids) that the scheduler grows and frees.
#pragma once
#include <cstdint>
#include <list>
#include <unordered_map>
#include <vector>

#include "core/backend.h"
#include "engine/decoder.h"

namespace lmfleet {

// A sequence's progress through the prefix cache: how many of its leading blocks are matched or registered, and
// the identity of the last one (the chain continues from it).
struct PrefixChain {
  int64_t blocks = 0;
  uint64_t hash = 0;
  uint64_t serial = 0;  // 0: the root (no block yet)
};

class BlockAllocator {
 public:
  BlockAllocator(int64_t num_blocks, int64_t block_size);
  int64_t total() const { return total_; }
  // Blocks a grow can take: free ones plus cached ones no sequence holds (evicted, least recently used first).
  int64_t free_count() const { return (int64_t)(free_.size() + lru_.size()); }
  int64_t block_size() const { return block_size_; }
  int64_t blocks_for(int64_t tokens) const { return (tokens + block_size_ - 1) / block_size_; }
  bool can_allocate(int64_t n) const { return n <= free_count(); }
  // Grows `table` to hold `tokens` tokens; false (and no change) when there aren't enough free blocks.
  bool grow(std::vector<int32_t>& table, int64_t tokens);
  // Drops the table's hold on each of its blocks and clears it. A block no one holds any more goes back to the free
  // list, or, when it is in the prefix cache, stays there (evictable) until a grow needs it.
  void release(std::vector<int32_t>& table);

  // Prefix caching (LMDeploy's --enable-prefix-caching, vLLM's automatic prefix caching): full blocks whose K/V are
  // computed are registered under their content (their tokens and the chain of blocks before them), and a new
  // sequence whose leading tokens match takes those blocks instead of computing them. Shared blocks are never written:
  // only full blocks are shared, and a sequence computes from the block after its last matched one.
  void set_prefix_caching(bool on) { prefix_caching_ = on; }
  bool prefix_caching() const { return prefix_caching_; }
  // Appends to `table` (which must be empty, chain at the root) the cached blocks that hold `tokens`' first full
  // blocks, at most `max_blocks` of them, each now held by the table too; returns how many.
  int64_t match(const int32_t* tokens, int64_t max_blocks, std::vector<int32_t>& table, PrefixChain& chain);
  // Registers the table's blocks [chain.blocks, full_blocks) (their tokens from `tokens`) and advances the chain. A
  // block whose content is already cached in another block stays unregistered; the chain goes on through the other.
  void commit(const std::vector<int32_t>& table, const int32_t* tokens, int64_t full_blocks, PrefixChain& chain);
  int64_t cached_blocks() const { return (int64_t)by_hash_.size(); }

 private:
  int32_t take();  // one block: a free one, else the least recently released cached one (evicted)
  void unregister(int32_t b);
  void unlist(int32_t b);  // out of the evictable list, if it is there
  uint64_t content_hash(uint64_t parent, const int32_t* tokens) const;

  int64_t total_, block_size_;
  std::vector<int32_t> free_;  // stack: lowest ids handed out first
  std::vector<int32_t> refs_;  // tables holding each block
  bool prefix_caching_ = false;
  // Per block, while registered: its content's hash, a serial number never reused, its parent's serial, its tokens.
  std::vector<uint64_t> hash_, serial_, parent_;
  std::vector<std::vector<int32_t>> tokens_;
  std::unordered_map<uint64_t, int32_t> by_hash_;
  // Registered blocks no table holds, least recently released first (a list with each block's position).
  std::list<int32_t> lru_;
  std::vector<std::list<int32_t>::iterator> lru_pos_;
  uint64_t next_serial_ = 1;
};

struct KvCacheOptions {
  int64_t block_size = 64;
  int64_t num_blocks = 0;            // > 0: exact
  double cache_max_entry_count = 0;  // else: this fraction of available memory
  int64_t max_useful_blocks = 0;     // cap for the fraction rule (cpu: don't reserve more than can be used)
  int quant_policy = 0;              // the model's kv_quant_policy (0 float, 8 int8, 4 int4)
  int64_t head_dim = 0;              // needed when quant_policy != 0 (kv_heads = kv_width / head_dim)
  int64_t memory_shared_by = 1;      // tensor-parallel ranks whose caches share this memory (cpu: all of them)
};

class KvCache {
 public:
  KvCache(Backend& be, int64_t layers, int64_t kv_width, const KvCacheOptions& opts);
  BlockAllocator& blocks() { return alloc_; }
  const KvView& view() const { return view_; }
  // Tensor parallelism: the same blocks for ranks 1..tp-1 of `model` (rank 0's cache is this one), each rank's
  // KV heads on its own backend; view().peers holds them.
  void add_rank_pools(class Model& model, int64_t head_dim, int quant_policy);
  size_t bytes() const { return mem_.bytes(); }
  // elem_bytes: Backend::kv_element_bytes() (cpu 4, cuda 2: its decoder keeps the cache in f16). A quantized
  // cache (quant_policy 8/4) needs kv_width * bits / 8 bytes per token plus 8 bytes of (scale, zero) per kv head,
  // so the same budget holds ~1.9x (int8) / ~3.5x (int4) more blocks than f16 at head_dim 128.
  static int64_t bytes_per_block(int64_t layers, int64_t kv_width, int64_t block_size, int64_t elem_bytes = 4,
                                 int quant_policy = 0, int64_t head_dim = 0);

 private:
  static int64_t pool_head_dim(int64_t kv_width, const KvCacheOptions& o) { return o.quant_policy ? o.head_dim : kv_width; }
  Buffer mem_;
  std::vector<Buffer> peer_mem_;
  BlockAllocator alloc_;
  KvView view_;
};

// available_memory_bytes() (free host memory) is declared in core/backend.h.

}  // namespace lmfleet
