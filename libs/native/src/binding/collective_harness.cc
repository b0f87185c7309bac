// A test harness over core/collective.h: runs collectives with N ranks as threads on JS-provided buffers: the cpu
// collective, or (cuda variant, backend 'cuda') the ranks' buffers on CudaBackends of `devices` through
// make_cuda_tp_collective (NCCL across GPUs, the device collective on one GPU). Exported as `runCollective(spec)`
// for src/core/collective.spec.ts and test/bench/tp-collective-check.js; not part of NativeModule.
//   spec: { op: 'all_reduce_sum' | 'all_reduce_sum_f16' (cuda; inputs rounded to f16, outputs back to f32) |
//           'all_gather' | 'barrier', inputs: Float32Array[] (one per rank), backend?: 'cpu' | 'cuda',
//           devices?: number[] (cuda ordinal per rank, default all 0),
//           rows?: number (all_gather), repeat?: number (the same op this many times in a row: the scratch
//           halves alternate), failRank?: number (that rank throws before the collective: the others must not hang) }
//   -> Float32Array[] (each rank's output after the last repetition)
// Timing (cuda): runCollective({ op: 'time_all_reduce_f16', backend: 'cuda', devices, rows, cols, calls?: 64,
//   reps?: 20, fused?: false, flushMb?: 0 }) -> { usPerCall, flushUs, graphed, fused } (core/collective.h
//   time_cuda_all_reduce_f16; `inputs` is not read; flushMb: a streaming read of that many MB before each exchange,
//   flushUs the read alone).
// Fused (cuda): runCollective({ op: 'all_reduce_add_rms_norm_f16', backend: 'cuda', devices, inputs (x [rows, cols] per
//   rank), residual: Float32Array [rows, cols], weight: Float32Array [cols], rows, eps?: 1e-5, repeat? })
//   -> { fused, y: Float32Array[], residual: Float32Array[] } (core/collective.h run_cuda_all_reduce_add_rms_norm_f16;
//   fused false: the collective does not take that shape, y and residual are empty).
#include <napi.h>

#include <cstring>

#include "binding/napi_util.h"
#include "core/backend.h"
#include "core/collective.h"
#include "core/dtype.h"

