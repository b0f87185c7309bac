// Helpers for the standalone device tests/benchmarks (test_kernels.cu, bench_decoder.cu): device buffers with
// guard regions and poison, relative-error comparison against float64 references, a result table.
#pragma once
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "cuda/check.cuh"

namespace lmfleet::testing {

constexpr size_t kGuardBytes = 256;
constexpr unsigned char kGuardByte = 0x5A;

// Device buffer of n elements with a guard region after it (and before it) filled with kGuardByte.
template <typename T>
struct DevBuf {
  size_t n = 0;
  unsigned char* raw = nullptr;
  T* p = nullptr;
  DevBuf() = default;
  explicit DevBuf(size_t n_) : n(n_) {
    LMF_CUDA_CHECK(cudaMalloc(&raw, n * sizeof(T) + 2 * kGuardBytes));
    LMF_CUDA_CHECK(cudaMemset(raw, kGuardByte, n * sizeof(T) + 2 * kGuardBytes));
    p = reinterpret_cast<T*>(raw + kGuardBytes);
  }
  DevBuf(const DevBuf&) = delete;
  DevBuf& operator=(const DevBuf&) = delete;
  ~DevBuf() { if (raw) cudaFree(raw); }
  void upload(const std::vector<T>& v) { LMF_CUDA_CHECK(cudaMemcpy(p, v.data(), n * sizeof(T), cudaMemcpyHostToDevice)); }
  std::vector<T> download() const {
    std::vector<T> v(n);
    LMF_CUDA_CHECK(cudaDeviceSynchronize());
    LMF_CUDA_CHECK(cudaMemcpy(v.data(), p, n * sizeof(T), cudaMemcpyDeviceToHost));
    return v;
  }
  void poison() { LMF_CUDA_CHECK(cudaMemset(p, 0xFF, n * sizeof(T))); }  // NaN for f16/f32, -1 for i32
  bool guards_ok() const {
    std::vector<unsigned char> g(kGuardBytes);
    for (int side = 0; side < 2; side++) {
      const unsigned char* src = side == 0 ? raw : raw + kGuardBytes + n * sizeof(T);
      LMF_CUDA_CHECK(cudaMemcpy(g.data(), src, kGuardBytes, cudaMemcpyDeviceToHost));
      for (auto c : g)
        if (c != kGuardByte) return false;
    }
    return true;
  }
};

inline std::vector<half> to_half(const std::vector<float>& v) {
  std::vector<half> h(v.size());
  for (size_t i = 0; i < v.size(); i++) h[i] = __float2half(v[i]);
  return h;
}
inline std::vector<double> to_double(const std::vector<half>& v) {
  std::vector<double> d(v.size());
  for (size_t i = 0; i < v.size(); i++) d[i] = __half2float(v[i]);
  return d;
}
inline std::vector<double> to_double(const std::vector<float>& v) { return std::vector<double>(v.begin(), v.end()); }

struct Rng {
  std::mt19937_64 gen;
  explicit Rng(uint64_t seed) : gen(seed) {}
  float normal(float sd = 1.f) { return std::normal_distribution<float>(0.f, sd)(gen); }
  float uniform(float lo, float hi) { return std::uniform_real_distribution<float>(lo, hi)(gen); }
  int integer(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(gen); }  // inclusive
  // Values rounded to half, so that the reference sees exactly what the kernel sees.
  std::vector<float> normals(size_t n, float sd = 1.f) {
    std::vector<float> v(n);
    for (auto& x : v) x = __half2float(__float2half(normal(sd)));
    return v;
  }
};

// ||out - ref|| / ||ref||; NaN or Inf in out gives +inf.
inline double rel_err(const std::vector<double>& out, const std::vector<double>& ref) {
  double num = 0, den = 0;
  for (size_t i = 0; i < out.size(); i++) {
    if (!std::isfinite(out[i])) return INFINITY;
    num += (out[i] - ref[i]) * (out[i] - ref[i]);
    den += ref[i] * ref[i];
  }
  return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

struct Table {
  struct Row { std::string name, shape; double err, bound; bool guards; bool pass; std::string note; };
  std::vector<Row> rows;
  void add(const std::string& name, const std::string& shape, double err, double bound, bool guards,
           const std::string& note = "") {
    const bool pass = guards && err <= bound;
    rows.push_back({name, shape, err, bound, guards, pass, note});
    std::printf("%-28s %-40s err %.3e (bound %.0e) guards %s %s %s\n", name.c_str(), shape.c_str(), err, bound,
                guards ? "ok" : "BROKEN", pass ? "PASS" : "FAIL", note.c_str());
    std::fflush(stdout);
  }
  int print() const {
    int fails = 0;
    std::printf("\n| op | case | rel err | bound | guards | result |\n|---|---|---|---|---|---|\n");
    for (auto& r : rows) {
      std::printf("| %s | %s | %.2e | %.0e | %s | %s%s%s |\n", r.name.c_str(), r.shape.c_str(), r.err, r.bound,
                  r.guards ? "ok" : "BROKEN", r.pass ? "PASS" : "FAIL", r.note.empty() ? "" : " ", r.note.c_str());
      fails += !r.pass;
    }
    std::printf("%d/%zu passed\n", (int)rows.size() - fails, rows.size());
    return fails;
  }
};

}  // namespace lmfleet::testing
