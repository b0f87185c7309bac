#include "engine/model.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <thread>
#include <unordered_map>

#include "core/error.h"
#include "core/mapped_file.h"
#include "core/thread_pool.h"
#include "engine/decoder.h"
#include "ops/w4a16_gemm.h"

namespace lmfleet {

namespace {

std::string shape_str(const std::vector<int64_t>& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); i++) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

}  // namespace

// Resolves tensor names to bytes (memory-mapped file ranges or in-memory data) and checks shapes.
class TensorReader {
 public:
  explicit TensorReader(const std::vector<TensorSpec>& specs) {
    for (const auto& t : specs) {
      if (by_name_.count(t.name)) fail(ErrorCode::ModelFormat, "tensor " + t.name + " is listed twice");
      by_name_[t.name] = &t;
    }
  }
  bool has(const std::string& name) const { return by_name_.count(name) > 0; }

  // Returns f32 values of `name`, which must have `shape`.
  std::vector<float> f32(const std::string& name, const std::vector<int64_t>& shape) {
    const TensorSpec& t = spec(name, shape);
    if (t.dtype != DType::F32 && t.dtype != DType::F16 && t.dtype != DType::BF16)
      fail(ErrorCode::ModelFormat, "tensor " + name + ": dtype " + dtype_name(t.dtype) + " is not f32/f16/bf16");
    int64_t n = 1;
    for (auto d : shape) n *= d;
    std::vector<float> out((size_t)n);
    convert_to_f32(bytes(t, (size_t)n * dtype_size(t.dtype)), t.dtype, n, out.data());
    apply_scale(t, out);
    if (f16_range_ && (t.dtype != DType::F16 || !t.plain())) check_f16_range(t, out);
    return out;
  }

  // Rows [r0, r0 + nr) of a 2-D (or 1-D: elements) tensor `name` of `shape`, as f32 (tensor parallelism).
  std::vector<float> f32_rows(const std::string& name, const std::vector<int64_t>& shape, int64_t r0, int64_t nr) {
    if (r0 == 0 && nr == shape[0]) return f32(name, shape);
    const TensorSpec& t = spec(name, shape);
    check_float(t);
    const int64_t cols = shape.size() > 1 ? shape[1] : 1, es = (int64_t)dtype_size(t.dtype);
    int64_t n = 1;
    for (auto d : shape) n *= d;
    const uint8_t* all = bytes(t, (size_t)n * es);
    std::vector<float> out((size_t)(nr * cols));
    convert_to_f32(all + r0 * cols * es, t.dtype, nr * cols, out.data());
    apply_scale(t, out);
    if (f16_range_ && (t.dtype != DType::F16 || !t.plain())) check_f16_range(t, out);
    return out;
  }
  // Columns [c0, c0 + nc) of a 2-D tensor `name` of `shape`, as f32 (row-parallel linears).
  std::vector<float> f32_cols(const std::string& name, const std::vector<int64_t>& shape, int64_t c0, int64_t nc) {
    if (c0 == 0 && nc == shape[1]) return f32(name, shape);
    const TensorSpec& t = spec(name, shape);
    check_float(t);
    const int64_t rows = shape[0], cols = shape[1], es = (int64_t)dtype_size(t.dtype);
    const uint8_t* all = bytes(t, (size_t)(rows * cols * es));
    std::vector<float> out((size_t)(rows * nc));
    for (int64_t r = 0; r < rows; r++) convert_to_f32(all + (r * cols + c0) * es, t.dtype, nc, out.data() + r * nc);
    apply_scale(t, out);
    if (f16_range_ && (t.dtype != DType::F16 || !t.plain())) check_f16_range(t, out);
    return out;
  }
  // f16 values of the block rows [r0, r0 + nr) x columns [c0, c0 + nc) of the 2-D tensor `name` (which must have
  // `shape`), written densely to dst: f16 tensors are copied as they are, others go through f32 (range-checked when
  // require_f16_range is on) and round to nearest even.
  void f16_into(const std::string& name, const std::vector<int64_t>& shape, int64_t r0, int64_t nr, int64_t c0, int64_t nc,
                uint16_t* dst) {
    const TensorSpec& t = spec(name, shape);
    const int64_t cols = shape.size() > 1 ? shape[1] : 1;
    if (t.dtype == DType::F16 && t.plain()) {
      int64_t n = 1;
      for (auto d : shape) n *= d;
      const uint16_t* all = reinterpret_cast<const uint16_t*>(bytes(t, (size_t)n * 2));
      if (c0 == 0 && nc == cols) {
        std::memcpy(dst, all + r0 * cols, (size_t)(nr * cols) * 2);
      } else {
        for (int64_t r = 0; r < nr; r++) std::memcpy(dst + r * nc, all + (r0 + r) * cols + c0, (size_t)nc * 2);
      }
      return;
    }
    if (!(c0 == 0 && nc == cols) && !(r0 == 0 && nr == shape[0])) fail(ErrorCode::Internal, "f16_into: rows and columns both sliced");
    std::vector<float> v = (c0 == 0 && nc == cols) ? f32_rows(name, shape, r0, nr) : f32_cols(name, shape, c0, nc);
    for (size_t i = 0; i < v.size(); i++) dst[i] = f32_to_f16(v[i]);
  }

