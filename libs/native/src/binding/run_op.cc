#include "binding/run_op.h"

#include <cstring>
#include <mutex>

#include "binding/addon_state.h"
#include "binding/napi_util.h"
#include "core/op_call.h"

namespace lmfleet {

namespace {

using RunFn = void (*)(Backend&, OpCall&);
struct OpEntry {
  const char* name;
  RunFn fn;
};
const OpEntry kOps[] = {
#define LMFLEET_OP(op) {#op, &op##_run},
#include "ops/ops.def"
#undef LMFLEET_OP
};

class RunOpWorker : public CodedWorker {
 public:
  RunOpWorker(Napi::Env env, RunFn fn, OpCall call) : CodedWorker(env), fn_(fn), call_(std::move(call)) {}

 protected:
  void run() override { fn_(default_backend(), call_); }
  Napi::Value result(Napi::Env env) override {
    Napi::Array arr = Napi::Array::New(env, call_.outputs.size());
    for (size_t i = 0; i < call_.outputs.size(); i++) {
      const HostTensor& t = call_.outputs[i];
      Napi::Object o = Napi::Object::New(env);
      o.Set("dtype", dtype_name(t.dtype));
      Napi::Array shape = Napi::Array::New(env, t.shape.size());
      for (size_t d = 0; d < t.shape.size(); d++) shape.Set(d, Napi::Number::New(env, (double)t.shape[d]));
      o.Set("shape", shape);
      Napi::Uint8Array data = Napi::Uint8Array::New(env, t.bytes.size());
      if (!t.bytes.empty()) std::memcpy(data.Data(), t.bytes.data(), t.bytes.size());
      o.Set("data", data);
      arr.Set(i, o);
    }
    return arr;
  }

 private:
  RunFn fn_;
  OpCall call_;
};

}  // namespace

std::vector<std::string> list_ops() {
  std::vector<std::string> out;
  for (const auto& e : kOps)
    if (default_backend().supports(e.name)) out.push_back(e.name);
  return out;
}

Napi::Value run_op(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return js_guard(env, [&]() -> Napi::Value {
    if (info.Length() < 2 || !info[0].IsString() || !info[1].IsArray())
      fail(ErrorCode::InvalidArgument, "runOp(name, inputs, params)");
    OpCall call;
    call.op = info[0].As<Napi::String>().Utf8Value();
    RunFn fn = nullptr;
    for (const auto& e : kOps)
      if (call.op == e.name) fn = e.fn;
    if (!fn) fail(ErrorCode::InvalidArgument, "runOp: unknown op '" + call.op + "'");
    if (!default_backend().supports(call.op))
      fail(ErrorCode::BackendUnavailable, "runOp: op '" + call.op + "' not implemented on this backend");
    Napi::Array inputs = info[1].As<Napi::Array>();
    for (uint32_t i = 0; i < inputs.Length(); i++) {
      Napi::Value v = inputs.Get(i);
      if (!v.IsObject()) fail(ErrorCode::InvalidArgument, "runOp: input " + std::to_string(i) + " is not an object");
      Napi::Object o = v.As<Napi::Object>();
      HostTensor t;
      t.dtype = parse_dtype(get_string(o, "dtype", "", true));
      Napi::Value sh = o.Get("shape");
      if (!sh.IsArray()) fail(ErrorCode::InvalidArgument, "runOp: input " + std::to_string(i) + " has no shape");
      Napi::Array sa = sh.As<Napi::Array>();
      for (uint32_t d = 0; d < sa.Length(); d++) {
        Napi::Value dv = sa.Get(d);
        if (!dv.IsNumber() || dv.As<Napi::Number>().DoubleValue() < 0)
          fail(ErrorCode::InvalidArgument, "runOp: bad shape of input " + std::to_string(i));
        t.shape.push_back(dv.As<Napi::Number>().Int64Value());
      }
      Napi::Value dv = o.Get("data");
      if (!dv.IsTypedArray()) fail(ErrorCode::InvalidArgument, "runOp: input " + std::to_string(i) + " data must be a Uint8Array");
      Napi::TypedArray ta = dv.As<Napi::TypedArray>();
      size_t nbytes = ta.ByteLength();
      if ((int64_t)nbytes != t.numel() * (int64_t)dtype_size(t.dtype))
        fail(ErrorCode::InvalidArgument, "runOp: input " + std::to_string(i) + " has " + std::to_string(nbytes) +
                                             " bytes, shape " + t.shape_str() + " " + dtype_name(t.dtype) + " needs " +
                                             std::to_string(t.numel() * dtype_size(t.dtype)));
      t.bytes.resize(nbytes);
      if (nbytes) std::memcpy(t.bytes.data(), static_cast<uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset(), nbytes);
      call.inputs.push_back(std::move(t));
    }
    if (info.Length() > 2 && info[2].IsObject()) {
      Napi::Object p = info[2].As<Napi::Object>();
      Napi::Array keys = p.GetPropertyNames();
      for (uint32_t i = 0; i < keys.Length(); i++) {
        std::string k = keys.Get(i).As<Napi::String>().Utf8Value();
        Napi::Value v = p.Get(k);
        if (v.IsNumber()) call.nums[k] = v.As<Napi::Number>().DoubleValue();
        else if (v.IsString()) call.strs[k] = v.As<Napi::String>().Utf8Value();
        else if (v.IsBoolean()) call.nums[k] = v.As<Napi::Boolean>().Value() ? 1 : 0;
        else fail(ErrorCode::InvalidArgument, "runOp: param '" + k + "' must be a number or string");
      }
    }
    auto* w = new RunOpWorker(env, fn, std::move(call));
    Napi::Promise p = w->promise();
    w->Queue();
    return p;
  });
}

}  // namespace lmfleet
