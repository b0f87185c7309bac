// AwqSession (engine/awq_session.h) as a JS object: createAwqSession(config) on the addon's default backend (the one
// runOp uses). Every method returns a Promise; the work runs on a libuv worker thread under the session's lock.
// Typed arrays passed in are referenced (not copied) until the call settles: callers must not modify them meanwhile.
#include <napi.h>

#include <cstring>
#include <functional>
#include <memory>

#include "binding/addon_state.h"
#include "binding/napi_util.h"
#include "engine/awq_session.h"

namespace lmfleet {

namespace {

AwqSessionConfig parse_session_config(const Napi::Value& v) {
  if (!v.IsObject()) fail(ErrorCode::InvalidArgument, "createAwqSession(config): config must be an object");
  Napi::Object o = v.As<Napi::Object>();
  AwqSessionConfig c;
  c.hidden = (int64_t)get_number(o, "hiddenSize", 0, true);
  c.inter = (int64_t)get_number(o, "intermediateSize", 0, true);
  c.heads = (int64_t)get_number(o, "numHeads", 0, true);
  c.kv_heads = (int64_t)get_number(o, "numKvHeads", 0, true);
  c.head_dim = (int64_t)get_number(o, "headDim", 0, true);
  c.eps = (float)get_number(o, "rmsNormEps", 1e-6);
  c.qk_norm = get_bool(o, "qkNorm", false);
  // Gemma's layers (GeGLU, sandwich norms, a local rope) are not the session's Llama-style layer: the engine's
  // TypeScript path (quant/block-forward.ts) calibrates and quantizes them
  if (get_string(o, "hiddenAct", "silu") != "silu" || get_bool(o, "sandwichNorms", false) ||
      !(o.Get("ropeLocal").IsUndefined() || o.Get("ropeLocal").IsNull()))
    fail(ErrorCode::InvalidArgument, "createAwqSession: only SwiGLU layers without sandwich norms or a local rope run in the "
                                     "native layer session (Gemma: calibrate / auto_awq with session: false)");
  c.rope = get_rope(o, "createAwqSession");
  c.rope.max_position = (int64_t)get_number(o, "maxPositionEmbeddings", 2048);
  return c;
}

Napi::Float32Array f32_arg(const Napi::Value& v, const std::string& what) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
    fail(ErrorCode::InvalidArgument, what + " must be a Float32Array");
  return v.As<Napi::Float32Array>();
}

std::vector<int32_t> i32_vec(const Napi::Value& v, const std::string& what) {
  if (v.IsUndefined() || v.IsNull()) return {};
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array)
    fail(ErrorCode::InvalidArgument, what + " must be an Int32Array");
  Napi::Int32Array a = v.As<Napi::Int32Array>();
  return std::vector<int32_t>(a.Data(), a.Data() + a.ElementLength());
}

Napi::Float32Array to_f32(Napi::Env env, const std::vector<float>& v) {
  Napi::Float32Array a = Napi::Float32Array::New(env, v.size());
  if (!v.empty()) std::memcpy(a.Data(), v.data(), v.size() * 4);
  return a;
}
Napi::Float64Array to_f64(Napi::Env env, const std::vector<double>& v) {
  Napi::Float64Array a = Napi::Float64Array::New(env, v.size());
  if (!v.empty()) std::memcpy(a.Data(), v.data(), v.size() * 8);
  return a;
}

// A session call: `work` runs on the worker thread under the lock, `done` builds the result on the JS thread.
class SessionWorker : public CodedWorker {
 public:
  SessionWorker(Napi::Env env, std::shared_ptr<AwqSession> s, std::function<void(AwqSession&)> work,
                std::function<Napi::Value(Napi::Env)> done)
      : CodedWorker(env), s_(std::move(s)), work_(std::move(work)), done_(std::move(done)) {}
  void keep(const Napi::Value& v) { refs_.push_back(Napi::Persistent(v.As<Napi::Object>())); }