  // The backend stores weights as f16 (Backend::f16_weights): bf16/f32 tensors must fit f16's range.
  void require_f16_range(bool on) { f16_range_ = on; }

  // The bytes of `name` (which must have `shape` and `dtype`), valid while the reader lives; a scaled f16 tensor
  // (TensorSpec::scale, e.g. AutoAWQ per-group scales) comes back scaled and rounded to f16, valid until the next
  // scaled raw() read (only one tensor of a W4 triple can carry a scale).
  const uint8_t* raw(const std::string& name, const std::vector<int64_t>& shape, DType dtype) {
    const TensorSpec& t = spec(name, shape);
    if (t.dtype != dtype)
      fail(ErrorCode::ModelFormat, "tensor " + name + ": expected dtype " + dtype_name(dtype) + ", found " + dtype_name(t.dtype));
    int64_t n = 1;
    for (auto d : shape) n *= d;
    const uint8_t* src = bytes(t, (size_t)n * dtype_size(t.dtype));
    if (t.plain()) return src;
    if (t.dtype != DType::F16) fail(ErrorCode::ModelFormat, "tensor " + name + ": only f16 raw tensors can carry a scale or add");
    std::vector<float> v((size_t)n);
    convert_to_f32(src, t.dtype, n, v.data());
    apply_scale(t, v);
    if (f16_range_) check_f16_range(t, v);
    scaled_raw_.resize((size_t)n);
    for (int64_t i = 0; i < n; i++) scaled_raw_[(size_t)i] = f32_to_f16(v[(size_t)i]);
    return reinterpret_cast<const uint8_t*>(scaled_raw_.data());
  }

 private:
  static void check_float(const TensorSpec& t) {
    if (t.dtype != DType::F32 && t.dtype != DType::F16 && t.dtype != DType::BF16)
      fail(ErrorCode::ModelFormat, "tensor " + t.name + ": dtype " + dtype_name(t.dtype) + " is not f32/f16/bf16");
  }
  const TensorSpec& spec(const std::string& name, const std::vector<int64_t>& shape) {
    auto it = by_name_.find(name);
    if (it == by_name_.end()) fail(ErrorCode::ModelFormat, "missing tensor " + name + " " + shape_str(shape));
    const TensorSpec& t = *it->second;
    if (t.shape != shape)
      fail(ErrorCode::ModelFormat, "tensor " + name + ": expected shape " + shape_str(shape) + ", found " + shape_str(t.shape));
    return t;
  }

  const uint8_t* bytes(const TensorSpec& t, size_t bytes) {  // checks the range, maps the file once
    const std::string& name = t.name;
    const uint8_t* src;
    if (t.file.empty()) {
      if (t.data.size() != bytes)
        fail(ErrorCode::ModelFormat, "tensor " + name + ": data has " + std::to_string(t.data.size()) + " bytes, expected " +
                                         std::to_string(bytes));
      src = t.data.data();
    } else {
      auto& f = files_[t.file];
      if (!f) f = std::make_unique<MappedFile>(t.file);
      if (t.offset < 0 || (size_t)t.offset + bytes > f->size())
        fail(ErrorCode::ModelFormat, "tensor " + name + ": file " + t.file + " is too short (" + std::to_string(f->size()) +
                                         " bytes, tensor needs bytes " + std::to_string(t.offset) + ".." +
                                         std::to_string(t.offset + (int64_t)bytes) + ")");
      src = f->data() + t.offset;
    }
    return src;
  }