namespace lmfleet {

namespace {

Napi::Value run_collective(const Napi::CallbackInfo& info) {
  return js_guard(info.Env(), [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsObject()) fail(ErrorCode::InvalidArgument, "runCollective(spec)");
    Napi::Object o = info[0].As<Napi::Object>();
    const std::string op = get_string(o, "op", "", true);
    if (op == "time_all_reduce_f16") {
#ifdef LMFLEET_WITH_CUDA
      if (!o.Get("devices").IsArray()) fail(ErrorCode::InvalidArgument, "runCollective: time_all_reduce_f16 needs devices");
      Napi::Array d = o.Get("devices").As<Napi::Array>();
      std::vector<std::unique_ptr<Backend>> bes;
      std::vector<Backend*> raw;
      for (uint32_t r = 0; r < d.Length(); r++) {
        bes.push_back(make_cuda_backend(d.Get(r).As<Napi::Number>().Int32Value()));
        raw.push_back(bes.back().get());
      }
      const int64_t rows = (int64_t)get_number(o, "rows", 1), cols = (int64_t)get_number(o, "cols", 4096);
      const int calls = (int)get_number(o, "calls", 64), reps = (int)get_number(o, "reps", 20);
      if (raw.size() < 2 || rows <= 0 || cols <= 0 || calls <= 0 || reps <= 0)
        fail(ErrorCode::InvalidArgument, "runCollective: time_all_reduce_f16 needs 2+ devices and positive rows, cols, calls, reps");
      const bool fused = o.Get("fused").IsBoolean() && o.Get("fused").As<Napi::Boolean>().Value();
      RankThreads threads((int)raw.size());
      auto coll = make_cuda_tp_collective(raw);
      const int64_t flush_mb = (int64_t)get_number(o, "flushMb", 0);
      const CollectiveTiming t = time_cuda_all_reduce_f16(*coll, raw, threads, rows, cols, calls, reps, fused, flush_mb);
      Napi::Object res = Napi::Object::New(env);
      res.Set("usPerCall", t.us_per_call);
      res.Set("flushUs", t.flush_us);
      res.Set("graphed", t.graphed);
      res.Set("fused", t.fused);
      return res;
#else
      fail(ErrorCode::BackendUnavailable, "runCollective: backend 'cuda' is not built into this addon (cpu variant)");
#endif
    }
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
    const std::string backend = get_string(o, "backend", "cpu");
    std::vector<std::vector<float>> outs((size_t)n);
    // spinUs: how long the rank threads poll for the next run before they sleep (RankThreads; the cuda decoder's
    // default is 20 ms); LMFLEET_TP_SPIN_US in the process environment still overrides it
    RankThreads threads(n, (int64_t)get_number(o, "spinUs", 0));
    if (backend == "cuda") {
#ifdef LMFLEET_WITH_CUDA
      std::vector<int> devices((size_t)n, 0);
      if (o.Get("devices").IsArray()) {
        Napi::Array d = o.Get("devices").As<Napi::Array>();
        if ((int)d.Length() != n) fail(ErrorCode::InvalidArgument, "runCollective: devices must list one ordinal per rank");
        for (int r = 0; r < n; r++) devices[r] = d.Get((uint32_t)r).As<Napi::Number>().Int32Value();
      }
      std::vector<std::unique_ptr<Backend>> bes;
      std::vector<Backend*> raw;
      for (int r = 0; r < n; r++) {
        bes.push_back(make_cuda_backend(devices[r]));
        raw.push_back(bes.back().get());
      }
      if (op == "all_reduce_add_rms_norm_f16") {
        auto floats = [&](const char* key, size_t want) {
          Napi::Value v = o.Get(key);
          if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array ||
              v.As<Napi::Float32Array>().ElementLength() != want)
            fail(ErrorCode::InvalidArgument, std::string("runCollective: ") + key + " must be a Float32Array of " + std::to_string(want));
          Napi::Float32Array a = v.As<Napi::Float32Array>();
          return std::vector<float>(a.Data(), a.Data() + a.ElementLength());
        };
        const int64_t cols = count / rows;
        const std::vector<float> res = floats("residual", (size_t)count), w = floats("weight", (size_t)cols);
        auto coll = make_cuda_tp_collective(raw);
        const FusedNormRun f = run_cuda_all_reduce_add_rms_norm_f16(*coll, raw, threads, bufs, res, w, rows, cols,
                                                                    (float)get_number(o, "eps", 1e-5), repeat);
        Napi::Object out = Napi::Object::New(env);
        out.Set("fused", f.fused);
        Napi::Array ys = Napi::Array::New(env, (size_t)n), rs = Napi::Array::New(env, (size_t)n);
        for (int r = 0; r < n; r++) {
          Napi::Float32Array y = Napi::Float32Array::New(env, f.y[(size_t)r].size());
          Napi::Float32Array rr = Napi::Float32Array::New(env, f.residual[(size_t)r].size());
          if (!f.y[(size_t)r].empty()) std::memcpy(y.Data(), f.y[(size_t)r].data(), f.y[(size_t)r].size() * 4);
          if (!f.residual[(size_t)r].empty()) std::memcpy(rr.Data(), f.residual[(size_t)r].data(), f.residual[(size_t)r].size() * 4);
          ys.Set((uint32_t)r, y);
          rs.Set((uint32_t)r, rr);
        }
        out.Set("y", ys);
        out.Set("residual", rs);
        return out;
      }
      const bool f16 = op == "all_reduce_sum_f16";
      const size_t es = f16 ? 2 : 4;
      const int64_t out_count = op == "all_gather" ? count * n : count;
      std::vector<Buffer> in_dev, out_dev;
      for (int r = 0; r < n; r++) {
        in_dev.emplace_back(raw[r], (size_t)count * es);
        out_dev.emplace_back(raw[r], (size_t)out_count * es);
      }
      {
        auto coll = make_cuda_tp_collective(raw);
        for (int i = 0; i < repeat; i++) {
          threads.run(coll.get(), [&](int r) {
            if (r == fail_rank) fail(ErrorCode::InvalidArgument, "rank " + std::to_string(r) + " failed on purpose");
            Backend& be = *raw[r];
            if (f16) {
              std::vector<uint16_t> h((size_t)count);
              for (int64_t j = 0; j < count; j++) h[j] = f32_to_f16(bufs[r][j]);
              be.upload(out_dev[r].get(), h.data(), h.size() * 2);  // binds the rank's device
              coll->all_reduce_sum_f16(r, out_dev[r].get(), count);
              be.download(h.data(), out_dev[r].get(), h.size() * 2);
              outs[r].resize((size_t)count);
              for (int64_t j = 0; j < count; j++) outs[r][j] = f16_to_f32(h[j]);
            } else if (op == "all_reduce_sum") {
              be.upload(out_dev[r].get(), bufs[r].data(), (size_t)count * 4);
              coll->all_reduce_sum(r, out_dev[r].as<float>(), count);
              outs[r].resize((size_t)count);
              be.download(outs[r].data(), out_dev[r].get(), (size_t)count * 4);
            } else if (op == "all_gather") {
              be.upload(in_dev[r].get(), bufs[r].data(), (size_t)count * 4);
              coll->all_gather(r, in_dev[r].as<float>(), out_dev[r].as<float>(), rows, count / rows);
              outs[r].resize((size_t)out_count);
              be.download(outs[r].data(), out_dev[r].get(), (size_t)out_count * 4);
            } else if (op == "barrier") {
              be.synchronize();
              coll->barrier(r);
              outs[r] = bufs[r];
            } else {
              fail(ErrorCode::InvalidArgument, "runCollective: unknown op '" + op + "'");
            }
          });
        }
      }
#else
      fail(ErrorCode::BackendUnavailable, "runCollective: backend 'cuda' is not built into this addon (cpu variant)");
#endif
    } else {
    auto coll = make_cpu_collective(n);
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
