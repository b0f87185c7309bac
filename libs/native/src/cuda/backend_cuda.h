// The CUDA backend: device memory, one stream, cuBLAS for linears (weights held as f16 on the device),
// the op-level interface of core/backend.h on f32 activations (runOp and op specs), and the fused f16
// decoder (cuda_decoder.h) that the engine uses for its steps.
#pragma once
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <memory>

#include "core/backend.h"
#include "cuda/gemm.h"

namespace lmfleet {

class CudaLinearWeight : public LinearWeight {
 public:
  half* w = nullptr;     // [n, k] row-major, f16, device
  half* bias = nullptr;  // [n] f16 or null
  int device = 0;
  ~CudaLinearWeight() override;
  size_t bytes() const override { return (size_t)n * k * 2 + (bias ? (size_t)n * 2 : 0); }
};

// A W4A16 linear on the device (layout: ops/w4a16_gemm.h): 4-bit codes + (scale, zero) pairs, f16 bias.
class CudaW4A16Weight : public LinearWeight {
 public:
  uint32_t* qweight = nullptr;
  half2* sz = nullptr;
  half* bias = nullptr;
  int64_t kp = 0;
  int device = 0;
  ~CudaW4A16Weight() override;
  size_t bytes() const override { return (size_t)n * kp / 2 + (size_t)(kp / group) * n * 4 + (bias ? (size_t)n * 2 : 0); }
  W4A16Dev dev() const { return {qweight, sz, bias, (int)n, (int)k, (int)kp, (int)group}; }
};

// Grow-only device scratch.
class DeviceScratch {
 public:
  // pinned_host: page-locked host memory (cudaMallocHost) instead, for copies that must not wait on pageable staging
  explicit DeviceScratch(bool pinned_host = false) : host_(pinned_host) {}
  ~DeviceScratch();
  DeviceScratch(const DeviceScratch&) = delete;
  DeviceScratch& operator=(const DeviceScratch&) = delete;
  void* get(size_t bytes);
  template <typename T> T* as(size_t n) { return static_cast<T*>(get(n * sizeof(T))); }

 private:
  bool host_;
  void* p_ = nullptr;
  size_t bytes_ = 0;
};

class CudaBackend : public Backend {
 public:
  explicit CudaBackend(int device);
  ~CudaBackend() override;
  const char* name() const override { return "cuda"; }
  bool f16_weights() const override { return true; }

  void* alloc(size_t bytes) override;
  void release(void* p) override;
  void upload(void* dst, const void* host_src, size_t bytes) override;
  void download(void* host_dst, const void* src, size_t bytes) override;
  void synchronize() override;

  std::unique_ptr<LinearWeight> prepare_linear(const void* w, DType dtype, const void* bias, DType bias_dtype,
                                               int64_t n, int64_t k) override;
  std::unique_ptr<LinearWeight> prepare_w4a16(const W4A16Host& w, const void* bias, DType bias_dtype) override;
  // f32 device weights -> f16 on the device (cuda/backend_cuda_quant.cu)
  std::unique_ptr<LinearWeight> prepare_linear_resident(const float* w, const float* bias, int64_t n, int64_t k) override;
  // f32 in/out around the f16 tensor-core prefill attention (cuda/backend_cuda_quant.cu)
  void attention_fast(const attention_args& a) override;
  bool supports(const std::string& op) const override;
#define LMFLEET_OP(op) void op(const op##_args& a) override;
#include "ops/ops.def"
#undef LMFLEET_OP

  // KV cache sizing (Backend::kv_element_bytes / available_memory_bytes): the cache is f16 here, and
  // "free memory" is the device's.
  size_t kv_element_bytes() const override { return 2; }
  int64_t available_memory_bytes() const override;
  int device() const { return device_; }
  cudaStream_t stream() const { return stream_; }
  CublasGemm& gemm() { return *gemm_; }
  void bind() const;  // cudaSetDevice(device) for the calling thread
  // Copies n host ints to a device scratch slot (0..7), returns the device pointer (valid until that slot is reused).
  int* stage_i32(int slot, const int32_t* host, int64_t n);

 private:
  int device_;
  cudaStream_t stream_ = nullptr;
  std::unique_ptr<CublasGemm> gemm_;
  DeviceScratch scratch_[8];
  DeviceScratch x16_, scores_;
  DeviceScratch sample_host_{true};  // sample(): its parameters up and its tokens down
  DeviceScratch mask_host_{true};    // sample(): guided rows' allowed-token masks up (device side: scratch_[7])
  DeviceScratch bias_host_{true}, bias_dev_;  // sample(): the rows' logit bias entries (row, id, value) up
};

// Throws E_BACKEND_UNAVAILABLE (with the reason) when no usable device is there.
std::unique_ptr<Backend> make_cuda_backend(int device);

}  // namespace lmfleet