  // Values with |x| >= 65520 become inf in f16 (round to nearest even; 65504 is the largest finite f16), NaN stays
  // NaN. Such a weight would silently turn activations into inf/NaN on an f16 backend: refuse the tensor, with counts.
  static void check_f16_range(const TensorSpec& t, const std::vector<float>& v) {
    size_t over = 0;
    float worst = 0.f;
    for (float x : v) {
      const float a = std::fabs(x);
      if (a >= 65520.f) {  // inf included; NaN compares false
        over++;
        worst = std::max(worst, a);
      }
    }
    if (!over) return;
    char big[32];
    std::snprintf(big, sizeof big, "%.4g", worst);
    fail(ErrorCode::ModelFormat, "tensor " + t.name + " (" + dtype_name(t.dtype) + "): " + std::to_string(over) + " of " +
                                     std::to_string(v.size()) + " values are beyond f16's range (largest |x| " + big +
                                     ", f16 max 65504); this backend keeps weights in f16 (no bf16 kernels), where they "
                                     "would be inf: load the model on the cpu backend");
  }

  // TensorSpec::scale and add, in f32 (the CPU backend keeps them unrounded; f16 backends round after)
  static void apply_scale(const TensorSpec& t, std::vector<float>& v) {
    if (t.plain()) return;
    const float k = (float)t.scale, a = (float)t.add;
    for (float& x : v) x = x * k + a;
  }

  bool f16_range_ = false;
  std::vector<uint16_t> scaled_raw_;
  std::unordered_map<std::string, const TensorSpec*> by_name_;
  std::unordered_map<std::string, std::unique_ptr<MappedFile>> files_;
};

Model::Model(ModelConfig cfg) : cfg_(std::move(cfg)) {
  validate();
  const auto& c = cfg_;
  shard_ = plan_shard(c.heads, c.kv_heads, c.head_dim, c.inter, c.vocab, c.quant_group, 0, c.tp, c.moe_inter, c.any_dense_mlp());
  make_backend();
  if (c.tp > 1) {
    for (int r = 1; r < c.tp; r++) plan_shard(c.heads, c.kv_heads, c.head_dim, c.inter, c.vocab, c.quant_group, r, c.tp, c.moe_inter, c.any_dense_mlp());
    std::vector<TensorSpec> tensors;
    tensors.swap(cfg_.tensors);  // the peers' configs carry no tensors: rank 0's load() reads them for all
    try {
      for (int r = 1; r < c.tp; r++) peers_.push_back(std::unique_ptr<Model>(new Model(cfg_, r)));
    } catch (...) {
      tensors.swap(cfg_.tensors);
      throw;
    }
    tensors.swap(cfg_.tensors);
    // cuda ranks poll for the next step (20 ms) instead of sleeping between steps: a wake-up delays the rank's
    // launches, and the first exchange waits for the last rank (tp 2 batch 1 on two H100s, session 11: 3.172 vs
    // 3.216 ms/step). The cpu backend's ranks need their cores for the compute threads.
    rank_threads_ = std::make_unique<RankThreads>(c.tp, c.backend == "cuda" ? 20000 : 0);
  }
}

Model::Model(const ModelConfig& cfg, int rank) : cfg_(cfg) {
  shard_ = plan_shard(cfg_.heads, cfg_.kv_heads, cfg_.head_dim, cfg_.inter, cfg_.vocab, cfg_.quant_group, rank, cfg_.tp, cfg_.moe_inter, cfg_.any_dense_mlp());
  make_backend();
}