 protected:
  void run() override {
    std::lock_guard<std::mutex> g(s_->lock());
    work_(*s_);
  }
  Napi::Value result(Napi::Env env) override { return done_ ? done_(env) : env.Undefined(); }

 private:
  std::shared_ptr<AwqSession> s_;
  std::function<void(AwqSession&)> work_;
  std::function<Napi::Value(Napi::Env)> done_;
  std::vector<Napi::ObjectReference> refs_;
};

class AwqSessionWrap : public Napi::ObjectWrap<AwqSessionWrap> {
 public:
  static Napi::FunctionReference constructor;
  static void Init(Napi::Env env, Napi::Object exports) {
    Napi::Function f = DefineClass(env, "NativeAwqSession",
                                   {InstanceMethod("setTensors", &AwqSessionWrap::SetTensors),
                                    InstanceMethod("setInput", &AwqSessionWrap::SetInput),
                                    InstanceMethod("run", &AwqSessionWrap::Run),
                                    InstanceMethod("scaleLosses", &AwqSessionWrap::ScaleLosses),
                                    InstanceMethod("clipSearch", &AwqSessionWrap::ClipSearch),
                                    InstanceMethod("quantize", &AwqSessionWrap::Quantize),
                                    InstanceMethod("input", &AwqSessionWrap::Input),
                                    InstanceMethod("dispose", &AwqSessionWrap::Dispose)});
    constructor = Napi::Persistent(f);
    constructor.SuppressDestruct();
    exports.Set("createAwqSession", Napi::Function::New(env, [](const Napi::CallbackInfo& info) -> Napi::Value {
      return constructor.New({info.Length() > 0 ? info[0] : info.Env().Undefined()});
    }, "createAwqSession"));
  }

  explicit AwqSessionWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<AwqSessionWrap>(info) {
    js_guard(info.Env(), [&] {
      s_ = std::make_shared<AwqSession>(default_backend(), parse_session_config(info.Length() > 0 ? info[0] : info.Env().Undefined()));
    });
  }

 private:
  std::shared_ptr<AwqSession> session() const {
    if (!s_) fail(ErrorCode::Disposed, "awq session was disposed");
    return s_;
  }
  Napi::Value queue(SessionWorker* w) {
    Napi::Promise p = w->promise();
    w->Queue();
    return p;
  }

  // setTensors({ name: Float32Array, ... }, { window?, rope? }): window, the layer's sliding window (0: full
  // attention), rope false for a NoPE layer; absent: unchanged, so a call that replaces one tensor keeps them
  Napi::Value SetTensors(const Napi::CallbackInfo& info) {
    return js_guard(info.Env(), [&]() -> Napi::Value {
      if (info.Length() < 1 || !info[0].IsObject()) fail(ErrorCode::InvalidArgument, "setTensors(tensors): an object of Float32Arrays");
      Napi::Object o = info[0].As<Napi::Object>();
      Napi::Array keys = o.GetPropertyNames();
      struct T { std::string name; const float* p; int64_t n; };
      std::vector<T> ts;
      std::vector<Napi::Value> keep;
      for (uint32_t i = 0; i < keys.Length(); i++) {
        const std::string k = keys.Get(i).As<Napi::String>().Utf8Value();
        Napi::Float32Array a = f32_arg(o.Get(k), "setTensors: " + k);
        ts.push_back({k, a.Data(), (int64_t)a.ElementLength()});
        keep.push_back(a);
      }
      int64_t window = -1;  // -1: not given
      if (info.Length() > 1 && info[1].IsObject() && info[1].As<Napi::Object>().Has("window") &&
          !info[1].As<Napi::Object>().Get("window").IsUndefined()) {
        window = (int64_t)get_number(info[1].As<Napi::Object>(), "window", 0);
        if (window < 0) fail(ErrorCode::InvalidArgument, "setTensors: window must be >= 0");
      }
      int rope = -1;  // -1: not given
      if (info.Length() > 1 && info[1].IsObject() && info[1].As<Napi::Object>().Has("rope") &&
          !info[1].As<Napi::Object>().Get("rope").IsUndefined())
        rope = get_bool(info[1].As<Napi::Object>(), "rope", true) ? 1 : 0;
      auto* w = new SessionWorker(info.Env(), session(), [ts, window, rope](AwqSession& s) {
        for (const T& t : ts) s.set_tensor(t.name, t.p, t.n);
        if (window >= 0) s.set_window(window);
        if (rope >= 0) s.set_rope(rope == 1);
      }, nullptr);
      for (auto& v : keep) w->keep(v);
      return queue(w);
    });
  }

