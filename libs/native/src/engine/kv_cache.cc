#include "engine/kv_cache.h"

#include <algorithm>
#include <fstream>
#include <string>

#include "core/error.h"
#include "engine/model.h"
#include "ops/kv_quant.h"

namespace lmfleet {

BlockAllocator::BlockAllocator(int64_t num_blocks, int64_t block_size) : total_(num_blocks), block_size_(block_size) {
  if (num_blocks <= 0 || block_size <= 0) fail(ErrorCode::InvalidArgument, "kv cache: numBlocks and blockSize must be > 0");
  free_.reserve((size_t)num_blocks);
  for (int64_t i = num_blocks - 1; i >= 0; i--) free_.push_back((int32_t)i);
  refs_.assign((size_t)num_blocks, 0);
  hash_.assign((size_t)num_blocks, 0);
  serial_.assign((size_t)num_blocks, 0);
  parent_.assign((size_t)num_blocks, 0);
  tokens_.resize((size_t)num_blocks);
  lru_pos_.resize((size_t)num_blocks, lru_.end());
}

int32_t BlockAllocator::take() {
  int32_t b;
  if (!free_.empty()) {
    b = free_.back();
    free_.pop_back();
  } else {
    b = lru_.front();  // caller checked free_count()
    unregister(b);
  }
  refs_[b] = 1;
  return b;
}

void BlockAllocator::unlist(int32_t b) {
  if (lru_pos_[b] == lru_.end()) return;
  lru_.erase(lru_pos_[b]);
  lru_pos_[b] = lru_.end();
}

void BlockAllocator::unregister(int32_t b) {
  unlist(b);
  auto it = by_hash_.find(hash_[b]);
  if (it != by_hash_.end() && it->second == b) by_hash_.erase(it);
  serial_[b] = 0;
  tokens_[b].clear();
}

bool BlockAllocator::grow(std::vector<int32_t>& table, int64_t tokens) {
  int64_t need = blocks_for(tokens) - (int64_t)table.size();
  if (need <= 0) return true;
  if (need > free_count()) return false;
  for (int64_t i = 0; i < need; i++) table.push_back(take());
  return true;
}

void BlockAllocator::release(std::vector<int32_t>& table) {
  // Last block first: of a released chain, the tail is evicted before the blocks it continues.
  for (auto it = table.rbegin(); it != table.rend(); ++it) {
    const int32_t b = *it;
    if (--refs_[b] > 0) continue;
    if (serial_[b]) {
      lru_pos_[b] = lru_.insert(lru_.end(), b);
    } else {
      free_.push_back(b);
    }
  }
  table.clear();
}

uint64_t BlockAllocator::content_hash(uint64_t parent, const int32_t* tokens) const {
  // splitmix64 over (parent, tokens): only a lookup key, every hit is checked against the stored tokens and parent.
  uint64_t h = parent ^ 0x9e3779b97f4a7c15ull;
  for (int64_t i = 0; i < block_size_; i++) {
    h += (uint64_t)(uint32_t)tokens[i] + 0x9e3779b97f4a7c15ull;
    h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ull;
    h = (h ^ (h >> 27)) * 0x94d049bb133111ebull;
    h ^= h >> 31;
  }
  return h;
}

int64_t BlockAllocator::match(const int32_t* tokens, int64_t max_blocks, std::vector<int32_t>& table, PrefixChain& chain) {
  if (!prefix_caching_) return 0;
  int64_t n = 0;
  for (; n < max_blocks; n++) {
    const int32_t* t = tokens + n * block_size_;
    const uint64_t h = content_hash(chain.hash, t);
    auto it = by_hash_.find(h);
    if (it == by_hash_.end()) break;
    const int32_t b = it->second;
    if (parent_[b] != chain.serial || !std::equal(t, t + block_size_, tokens_[b].begin())) break;
    if (refs_[b]++ == 0) unlist(b);
    table.push_back(b);
    chain = {chain.blocks + 1, h, serial_[b]};
  }
  return n;
}

void BlockAllocator::commit(const std::vector<int32_t>& table, const int32_t* tokens, int64_t full_blocks, PrefixChain& chain) {
  if (!prefix_caching_) return;
  for (int64_t i = chain.blocks; i < full_blocks && i < (int64_t)table.size(); i++) {
    const int32_t* t = tokens + i * block_size_;
    const uint64_t h = content_hash(chain.hash, t);
    const int32_t b = table[i];
    uint64_t serial;
    auto it = by_hash_.find(h);
    if (it != by_hash_.end() && parent_[it->second] == chain.serial && std::equal(t, t + block_size_, tokens_[it->second].begin())) {
      serial = serial_[it->second];  // the same content is cached already (another sequence computed it too)
    } else if (serial_[b]) {
      serial = serial_[b];  // registered before (a sequence that matched it)
    } else {
      if (it != by_hash_.end()) unregister(it->second);  // a hash collision: the newer content takes the key
      serial = next_serial_++;
      serial_[b] = serial;
      hash_[b] = h;
      parent_[b] = chain.serial;
      tokens_[b].assign(t, t + block_size_);
      by_hash_[h] = b;
    }
    chain = {i + 1, h, serial};
  }
}

int64_t available_memory_bytes() {
  std::ifstream f("/proc/meminfo");
  std::string key;
  int64_t kb = 0;
  while (f >> key >> kb) {
    if (key == "MemAvailable:") return kb * 1024;
    f.ignore(256, '\n');
  }
  return 0;
}

namespace {
int64_t align256(int64_t n) { return (n + 255) / 256 * 256; }
}  // namespace

int64_t kv_pool_bytes(int64_t slots, int64_t kv_heads, int64_t head_dim, int quant_policy, int64_t elem_bytes) {
  if (!quant_policy) return align256(slots * kv_heads * head_dim * elem_bytes);
  return align256(slots * kv_heads * kv_quant_row_bytes(quant_policy, head_dim)) + align256(slots * kv_heads * 2 * 4);
}

KvView make_kv_view(void* base, int64_t layers, int64_t num_blocks, int64_t block_size, int64_t kv_heads,
                    int64_t head_dim, int quant_policy, int64_t elem_bytes) {
  KvView v;
  v.num_blocks = num_blocks;
  v.block_size = block_size;
  v.quant_policy = quant_policy;
  const int64_t slots = num_blocks * block_size;
  const int64_t pool = kv_pool_bytes(slots, kv_heads, head_dim, quant_policy, elem_bytes);
  const int64_t data = quant_policy ? align256(slots * kv_heads * kv_quant_row_bytes(quant_policy, head_dim)) : pool;
  char* p = static_cast<char*>(base);
  for (int64_t l = 0; l < layers; l++) {
    char* k = p + (2 * l) * pool;
    char* vv = p + (2 * l + 1) * pool;
    v.k.push_back(reinterpret_cast<float*>(k));
    v.v.push_back(reinterpret_cast<float*>(vv));
    if (quant_policy) {
      v.k_param.push_back(reinterpret_cast<float*>(k + data));
      v.v_param.push_back(reinterpret_cast<float*>(vv + data));
    }
  }
  return v;
}

int64_t KvCache::bytes_per_block(int64_t layers, int64_t kv_width, int64_t block_size, int64_t elem_bytes,
                                 int quant_policy, int64_t head_dim) {
  if (!quant_policy) return 2 * layers * kv_width * block_size * elem_bytes;
  const int64_t heads = kv_width / head_dim;
  return 2 * layers * block_size * heads * (kv_quant_row_bytes(quant_policy, head_dim) + 8);
}

namespace {
int64_t resolve_blocks(const Backend& be, int64_t layers, int64_t kv_width, const KvCacheOptions& o) {
  if (o.num_blocks > 0) return o.num_blocks;
  double frac = o.cache_max_entry_count > 0 ? o.cache_max_entry_count : 0.8;
  if (frac > 1) fail(ErrorCode::InvalidArgument, "cacheMaxEntryCount must be in (0, 1] (or pass numBlocks)");
  int64_t per = KvCache::bytes_per_block(layers, kv_width, o.block_size, (int64_t)be.kv_element_bytes(), o.quant_policy,
                                         o.head_dim);
  int64_t n = (int64_t)(frac * (double)be.available_memory_bytes()) / (per * std::max<int64_t>(1, o.memory_shared_by));
  if (o.max_useful_blocks > 0) n = std::min(n, o.max_useful_blocks);
  if (n <= 0) fail(ErrorCode::OutOfKvCache, "kv cache: not enough free memory for a single block");
  return n;
}
}  // namespace

KvCache::KvCache(Backend& be, int64_t layers, int64_t kv_width, const KvCacheOptions& opts)
    : alloc_(resolve_blocks(be, layers, kv_width, opts), opts.block_size) {
  if (!kv_quant_policy_valid(opts.quant_policy)) fail(ErrorCode::InvalidArgument, "kv cache: quant_policy must be 0, 4 or 8");
  if (opts.quant_policy && (opts.head_dim <= 0 || kv_width % opts.head_dim || opts.head_dim % 2))
    fail(ErrorCode::InvalidArgument, "kv cache: a quantized cache needs an even head_dim dividing the kv width");
  const int64_t nb = alloc_.total(), bs = opts.block_size, eb = (int64_t)be.kv_element_bytes();
  const int64_t hd = pool_head_dim(kv_width, opts), heads = kv_width / hd;
  mem_ = Buffer(&be, (size_t)(2 * layers * kv_pool_bytes(nb * bs, heads, hd, opts.quant_policy, eb)));
  view_ = make_kv_view(mem_.get(), layers, nb, bs, heads, hd, opts.quant_policy, eb);
}

void KvCache::add_rank_pools(Model& model, int64_t head_dim, int quant_policy) {
  const int64_t nb = alloc_.total(), bs = alloc_.block_size();
  for (int r = 1; r < model.tp(); r++) {
    Model& rm = model.rank(r);
    Backend& be = rm.backend();
    const int64_t eb = (int64_t)be.kv_element_bytes(), kvh = rm.shard().kv_heads;
    peer_mem_.emplace_back(&be, (size_t)(2 * model.cfg().layers * kv_pool_bytes(nb * bs, kvh, head_dim, quant_policy, eb)));
    view_.peers.push_back(make_kv_view(peer_mem_.back().get(), model.cfg().layers, nb, bs, kvh, head_dim, quant_policy, eb));
  }
}

}  // namespace lmfleet
