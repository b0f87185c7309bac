#include "core/backend_cpu.h"

#include <cstdlib>
#include <cstring>

#include "core/error.h"

namespace lmfleet {

namespace {

class CpuBackend final : public Backend {
 public:
  explicit CpuBackend(int threads) : pool_(threads) {}
  const char* name() const override { return "cpu"; }
  int threads() const override { return pool_.size(); }

  void* alloc(size_t bytes) override {
    size_t rounded = (bytes + 63) / 64 * 64;
    void* p = std::aligned_alloc(64, rounded ? rounded : 64);
    if (!p) fail(ErrorCode::Internal, "out of host memory allocating " + std::to_string(bytes) + " bytes");
    return p;
  }
  void release(void* p) override { std::free(p); }
  void upload(void* dst, const void* src, size_t bytes) override { if (bytes) std::memcpy(dst, src, bytes); }
  void download(void* dst, const void* src, size_t bytes) override { if (bytes) std::memcpy(dst, src, bytes); }

  std::unique_ptr<LinearWeight> prepare_linear(const void* w, DType dtype, const void* bias, DType bias_dtype,
                                               int64_t n, int64_t k) override {
    return prepare_linear_cpu(w, dtype, bias, bias_dtype, n, k, pool_);
  }

  std::unique_ptr<LinearWeight> prepare_w4a16(const W4A16Host& w, const void* bias, DType bias_dtype) override {
    return prepare_w4a16_cpu(w, bias, bias_dtype, pool_);
  }

  bool supports(const std::string&) const override { return true; }

#define LMFLEET_OP(op) \
  void op(const op##_args& a) override { op##_cpu(a, pool_); }
#include "ops/ops.def"
#undef LMFLEET_OP

 private:
  ThreadPool pool_;
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend(int threads) { return std::make_unique<CpuBackend>(threads); }

}  // namespace lmfleet
