#include "engine/kv_cache.h"

#include <algorithm>
#include <fstream>
#include <string>

#include "core/error.h"

namespace lmfleet {

BlockAllocator::BlockAllocator(int64_t num_blocks, int64_t block_size) : total_(num_blocks), block_size_(block_size) {
  if (num_blocks <= 0 || block_size <= 0) fail(ErrorCode::InvalidArgument, "kv cache: numBlocks and blockSize must be > 0");
  free_.reserve((size_t)num_blocks);
  for (int64_t i = num_blocks - 1; i >= 0; i--) free_.push_back((int32_t)i);
}

bool BlockAllocator::grow(std::vector<int32_t>& table, int64_t tokens) {
  int64_t need = blocks_for(tokens) - (int64_t)table.size();
  if (need <= 0) return true;
  if (need > free_count()) return false;
  for (int64_t i = 0; i < need; i++) {
    table.push_back(free_.back());
    free_.pop_back();
  }
  return true;
}

void BlockAllocator::release(std::vector<int32_t>& table) {
  for (auto it = table.rbegin(); it != table.rend(); ++it) free_.push_back(*it);
  table.clear();
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
int64_t resolve_blocks(const Backend& be, int64_t layers, int64_t kv_width, const KvCacheOptions& o) {
  if (o.num_blocks > 0) return o.num_blocks;
  double frac = o.cache_max_entry_count > 0 ? o.cache_max_entry_count : 0.8;
  if (frac > 1) fail(ErrorCode::InvalidArgument, "cacheMaxEntryCount must be in (0, 1] (or pass numBlocks)");
  int64_t per = KvCache::bytes_per_block(layers, kv_width, o.block_size, (int64_t)be.kv_element_bytes());
  int64_t n = (int64_t)(frac * (double)be.available_memory_bytes()) / per;
  if (o.max_useful_blocks > 0) n = std::min(n, o.max_useful_blocks);
  if (n <= 0) fail(ErrorCode::OutOfKvCache, "kv cache: not enough free memory for a single block");
  return n;
}
}  // namespace

KvCache::KvCache(Backend& be, int64_t layers, int64_t kv_width, const KvCacheOptions& opts)
    : alloc_(resolve_blocks(be, layers, kv_width, opts), opts.block_size) {
  const int64_t nb = alloc_.total(), bs = opts.block_size, eb = (int64_t)be.kv_element_bytes();
  mem_ = Buffer(&be, (size_t)bytes_per_block(layers, kv_width, bs, eb) * nb);
  view_.num_blocks = nb;
  view_.block_size = bs;
  const size_t per_layer = (size_t)(nb * bs * kv_width * eb);  // bytes of one layer's K (or V) pool
  char* base = mem_.as<char>();
  for (int64_t l = 0; l < layers; l++) {
    view_.k.push_back(reinterpret_cast<float*>(base + (size_t)(2 * l) * per_layer));
    view_.v.push_back(reinterpret_cast<float*>(base + (size_t)(2 * l + 1) * per_layer));
  }
}

}  // namespace lmfleet