void Model::validate() const {
  const auto& c = cfg_;
  auto positive = [](int64_t v, const char* what) {
    if (v <= 0) fail(ErrorCode::InvalidArgument, std::string("model config: ") + what + " must be > 0");
  };
  positive(c.vocab, "vocabSize");
  positive(c.hidden, "hiddenSize");
  positive(c.inter, "intermediateSize");
  positive(c.layers, "numLayers");
  positive(c.heads, "numHeads");
  positive(c.kv_heads, "numKvHeads");
  positive(c.head_dim, "headDim");
  if (c.heads % c.kv_heads) fail(ErrorCode::InvalidArgument, "model config: numHeads must be a multiple of numKvHeads");
  if (!(c.eps > 0)) fail(ErrorCode::InvalidArgument, "model config: rmsNormEps must be > 0");
  if (c.kv_quant_policy != 0 && c.kv_quant_policy != 4 && c.kv_quant_policy != 8)
    fail(ErrorCode::InvalidArgument, "model config: kvQuantPolicy must be 0, 4 or 8, got " + std::to_string(c.kv_quant_policy));
  if (c.kv_quant_policy && c.head_dim % 2) fail(ErrorCode::InvalidArgument, "model config: a quantized KV cache needs an even headDim");
  if (!c.kv_qparams.empty()) {
    if (!c.kv_quant_policy) fail(ErrorCode::InvalidArgument, "model config: kvQparams given without kvQuantPolicy 4 or 8");
    if ((int64_t)c.kv_qparams.size() != c.layers * 2 * c.kv_heads * 2)
      fail(ErrorCode::InvalidArgument, "model config: kvQparams must hold [numLayers, 2, numKvHeads, 2] = " +
                                           std::to_string(c.layers * 4 * c.kv_heads) + " values, got " + std::to_string(c.kv_qparams.size()));
    for (size_t i = 0; i < c.kv_qparams.size(); i += 2)
      if (!(c.kv_qparams[i] >= 0) || !std::isfinite(c.kv_qparams[i]) || !std::isfinite(c.kv_qparams[i + 1]))
        fail(ErrorCode::InvalidArgument, "model config: kvQparams holds a negative or non-finite scale/zero at " + std::to_string(i));
  }
  if (!c.layer_window.empty()) {
    if ((int64_t)c.layer_window.size() != c.layers)
      fail(ErrorCode::InvalidArgument, "model config: layerWindows must have numLayers (" + std::to_string(c.layers) +
                                           ") entries, got " + std::to_string(c.layer_window.size()));
    for (int64_t w : c.layer_window)
      if (w < 0 || w > (int64_t)1 << 30) fail(ErrorCode::InvalidArgument, "model config: layerWindows holds " + std::to_string(w) + " (0: full attention, else a window length)");
  }
  for (int64_t l : c.no_rope_layers)
    if (l < 0 || l >= c.layers)
      fail(ErrorCode::InvalidArgument, "model config: noRopeLayers holds layer " + std::to_string(l) + " of " + std::to_string(c.layers));
  if (c.num_experts < 0 || (c.num_experts > 0 && (c.experts_per_tok < 1 || c.experts_per_tok > c.num_experts || c.moe_inter <= 0)))
    fail(ErrorCode::InvalidArgument, "model config: a mixture of experts needs numExperts > 0, numExpertsPerTok in [1, numExperts] and "
                                     "moeIntermediateSize > 0 (got " + std::to_string(c.num_experts) + ", " +
                                         std::to_string(c.experts_per_tok) + ", " + std::to_string(c.moe_inter) + ")");
  for (int64_t l : c.dense_layers)
    if (l < 0 || l >= c.layers)
      fail(ErrorCode::InvalidArgument, "model config: denseLayers holds layer " + std::to_string(l) + " of " + std::to_string(c.layers));
  if (c.has_rope_local && (rope_per_sequence(c.rope_local) ||
                           rope_rotary_dim(c.rope_local, c.head_dim) != rope_rotary_dim(c.rope, c.head_dim)))
    fail(ErrorCode::InvalidArgument, "model config: ropeLocal must rotate as many dims as rope, with one table for every "
                                     "sequence (not dynamic / longrope)");
  if (!(c.embed_scale > 0)) fail(ErrorCode::InvalidArgument, "model config: embedScale must be > 0");
  if (!(c.attn_softcap >= 0) || !(c.final_softcap >= 0))
    fail(ErrorCode::InvalidArgument, "model config: attnLogitSoftcap and finalLogitSoftcap must be >= 0 (0: off)");
  if (c.tp < 1 || c.tp > 64) fail(ErrorCode::InvalidArgument, "model config: tp must be in [1, 64], got " + std::to_string(c.tp));
  if (!c.devices.empty() && (int)c.devices.size() != c.tp)
    fail(ErrorCode::InvalidArgument, "model config: devices must list tp (" + std::to_string(c.tp) + ") cuda ordinals, got " +
                                         std::to_string(c.devices.size()));
}

