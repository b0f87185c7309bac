// runOp's view of one call: host tensors in, host tensors out, numeric/string params. Each op's adapter
// (`<op>_run`, defined beside its CPU reference in ops/<op>.cpu.cc) checks the inputs, stages them on the
// backend, calls backend.<op>(args) and downloads the outputs, so it works for every backend.
#pragma once
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "core/backend.h"
#include "core/dtype.h"
#include "core/error.h"

namespace lmfleet {

struct HostTensor {
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;
  int64_t numel() const {
    int64_t n = 1;
    for (auto d : shape) n *= d;
    return n;
  }
  std::string shape_str() const {
    std::string s = "[";
    for (size_t i = 0; i < shape.size(); i++) s += (i ? "," : "") + std::to_string(shape[i]);
    return s + "]";
  }
};

class OpCall {
 public:
  std::string op;
  std::vector<HostTensor> inputs;
  std::map<std::string, double> nums;
  std::map<std::string, std::string> strs;
  std::vector<HostTensor> outputs;

  [[noreturn]] void bad(const std::string& msg) const { fail(ErrorCode::InvalidArgument, op + ": " + msg); }
  void expect_inputs(size_t min, size_t max) const {
    if (inputs.size() < min || inputs.size() > max)
      bad("expected " + std::to_string(min) + (max != min ? ".." + std::to_string(max) : "") + " inputs, got " +
          std::to_string(inputs.size()));
  }
  const HostTensor& in(size_t i, int rank, const char* what) const {
    if (i >= inputs.size()) bad(std::string("missing input ") + what);
    const HostTensor& t = inputs[i];
    if (rank >= 0 && (int)t.shape.size() != rank)
      bad(std::string(what) + " must have rank " + std::to_string(rank) + ", got " + t.shape_str());
    return t;
  }
  std::vector<float> in_f32(size_t i, int rank, const char* what) const {
    const HostTensor& t = in(i, rank, what);
    if (t.dtype != DType::F32 && t.dtype != DType::F16 && t.dtype != DType::BF16)
      bad(std::string(what) + " must be f32, f16 or bf16, got " + dtype_name(t.dtype));
    std::vector<float> out((size_t)t.numel());
    convert_to_f32(t.bytes.data(), t.dtype, t.numel(), out.data());
    return out;
  }
  std::vector<int32_t> in_i32(size_t i, int rank, const char* what) const {
    const HostTensor& t = in(i, rank, what);
    if (t.dtype != DType::I32) bad(std::string(what) + " must be i32, got " + dtype_name(t.dtype));
    std::vector<int32_t> out((size_t)t.numel());
    std::memcpy(out.data(), t.bytes.data(), out.size() * 4);
    return out;
  }
  bool has(const std::string& k) const { return nums.count(k) > 0; }
  double num(const std::string& k, double def) const {
    auto it = nums.find(k);
    return it == nums.end() ? def : it->second;
  }
  std::string str(const std::string& k, const std::string& def) const {
    auto it = strs.find(k);
    return it == strs.end() ? def : it->second;
  }
  HostTensor& add_output(DType dtype, std::vector<int64_t> shape) {
    HostTensor t;
    t.dtype = dtype;
    t.shape = std::move(shape);
    t.bytes.resize((size_t)t.numel() * dtype_size(dtype));
    outputs.push_back(std::move(t));
    return outputs.back();
  }
};

// Copies host data to a new backend buffer.
template <typename T>
inline Buffer stage(Backend& be, const std::vector<T>& v) {
  Buffer b(&be, v.size() * sizeof(T));
  be.upload(b.get(), v.data(), v.size() * sizeof(T));
  return b;
}
inline void fetch(Backend& be, HostTensor& dst, const Buffer& src) {
  be.download(dst.bytes.data(), src.get(), dst.bytes.size());
}

#define LMFLEET_OP(op) void op##_run(Backend& be, OpCall& call);
#include "ops/ops.def"
#undef LMFLEET_OP

}  // namespace lmfleet