  // setInput(x: Float32Array [tokens, hidden], seqLens: Int32Array, { append?, reserveTokens? })
  Napi::Value SetInput(const Napi::CallbackInfo& info) {
    return js_guard(info.Env(), [&]() -> Napi::Value {
      auto s = session();
      Napi::Float32Array x = f32_arg(info[0], "setInput(x)");
      auto lens = i32_vec(info[1], "setInput(seqLens)");
      bool append = false;
      int64_t reserve = 0;
      if (info.Length() > 2 && info[2].IsObject()) {
        append = get_bool(info[2].As<Napi::Object>(), "append", false);
        reserve = (int64_t)get_number(info[2].As<Napi::Object>(), "reserveTokens", 0);
      }
      const int64_t H = s->cfg().hidden;
      if ((int64_t)x.ElementLength() % H) fail(ErrorCode::InvalidArgument, "setInput: x is not a whole number of hidden rows");
      const float* p = x.Data();
      const int64_t tokens = (int64_t)x.ElementLength() / H;
      auto* w = new SessionWorker(info.Env(), s, [=](AwqSession& ss) { ss.set_input(p, tokens, lens, append, reserve); }, nullptr);
      w->keep(x);
      return queue(w);
    });
  }

  // run({ stats?, taps?, advance?, batchTokens? }) -> stats ? { attnIn, oIn, mlpIn, downIn, k, v: {absmax, abssum
  // (Float64Array), min, max, rows} } : undefined
  Napi::Value Run(const Napi::CallbackInfo& info) {
    return js_guard(info.Env(), [&]() -> Napi::Value {
      Napi::Object o = info.Length() > 0 && info[0].IsObject() ? info[0].As<Napi::Object>() : Napi::Object::New(info.Env());
      const bool stats = get_bool(o, "stats", false), taps = get_bool(o, "taps", false), adv = get_bool(o, "advance", false);
      const int64_t bt = (int64_t)get_number(o, "batchTokens", 4096);
      if (bt < 1) fail(ErrorCode::InvalidArgument, "run: batchTokens must be >= 1");
      struct St { std::vector<float> absmax, min, max; std::vector<double> sum; int64_t rows = 0; };
      auto out = std::make_shared<std::vector<St>>(stats ? AwqSession::kTaps : 0);
      auto* w = new SessionWorker(info.Env(), session(), [=](AwqSession& s) {
        s.run(stats, taps, adv, bt);
        for (size_t t = 0; t < out->size(); t++) {
          St& st = (*out)[t];
          s.tap_stats((int)t, st.absmax, st.sum, st.min, st.max, st.rows);
        }
      }, [=](Napi::Env env) -> Napi::Value {
        if (!stats) return env.Undefined();
        static const char* names[] = {"attnIn", "oIn", "mlpIn", "downIn", "k", "v"};
        Napi::Object r = Napi::Object::New(env);
        for (size_t t = 0; t < out->size(); t++) {
          const St& st = (*out)[t];
          Napi::Object e = Napi::Object::New(env);
          e.Set("absmax", to_f32(env, st.absmax));
          e.Set("abssum", to_f64(env, st.sum));
          e.Set("min", to_f32(env, st.min));
          e.Set("max", to_f32(env, st.max));
          e.Set("rows", Napi::Number::New(env, (double)st.rows));
          r.Set(names[t], e);
        }
        return r;
      });
      return queue(w);
    });
  }