void Model::make_backend() {
  const auto& c = cfg_;
  rotary_dim_ = rope_rotary_dim(c.rope, c.head_dim);
  inv_freq_ = rope_inv_freq(c.rope, c.head_dim, 1);
  if (c.has_rope_local) inv_freq_local_ = rope_inv_freq(c.rope_local, c.head_dim, 1);
  if (c.backend == "cpu") {
    // tp ranks share the cores: each rank's backend gets its part of the threads.
    int threads = c.threads;
    if (c.tp > 1) threads = std::max(1, (threads > 0 ? threads : (int)std::max(1u, std::thread::hardware_concurrency())) / c.tp);
    be_ = make_cpu_backend(threads);
  } else if (c.backend == "cuda") {
#ifdef LMFLEET_WITH_CUDA
    be_ = make_cuda_backend(c.tp > 1 ? (c.devices.empty() ? shard_.rank : c.devices[(size_t)shard_.rank]) : c.device);
#else
    fail(ErrorCode::BackendUnavailable, "model config: backend 'cuda' is not built into this addon (cpu variant)");
#endif
  } else {
    fail(ErrorCode::InvalidArgument, "model config: unknown backend '" + c.backend + "' (cpu or cuda)");
  }
}

Model::~Model() = default;

void Model::ensure_loaded() const {
  if (!loaded_) fail(ErrorCode::InvalidArgument, "model is not loaded (call load() first)");
}

void Model::load() {
  std::lock_guard<std::mutex> lock(load_mutex_);
  if (loaded_) return;
  TensorReader rd(cfg_.tensors);
  load_shard(rd);
  for (auto& p : peers_) p->load_shard(rd);
  if (cfg_.tp > 1) {
    if (cfg_.backend == "cpu") {
      own_coll_ = make_cpu_collective(cfg_.tp);
    } else {
#ifdef LMFLEET_WITH_CUDA
      std::vector<Backend*> bes;
      for (int r = 0; r < cfg_.tp; r++) bes.push_back(&rank(r).backend());
      own_coll_ = make_cuda_tp_collective(bes);
#endif
    }
    for (int r = 0; r < cfg_.tp; r++) rank(r).coll_ = own_coll_.get();
    for (auto& p : peers_) weight_bytes_ += p->weight_bytes_;
  }
  cfg_.tensors.clear();  // in-memory tensor data is no longer needed
  cfg_.tensors.shrink_to_fit();
  loaded_ = true;
  for (auto& p : peers_) p->loaded_ = true;
}

