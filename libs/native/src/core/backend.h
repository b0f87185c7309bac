// Backend dispatch, in one place. A Backend owns device memory and runs the ops of ops/ops.def. The decoder
// (engine/decoder.cc) and runOp only talk to this interface, so the CUDA backend is new files
// (core/backend_cuda.cc + ops/*.cu), not edits to the decoder.
//
// Op arguments are plain structs (ops/<op>.h). Float tensors (activations, caches, weights) are *backend*
// pointers: host memory for cpu, device memory for cuda. Small int32 index arrays (token ids, positions,
// cache slots, block tables, seq_info, targets) are always *host* pointers: a device backend uploads them
// (once per step) itself. Row strides (`ld`) let ops read q/k/v in place inside the fused qkv projection. Weights of linear layers go through prepare_linear(), which returns a backend-specific
// layout (cpu: f32 panels packed for the GEMM micro-kernel; cuda: whatever cuBLAS wants).
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace lmfleet {

#define LMFLEET_OP(op) struct op##_args;
#include "ops/ops.def"
#undef LMFLEET_OP

// Free host memory (MemAvailable) in bytes; engine/kv_cache.cc. Backend::available_memory_bytes' default.
int64_t available_memory_bytes();

struct W4A16Host;  // ops/w4a16_gemm.h

class LinearWeight {
 public:
  virtual ~LinearWeight() = default;
  int64_t n = 0;  // out features
  int64_t k = 0;  // in features
  bool has_bias = false;
  int64_t group = 0;  // > 0: a W4A16 weight (ops/w4a16_gemm.h) with this group size

  virtual size_t bytes() const = 0;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual const char* name() const = 0;
  virtual int threads() const { return 1; }

  virtual void* alloc(size_t bytes) = 0;  // uninitialized
  virtual void release(void* p) = 0;
  virtual void upload(void* dst, const void* host_src, size_t bytes) = 0;
  virtual void download(void* host_dst, const void* src, size_t bytes) = 0;
  virtual void synchronize() {}

  // KV cache sizing (engine/kv_cache.cc): bytes per cached K/V element in this backend's decoder (the cpu
  // decoder keeps f32), and the memory the cache's fraction rule applies to (cpu: host MemAvailable).
  virtual size_t kv_element_bytes() const { return 4; }
  virtual int64_t available_memory_bytes() const { return lmfleet::available_memory_bytes(); }

  // Whether this backend keeps the model's floating-point weights as f16 (cuda: no bf16/f32 kernels), so a bf16 or
  // f32 value beyond f16's range (|x| >= 65520 rounds to inf) cannot be represented: Model::load refuses such a
  // tensor with a ModelFormat error naming it and the count. The cpu backend keeps f32 (false).
  virtual bool f16_weights() const { return false; }

  // w: [n, k] row-major in `dtype` (f32/f16/bf16), bias: [n] in bias_dtype or null. Host pointers.
  virtual std::unique_ptr<LinearWeight> prepare_linear(const void* w, DType dtype, const void* bias,
                                                       DType bias_dtype, int64_t n, int64_t k) = 0;

  // A dense linear from f32 weights [n, k] (+ bias [n] or null) that are already in this backend's memory (the AWQ
  // session's candidate weights, made where they are used). Host-memory backends: prepare_linear itself.
  virtual std::unique_ptr<LinearWeight> prepare_linear_resident(const float* w, const float* bias, int64_t n, int64_t k) {
    return prepare_linear(w, DType::F32, bias, DType::F32, n, k);
  }

  // A W4A16 linear in our layout (ops/w4a16_gemm.h), host memory; bias [n] or null. Backend::linear runs it.
  // cuda: kept 4-bit on the device, the W4A16 kernels; cpu: dequantized once into its f32 GEMM layout.
  virtual std::unique_ptr<LinearWeight> prepare_w4a16(const W4A16Host& w, const void* bias, DType bias_dtype) = 0;

  // The attention op, allowed to compute in reduced precision (cuda: q/k/v rounded to f16 and the decoder's
  // tensor-core prefill kernel; the AWQ session's block forward). Default: attention itself.
  virtual void attention_fast(const attention_args& a) { attention(a); }

  virtual bool supports(const std::string& op) const = 0;
#define LMFLEET_OP(op) virtual void op(const op##_args& a) = 0;
#include "ops/ops.def"
#undef LMFLEET_OP
};

std::unique_ptr<Backend> make_cpu_backend(int threads);
// Defined in cuda/backend_cuda.cu (cuda variant only); throws E_BACKEND_UNAVAILABLE with the reason.
std::unique_ptr<Backend> make_cuda_backend(int device);

// RAII buffer on a backend.
class Buffer {
 public:
  Buffer() = default;
  Buffer(Backend* be, size_t bytes) : be_(be), bytes_(bytes), p_(bytes ? be->alloc(bytes) : nullptr) {}
  ~Buffer() { reset(); }
  Buffer(Buffer&& o) noexcept : be_(o.be_), bytes_(o.bytes_), p_(o.p_) { o.p_ = nullptr; o.bytes_ = 0; }
  Buffer& operator=(Buffer&& o) noexcept {
    if (this != &o) { reset(); be_ = o.be_; bytes_ = o.bytes_; p_ = o.p_; o.p_ = nullptr; o.bytes_ = 0; }
    return *this;
  }
  void reset() { if (p_) be_->release(p_); p_ = nullptr; bytes_ = 0; }
  // Grows (never shrinks) to at least `bytes`; contents are not kept.
  void ensure(Backend* be, size_t bytes) { if (bytes > bytes_) { reset(); be_ = be; bytes_ = bytes; p_ = be->alloc(bytes); } }
  template <typename T> T* as() const { return static_cast<T*>(p_); }
  void* get() const { return p_; }
  size_t bytes() const { return bytes_; }

 private:
  Backend* be_ = nullptr;
  size_t bytes_ = 0;
  void* p_ = nullptr;
};

}  // namespace lmfleet