  // scaleLosses(group 0..3, candidates: Float32Array [n, in], { seqs?, rows?: Int32Array, bits, groupSize }) -> Float64Array [n]
  Napi::Value ScaleLosses(const Napi::CallbackInfo& info) {
    return js_guard(info.Env(), [&]() -> Napi::Value {
      if (info.Length() < 3 || !info[0].IsNumber() || !info[2].IsObject())
        fail(ErrorCode::InvalidArgument, "scaleLosses(group, candidates, { seqs | rows, bits, groupSize })");
      auto s = session();
      const int g = info[0].As<Napi::Number>().Int32Value();
      Napi::Float32Array c = f32_arg(info[1], "scaleLosses(candidates)");
      Napi::Object o = info[2].As<Napi::Object>();
      const int64_t seqs = (int64_t)get_number(o, "seqs", 0);
      auto rows = i32_vec(o.Get("rows"), "scaleLosses rows");
      const int bits = (int)get_number(o, "bits", 4), group = (int)get_number(o, "groupSize", 0, true);
      if (g < 0 || g > 3) fail(ErrorCode::InvalidArgument, "scaleLosses: group must be 0..3");
      static const int first[4] = {0, 3, 4, 6};
      const int64_t in = s->linear_shape(first[g])[1];
      if ((int64_t)c.ElementLength() % in || c.ElementLength() == 0)
        fail(ErrorCode::InvalidArgument, "scaleLosses: candidates must be [n, " + std::to_string(in) + "]");
      const int n = (int)(c.ElementLength() / in);
      const float* p = c.Data();
      auto out = std::make_shared<std::vector<double>>();
      auto* w = new SessionWorker(info.Env(), s, [=](AwqSession& ss) { *out = ss.scale_losses(g, p, n, seqs, rows, bits, group); },
                                  [=](Napi::Env env) -> Napi::Value { return to_f64(env, *out); });
      w->keep(c);
      return queue(w);
    });
  }

  // clipSearch(linear name, rows: Int32Array, { bits, groupSize, nGrid, maxShrink }) -> { clip, err } [out, in / group]
  Napi::Value ClipSearch(const Napi::CallbackInfo& info) {
    return js_guard(info.Env(), [&]() -> Napi::Value {
      if (info.Length() < 3 || !info[0].IsString() || !info[2].IsObject())
        fail(ErrorCode::InvalidArgument, "clipSearch(linear, rows, { bits, groupSize, nGrid, maxShrink })");
      const std::string name = info[0].As<Napi::String>().Utf8Value();
      const int l = AwqSession::linear_index(name);
      if (l < 0) fail(ErrorCode::InvalidArgument, "clipSearch: unknown linear '" + name + "'");
      auto rows = i32_vec(info[1], "clipSearch(rows)");
      Napi::Object o = info[2].As<Napi::Object>();
      const int bits = (int)get_number(o, "bits", 4), group = (int)get_number(o, "groupSize", 0, true);
      const int n_grid = (int)get_number(o, "nGrid", 20);
      const double shrink = get_number(o, "maxShrink", 0.5);
      auto clip = std::make_shared<std::vector<float>>(), err = std::make_shared<std::vector<float>>();
      auto* w = new SessionWorker(info.Env(), session(), [=](AwqSession& s) { s.clip_search(l, rows, bits, group, n_grid, shrink, *clip, *err); },
                                  [=](Napi::Env env) -> Napi::Value {
                                    Napi::Object r = Napi::Object::New(env);
                                    r.Set("clip", to_f32(env, *clip));
                                    r.Set("err", to_f32(env, *err));
                                    return r;
                                  });
      return queue(w);
    });
  }

