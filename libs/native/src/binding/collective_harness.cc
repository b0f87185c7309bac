// A test harness over core/collective.h: runs collectives of the cpu implementation with N ranks as threads on
// JS-provided buffers. Exported as `runCollective(spec)` for src/core/collective.spec.ts; not part of NativeModule.
//   spec: { op: 'all_reduce_sum' | 'all_gather' | 'barrier', inputs: Float32Array[] (one per rank),
//           rows?: number (all_gather), repeat?: number (the same op this many times in a row: the scratch
//           halves alternate), failRank?: number (that rank throws before the collective: the others must not hang) }
//   -> Float32Array[] (each rank's output after the last repetition)
#include <napi.h>

#include <cstring>

#include "binding/napi_util.h"
#include "core/collective.h"

namespace lmfleet {

namespace {

Napi::Value run_collective(const Napi::CallbackInfo& info) {
  return js_guard(info.Env(), [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsObject()) fail(ErrorCode::InvalidArgument, "runCollective(spec)");
    Napi::Object o = info[0].As<Napi::Object>();
    const std::string op = get_string(o, "op", "", true);
    if (!o.Get("inputs").IsArray()) fail(ErrorCode::InvalidArgument, "runCollective: inputs must be an array");
    Napi::Array in = o.Get("inputs").As<Napi::Array>();
    const int n = (int)in.Length();
    std::vector<std::vector<float>> bufs((size_t)n);
    for (int r = 0; r < n; r++) {
      Napi::Value v = in.Get((uint32_t)r);
      if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
        fail(ErrorCode::InvalidArgument, "runCollective: inputs must be Float32Arrays");
      Napi::Float32Array a = v.As<Napi::Float32Array>();
      bufs[r].assign(a.Data(), a.Data() + a.ElementLength());
      if (bufs[r].size() != bufs[0].size()) fail(ErrorCode::InvalidArgument, "runCollective: inputs must have one length");
    }
    const int64_t count = (int64_t)bufs[0].size();
    const int64_t rows = (int64_t)get_number(o, "rows", 1);
    const int repeat = (int)get_number(o, "repeat", 1);
    const int fail_rank = (int)get_number(o, "failRank", -1);
    if (rows <= 0 || count % rows) fail(ErrorCode::InvalidArgument, "runCollective: rows must divide the input length");
    auto coll = make_cpu_collective(n);
    RankThreads threads(n);
    std::vector<std::vector<float>> outs((size_t)n);
    for (int i = 0; i < repeat; i++) {
      threads.run(coll.get(), [&](int r) {
        if (r == fail_rank) fail(ErrorCode::InvalidArgument, "rank " + std::to_string(r) + " failed on purpose");
        if (op == "all_reduce_sum") {
          outs[r] = bufs[r];
          coll->all_reduce_sum(r, outs[r].data(), count);
        } else if (op == "all_gather") {
          outs[r].assign((size_t)(count * n), 0.f);
          coll->all_gather(r, bufs[r].data(), outs[r].data(), rows, count / rows);
        } else if (op == "barrier") {
          coll->barrier(r);
          outs[r] = bufs[r];
        } else {
          fail(ErrorCode::InvalidArgument, "runCollective: unknown op '" + op + "'");
        }
      });
    }
    Napi::Array res = Napi::Array::New(env, (size_t)n);
    for (int r = 0; r < n; r++) {
      Napi::Float32Array a = Napi::Float32Array::New(env, outs[r].size());
      if (!outs[r].empty()) std::memcpy(a.Data(), outs[r].data(), outs[r].size() * 4);
      res.Set((uint32_t)r, a);
    }
    return res;
  });
}

}  // namespace

void init_collective_harness(Napi::Env env, Napi::Object exports) {
  exports.Set("runCollective", Napi::Function::New(env, run_collective, "runCollective"));
}

}  // namespace lmfleet