// This rank's shard (the whole model at tp 1) from the tensors of the full model.
void Model::load_shard(TensorReader& rd) {
  const auto& c = cfg_;
  const ShardPlan& sh = shard_;
  const bool tp = c.tp > 1;
  Backend& be = *be_;
  rd.require_f16_range(be.f16_weights());
  size_t bytes = 0;
  auto upload = [&](const std::vector<float>& v) {
    Buffer b(&be, v.size() * 4);
    be.upload(b.get(), v.data(), v.size() * 4);
    bytes += v.size() * 4;
    return b;
  };
  auto linear = [&](std::vector<float> w, const std::vector<float>* bias, int64_t n, int64_t k) {
    auto lw = be.prepare_linear(w.data(), DType::F32, bias ? bias->data() : nullptr, DType::F32, n, k);
    bytes += lw->bytes();
    return lw;
  };
  // W4A16 linears: `<p>.qweight` + `<p>.scales_zeros` in our layout (a workspace), or AutoAWQ's `<p>.qweight`,
  // `<p>.qzeros`, `<p>.scales` (converted here). Only when the config names a group size.
  std::unique_ptr<ThreadPool> pack_pool;
  auto w4 = [&](const std::string& p, int64_t n, int64_t k) {
    const int64_t g = c.quant_group;
    if (k % g || n % 8)
      fail(ErrorCode::ModelFormat, p + ": [" + std::to_string(n) + ", " + std::to_string(k) + "] cannot be W4A16 with group size " + std::to_string(g));
    if (rd.has(p + ".scales_zeros")) {
      const int64_t kp = w4a16_padded_k(k);
      W4A16Host w;
      w.n = n; w.k = k; w.kp = kp; w.group = g;
      w.qweight.resize((size_t)(n / 8) * (kp / 128) * 128);
      std::memcpy(w.qweight.data(), rd.raw(p + ".qweight", {n / 8, kp / 128, 128}, DType::I32), w.qweight.size() * 4);
      w.scales_zeros.resize((size_t)(kp / g) * n * 2);
      std::memcpy(w.scales_zeros.data(), rd.raw(p + ".scales_zeros", {kp / g, n, 2}, DType::F16), w.scales_zeros.size() * 2);
      return w;
    }
    if (!pack_pool) pack_pool = std::make_unique<ThreadPool>(c.threads);
    return w4a16_pack_awq(reinterpret_cast<const int32_t*>(rd.raw(p + ".qweight", {k, n / 8}, DType::I32)),
                          reinterpret_cast<const int32_t*>(rd.raw(p + ".qzeros", {k / g, n / 8}, DType::I32)),
                          reinterpret_cast<const uint16_t*>(rd.raw(p + ".scales", {k / g, n}, DType::F16)), n, k, g,
                          pack_pool.get());
  };
  auto quantized = [&](const std::string& p) { return c.quant_group > 0 && !rd.has(p + ".weight") && rd.has(p + ".qweight"); };
  auto linear_w4 = [&](std::vector<const W4A16Host*> parts, const std::vector<float>* bias) {
    W4A16Host fused = parts.size() == 1 ? W4A16Host{} : w4a16_concat_rows(parts);
    const W4A16Host& w = parts.size() == 1 ? *parts[0] : fused;
    auto lw = be.prepare_w4a16(w, bias ? bias->data() : nullptr, DType::F32);
    bytes += lw->bytes();
    return lw;
  };
  auto append = [](std::vector<float>& dst, const std::vector<float>& src) { dst.insert(dst.end(), src.begin(), src.end()); };
  // A dense linear stacked from `parts`, each a block of a 2-D tensor (name, shape, rows r0..r0+nr, columns c0..c0+nc;
  // all parts the same width nc). On a backend that keeps f16 weights (cuda) the blocks are gathered as f16 and handed
  // over as they are: no f32 round trip for f16 checkpoints (a 7B model's 13 GB were converted f16 -> f32 -> f16 on
  // one thread before). Otherwise through f32, as the CPU backend packs it.
  struct Part {
    std::string name;
    std::vector<int64_t> shape;
    int64_t r0, nr, c0, nc;
  };
  const bool f16w = be.f16_weights();
  auto dense = [&](const std::vector<Part>& parts, const std::vector<float>* bias) {
    int64_t n = 0;
    const int64_t k = parts[0].nc;
    for (const auto& pr : parts) n += pr.nr;
    if (f16w) {
      std::vector<uint16_t> w((size_t)n * k);
      size_t at = 0;
      for (const auto& pr : parts) {
        rd.f16_into(pr.name, pr.shape, pr.r0, pr.nr, pr.c0, pr.nc, w.data() + at);
        at += (size_t)(pr.nr * k);
      }
      auto lw = be.prepare_linear(w.data(), DType::F16, bias ? bias->data() : nullptr, DType::F32, n, k);
      bytes += lw->bytes();
      return lw;
    }
    auto block = [&](const Part& pr) {
      return (pr.c0 == 0 && pr.nc == pr.shape[1]) ? rd.f32_rows(pr.name, pr.shape, pr.r0, pr.nr)
                                                  : rd.f32_cols(pr.name, pr.shape, pr.c0, pr.nc);
    };
    std::vector<float> w = block(parts[0]);
    for (size_t i = 1; i < parts.size(); i++) append(w, block(parts[i]));
    return linear(std::move(w), bias, n, k);
  };

  const int64_t H = c.hidden, qd = c.heads * c.head_dim, kvd = c.kv_heads * c.head_dim, I = c.inter, D = c.head_dim;
  // This rank's widths (the model's at tp 1): q rows, k/v rows, gate/up rows, embedding rows.
  const int64_t q0 = sh.head0 * D, qn = sh.heads * D, kv0 = sh.kv_head0 * D, kvn = sh.kv_heads * D;
  std::vector<float> emb = rd.f32_rows("embed_tokens.weight", {c.vocab, H}, sh.vocab0, sh.vocab);
  if (tp) {
    // One zero row after the rank's rows: tokens of other ranks look it up, and the all-reduce adds the owner's row.
    std::vector<float> padded(emb);
    padded.resize(padded.size() + (size_t)H, 0.f);
    embed = upload(padded);
  } else {
    embed = upload(emb);
  }
  final_norm = upload(rd.f32("norm.weight", {H}));
  if (c.tie_embeddings) lm_head = linear(std::move(emb), nullptr, sh.vocab, H);
  else lm_head = dense({{"lm_head.weight", {c.vocab, H}, sh.vocab0, sh.vocab, 0, H}}, nullptr);

  std::vector<LayerWeights> ls((size_t)c.layers);
  // A SwiGLU MLP at prefix x (gate / up [width, H], down [H, width]): this rank's gate/up rows and down columns
  // [w0, w0 + wn) (column- then row-parallel; the whole width at tp 1), fp or W4A16 (sliced along whole groups).
  // A layer's dense MLP and each expert of a mixture of experts.
  auto swiglu = [&](const std::string& x, int64_t width, int64_t w0, int64_t wn, std::unique_ptr<LinearWeight>& gate_up,
                    std::unique_ptr<LinearWeight>& down) {
    const bool gu4 = quantized(x + "gate");
    if (gu4 != quantized(x + "up")) fail(ErrorCode::ModelFormat, x + "gate/up: both must be W4A16 (qweight) or both fp (weight)");
    if (gu4) {
      W4A16Host wg = w4(x + "gate", width, H), wu = w4(x + "up", width, H);
      if (tp) {
        wg = w4a16_slice(wg, w0, wn, 0, H);
        wu = w4a16_slice(wu, w0, wn, 0, H);
      }
      gate_up = linear_w4({&wg, &wu}, nullptr);
    } else {
      gate_up = dense({{x + "gate.weight", {width, H}, w0, wn, 0, H}, {x + "up.weight", {width, H}, w0, wn, 0, H}}, nullptr);
    }
    if (quantized(x + "down")) {
      W4A16Host wd = w4(x + "down", H, width);
      if (tp) wd = w4a16_slice(wd, 0, H, w0, wn);
      down = linear_w4({&wd}, nullptr);
    } else {
      down = dense({{x + "down.weight", {H, width}, 0, H, w0, wn}}, nullptr);
    }
  };
  for (int64_t i = 0; i < c.layers; i++) {
    const std::string p = "layers." + std::to_string(i) + ".";
    LayerWeights& L = ls[i];
    L.input_norm = upload(rd.f32(p + "input_norm.weight", {H}));
    L.post_norm = upload(rd.f32(p + "post_norm.weight", {H}));
    if (c.sandwich_norms) {
      L.attn_out_norm = upload(rd.f32(p + "attn_out_norm.weight", {H}));
      L.mlp_out_norm = upload(rd.f32(p + "mlp_out_norm.weight", {H}));
    }
    if (c.qk_norm) {
      L.q_norm = upload(rd.f32(p + "q_norm.weight", {D}));
      L.k_norm = upload(rd.f32(p + "k_norm.weight", {D}));
    }
    // q, k, v fused into one [qd + 2 kvd, H] linear; biases are all present or all absent (zeros fill in).
    const bool q4 = quantized(p + "q");
    if (q4 != quantized(p + "k") || q4 != quantized(p + "v"))
      fail(ErrorCode::ModelFormat, p + "q/k/v: all three must be W4A16 (qweight) or all fp (weight)");
    bool qkv_bias = rd.has(p + "q.bias") || rd.has(p + "k.bias") || rd.has(p + "v.bias");
    std::vector<float> b;
    if (qkv_bias) {
      b = rd.has(p + "q.bias") ? rd.f32_rows(p + "q.bias", {qd}, q0, qn) : std::vector<float>((size_t)qn, 0.f);
      append(b, rd.has(p + "k.bias") ? rd.f32_rows(p + "k.bias", {kvd}, kv0, kvn) : std::vector<float>((size_t)kvn, 0.f));
      append(b, rd.has(p + "v.bias") ? rd.f32_rows(p + "v.bias", {kvd}, kv0, kvn) : std::vector<float>((size_t)kvn, 0.f));
    }
    if (q4) {
      W4A16Host wq = w4(p + "q", qd, H), wk = w4(p + "k", kvd, H), wv = w4(p + "v", kvd, H);
      if (tp) {
        wq = w4a16_slice(wq, q0, qn, 0, H);
        wk = w4a16_slice(wk, kv0, kvn, 0, H);
        wv = w4a16_slice(wv, kv0, kvn, 0, H);
      }
      L.qkv = linear_w4({&wq, &wk, &wv}, qkv_bias ? &b : nullptr);
    } else {
      L.qkv = dense({{p + "q.weight", {qd, H}, q0, qn, 0, H},
                     {p + "k.weight", {kvd, H}, kv0, kvn, 0, H},
                     {p + "v.weight", {kvd, H}, kv0, kvn, 0, H}},
                    qkv_bias ? &b : nullptr);
    }
    std::vector<float> ob;
    if (rd.has(p + "o.bias") && sh.rank == 0) ob = rd.f32(p + "o.bias", {H});  // added once, before the all-reduce
    if (quantized(p + "o")) {
      W4A16Host wo = w4(p + "o", H, qd);
      if (tp) wo = w4a16_slice(wo, 0, H, q0, qn);
      L.o = linear_w4({&wo}, ob.empty() ? nullptr : &ob);
    } else {
      L.o = dense({{p + "o.weight", {H, qd}, 0, H, q0, qn}}, ob.empty() ? nullptr : &ob);
    }
    if (c.moe_layer(i)) {
      // the router (never quantized: AutoAWQ keeps it fp16) and each expert's SwiGLU MLP
      // tp: every expert split as the dense MLP is (gate/up rows [moe_inter0, +moe_inter), down those columns), the
      // router replicated
      const int64_t E = c.num_experts;
      L.router = dense({{p + "router.weight", {E, H}, 0, E, 0, H}}, nullptr);
      L.expert_gate_up.resize((size_t)E);
      L.expert_down.resize((size_t)E);
      for (int64_t e = 0; e < E; e++) {
        const std::string x = p + "experts." + std::to_string(e) + ".";
        const bool q = quantized(x + "gate");
        if (q != quantized(x + "up") || q != quantized(x + "down"))
          fail(ErrorCode::ModelFormat, x + "gate/up/down: all three must be W4A16 (qweight) or all fp (weight)");
        swiglu(x, c.moe_inter, sh.moe_inter0, sh.moe_inter, L.expert_gate_up[(size_t)e], L.expert_down[(size_t)e]);
      }
      continue;
    }
    swiglu(p, I, sh.inter0, sh.inter, L.gate_up, L.down);
  }
  layers = std::move(ls);
  if (!c.kv_qparams.empty()) {
    // [layers, 2, kv_heads, 2] -> this rank's KV heads
    std::vector<float> qp;
    for (int64_t l = 0; l < c.layers * 2; l++)
      qp.insert(qp.end(), c.kv_qparams.begin() + (l * c.kv_heads + sh.kv_head0) * 2,
                c.kv_qparams.begin() + (l * c.kv_heads + sh.kv_head0 + sh.kv_heads) * 2);
    kv_qparams = Buffer(&be, qp.size() * 4);
    be.upload(kv_qparams.get(), qp.data(), qp.size() * 4);
  }
  weight_bytes_ = bytes;
}

}  // namespace lmfleet