  // quantize(linear name, clip: Float32Array | undefined, { bits, groupSize, pack? }) -> { q: Uint8Array [out, in],
  // zeros: Uint8Array, scales: Float32Array [out, in / group], gemm? (pack: the AutoAWQ GEMM tensors, packed here on
  // the worker thread) }; the session keeps the dequantized weight
  Napi::Value Quantize(const Napi::CallbackInfo& info) {
    return js_guard(info.Env(), [&]() -> Napi::Value {
      if (info.Length() < 3 || !info[0].IsString() || !info[2].IsObject())
        fail(ErrorCode::InvalidArgument, "quantize(linear, clip | undefined, { bits, groupSize })");
      const std::string name = info[0].As<Napi::String>().Utf8Value();
      const int l = AwqSession::linear_index(name);
      if (l < 0) fail(ErrorCode::InvalidArgument, "quantize: unknown linear '" + name + "'");
      std::vector<float> clip;
      if (!info[1].IsUndefined() && !info[1].IsNull()) {
        Napi::Float32Array c = f32_arg(info[1], "quantize(clip)");
        clip.assign(c.Data(), c.Data() + c.ElementLength());
      }
      Napi::Object o = info[2].As<Napi::Object>();
      const int bits = (int)get_number(o, "bits", 4), group = (int)get_number(o, "groupSize", 0, true);
      struct R { std::vector<uint8_t> q, z; std::vector<float> s; std::vector<int32_t> qw, qz; std::vector<uint16_t> s16; };
      auto r = std::make_shared<R>();
      const bool gemm = get_bool(o, "pack", false);
      if (gemm && bits != 4) fail(ErrorCode::InvalidArgument, "quantize: pack needs 4-bit codes (the AutoAWQ GEMM layout)");
      auto* w = new SessionWorker(info.Env(), session(), [=](AwqSession& s) {
        s.quantize(l, clip, bits, group, r->q, r->z, r->s);
        if (gemm) {
          const auto sh = s.linear_shape(l);
          AwqSession::pack_awq_gemm(r->q, r->z, r->s, sh[0], sh[1], group, r->qw, r->qz, r->s16);
        }
      },
                                  [=](Napi::Env env) -> Napi::Value {
                                    Napi::Object out = Napi::Object::New(env);
                                    auto u8 = [&](const std::vector<uint8_t>& v) {
                                      Napi::Uint8Array a = Napi::Uint8Array::New(env, v.size());
                                      if (!v.empty()) std::memcpy(a.Data(), v.data(), v.size());
                                      return a;
                                    };
                                    out.Set("q", u8(r->q));
                                    out.Set("zeros", u8(r->z));
                                    out.Set("scales", to_f32(env, r->s));
                                    if (gemm) {
                                      Napi::Object g = Napi::Object::New(env);
                                      Napi::Int32Array qw = Napi::Int32Array::New(env, r->qw.size());
                                      if (!r->qw.empty()) std::memcpy(qw.Data(), r->qw.data(), r->qw.size() * 4);
                                      Napi::Int32Array qz = Napi::Int32Array::New(env, r->qz.size());
                                      if (!r->qz.empty()) std::memcpy(qz.Data(), r->qz.data(), r->qz.size() * 4);
                                      Napi::Uint16Array s16 = Napi::Uint16Array::New(env, r->s16.size());
                                      if (!r->s16.empty()) std::memcpy(s16.Data(), r->s16.data(), r->s16.size() * 2);
                                      g.Set("qweight", qw);
                                      g.Set("qzeros", qz);
                                      g.Set("scales", s16);
                                      out.Set("gemm", g);
                                    }
                                    return out;
                                  });
      return queue(w);
    });
  }

  // input() -> Float32Array [tokens, hidden]: the current layer input (after run({ advance: true }): the output)
  Napi::Value Input(const Napi::CallbackInfo& info) {
    return js_guard(info.Env(), [&]() -> Napi::Value {
      auto out = std::make_shared<std::vector<float>>();
      auto* w = new SessionWorker(info.Env(), session(), [=](AwqSession& s) { *out = s.input(); },
                                  [=](Napi::Env env) -> Napi::Value { return to_f32(env, *out); });
      return queue(w);
    });
  }

  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    s_.reset();  // memory goes when the last running call lets go
    return info.Env().Undefined();
  }

  std::shared_ptr<AwqSession> s_;
};

Napi::FunctionReference AwqSessionWrap::constructor;

}  // namespace

void init_awq_session(Napi::Env env, Napi::Object exports) { AwqSessionWrap::Init(env, exports); }

}  // namespace lmfleet
