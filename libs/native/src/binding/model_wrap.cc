#include "binding/model_wrap.h"

#include <cmath>
#include <cstring>

#include "binding/napi_util.h"
#include "engine/decoder.h"

namespace lmfleet {

Napi::FunctionReference ModelWrap::constructor;

namespace {

// An optional array of integers (absent or null: empty), `what` naming them in the error.
std::vector<int64_t> int_list(const Napi::Object& o, const char* key, const char* what) {
  std::vector<int64_t> out;
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) return out;
  const std::string err = std::string("model config: ") + key + " must be an array of " + what;
  if (!v.IsArray()) fail(ErrorCode::InvalidArgument, err);
  Napi::Array a = v.As<Napi::Array>();
  for (uint32_t i = 0; i < a.Length(); i++) {
    if (!a.Get(i).IsNumber()) fail(ErrorCode::InvalidArgument, err);
    out.push_back(a.Get(i).As<Napi::Number>().Int64Value());
  }
  return out;
}

ModelConfig parse_config(const Napi::Value& v) {
  if (!v.IsObject()) fail(ErrorCode::InvalidArgument, "createModel(config): config must be an object");
  Napi::Object o = v.As<Napi::Object>();
  ModelConfig c;
  c.backend = get_string(o, "backend", "cpu");
  c.threads = (int)get_number(o, "threads", 0);
  c.device = (int)get_number(o, "device", 0);
  c.tp = (int)get_number(o, "tp", 1);
  Napi::Value dvs = o.Get("devices");
  if (dvs.IsArray()) {
    Napi::Array da = dvs.As<Napi::Array>();
    for (uint32_t i = 0; i < da.Length(); i++) {
      if (!da.Get(i).IsNumber()) fail(ErrorCode::InvalidArgument, "model config: devices must be numbers");
      c.devices.push_back(da.Get(i).As<Napi::Number>().Int32Value());
    }
  } else if (!dvs.IsUndefined() && !dvs.IsNull()) {
    fail(ErrorCode::InvalidArgument, "model config: devices must be an array of cuda ordinals");
  }
  c.dtype = get_string(o, "dtype", "f16");
  c.vocab = (int64_t)get_number(o, "vocabSize", 0, true);
  c.hidden = (int64_t)get_number(o, "hiddenSize", 0, true);
  c.inter = (int64_t)get_number(o, "intermediateSize", 0, true);
  c.layers = (int64_t)get_number(o, "numLayers", 0, true);
  c.heads = (int64_t)get_number(o, "numHeads", 0, true);
  c.kv_heads = (int64_t)get_number(o, "numKvHeads", 0, true);
  c.head_dim = (int64_t)get_number(o, "headDim", 0, true);
  c.eps = (float)get_number(o, "rmsNormEps", 1e-6);
  c.max_position = (int64_t)get_number(o, "maxPositionEmbeddings", 2048);
  c.tie_embeddings = get_bool(o, "tieWordEmbeddings", false);
  c.qk_norm = get_bool(o, "qkNorm", false);
  c.layer_window = int_list(o, "layerWindows", "window lengths (0: full attention)");
  c.no_rope_layers = int_list(o, "noRopeLayers", "layer indices");
  c.num_experts = (int64_t)get_number(o, "numExperts", 0);
  c.experts_per_tok = (int64_t)get_number(o, "numExpertsPerTok", 0);
  c.moe_inter = (int64_t)get_number(o, "moeIntermediateSize", 0);
  c.norm_topk_prob = get_bool(o, "normTopkProb", true);
  c.dense_layers = int_list(o, "denseLayers", "layer indices");
  c.kv_quant_policy = (int)get_number(o, "kvQuantPolicy", 0);
  Napi::Value qpv = o.Get("kvQparams");
  if (qpv.IsTypedArray() && qpv.As<Napi::TypedArray>().TypedArrayType() == napi_float32_array) {
    Napi::Float32Array a = qpv.As<Napi::Float32Array>();
    c.kv_qparams.assign(a.Data(), a.Data() + a.ElementLength());
  } else if (!qpv.IsUndefined() && !qpv.IsNull()) {
    fail(ErrorCode::InvalidArgument, "model config: kvQparams must be a Float32Array");
  }
  const std::string act = get_string(o, "hiddenAct", "silu");
  if (act == "gelu_tanh") c.act = Activation::GeluTanh;
  else if (act == "gelu") c.act = Activation::Gelu;
  else if (act != "silu") fail(ErrorCode::InvalidArgument, "hiddenAct '" + act + "' is not supported (silu, gelu_tanh, gelu)");
  c.embed_scale = (float)get_number(o, "embedScale", 1.0);
  if (!std::isfinite(c.embed_scale)) fail(ErrorCode::InvalidArgument, "model config: embedScale must be a finite number");
  c.sandwich_norms = get_bool(o, "sandwichNorms", false);
  c.attn_softcap = (float)get_number(o, "attnLogitSoftcap", 0.0);
  c.final_softcap = (float)get_number(o, "finalLogitSoftcap", 0.0);
  if (o.Has("quant") && !o.Get("quant").IsUndefined() && !o.Get("quant").IsNull()) {
    if (!o.Get("quant").IsObject()) fail(ErrorCode::InvalidArgument, "model config: quant must be an object");
    Napi::Object q = o.Get("quant").As<Napi::Object>();
    const std::string method = get_string(q, "method", "awq");
    const int bits = (int)get_number(q, "bits", 4);
    c.quant_group = (int64_t)get_number(q, "groupSize", 0, true);
    if (method != "awq" || bits != 4)
      fail(ErrorCode::InvalidArgument, "model config: quant " + method + " with " + std::to_string(bits) + " bits is not supported (awq, 4 bits)");
    if (c.quant_group != 32 && c.quant_group != 64 && c.quant_group != 128)
      fail(ErrorCode::InvalidArgument, "model config: quant.groupSize must be 32, 64 or 128, got " + std::to_string(c.quant_group));
  }
  c.rope = get_rope(o, "model config");
  c.rope.max_position = c.max_position;
  if (!o.Get("ropeLocal").IsUndefined() && !o.Get("ropeLocal").IsNull()) {
    c.rope_local = get_rope(o, "model config", "ropeLocal");
    c.rope_local.max_position = c.max_position;
    c.has_rope_local = true;
  }
  Napi::Value tv = o.Get("tensors");
  if (!tv.IsArray()) fail(ErrorCode::InvalidArgument, "model config: tensors must be an array");
  Napi::Array ta = tv.As<Napi::Array>();
  for (uint32_t i = 0; i < ta.Length(); i++) {
    Napi::Value ev = ta.Get(i);
    if (!ev.IsObject()) fail(ErrorCode::InvalidArgument, "model config: tensors[" + std::to_string(i) + "] is not an object");
    Napi::Object e = ev.As<Napi::Object>();
    TensorSpec t;
    t.name = get_string(e, "name", "", true);
    t.dtype = parse_dtype(get_string(e, "dtype", "", true));
    Napi::Value sv = e.Get("shape");
    if (!sv.IsArray()) fail(ErrorCode::InvalidArgument, "tensor " + t.name + ": shape must be an array");
    Napi::Array sa = sv.As<Napi::Array>();
    for (uint32_t d = 0; d < sa.Length(); d++) {
      Napi::Value dv = sa.Get(d);
      if (!dv.IsNumber()) fail(ErrorCode::InvalidArgument, "tensor " + t.name + ": shape must be numbers");
      t.shape.push_back(dv.As<Napi::Number>().Int64Value());
    }
    t.scale = get_number(e, "scale", 1.0);
    t.add = get_number(e, "add", 0.0);
    if (!std::isfinite(t.scale) || !std::isfinite(t.add))
      fail(ErrorCode::InvalidArgument, "tensor " + t.name + ": scale and add must be finite numbers");
    Napi::Value dv = e.Get("data");
    if (dv.IsTypedArray()) {
      Napi::TypedArray a = dv.As<Napi::TypedArray>();
      t.data.resize(a.ByteLength());
      if (!t.data.empty())
        std::memcpy(t.data.data(), static_cast<uint8_t*>(a.ArrayBuffer().Data()) + a.ByteOffset(), t.data.size());
    } else {
      t.file = get_string(e, "file", "", false);
      if (t.file.empty()) fail(ErrorCode::InvalidArgument, "tensor " + t.name + ": needs file/offset or data");
      t.offset = (int64_t)get_number(e, "offset", 0);
    }
    c.tensors.push_back(std::move(t));
  }
  return c;
}

class ModelWorker : public CodedWorker {
 public:
  enum Kind { Load, Forward, Score };
  ModelWorker(Napi::Env env, std::shared_ptr<Model> m, Kind kind, std::vector<int32_t> ids)
      : CodedWorker(env), m_(std::move(m)), kind_(kind), ids_(std::move(ids)) {}

 protected:
  void run() override {
    switch (kind_) {
      case Load: m_->load(); break;
      case Forward: out_ = forward_logits(*m_, ids_); break;
      case Score: out_ = score_tokens(*m_, ids_); break;
    }
  }
  Napi::Value result(Napi::Env env) override {
    if (kind_ == Load) return env.Undefined();
    Napi::Float32Array a = Napi::Float32Array::New(env, out_.size());
    if (!out_.empty()) std::memcpy(a.Data(), out_.data(), out_.size() * 4);
    return a;
  }

 private:
  std::shared_ptr<Model> m_;
  Kind kind_;
  std::vector<int32_t> ids_;
  std::vector<float> out_;
};

}  // namespace

std::vector<int32_t> ids_from_js(const Napi::Value& v, const char* what) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array)
    fail(ErrorCode::InvalidArgument, std::string(what) + " must be an Int32Array");
  Napi::Int32Array a = v.As<Napi::Int32Array>();
  return std::vector<int32_t>(a.Data(), a.Data() + a.ElementLength());
}

void ModelWrap::Init(Napi::Env env, Napi::Object exports) {
  Napi::Function f = DefineClass(env, "NativeModel",
                                 {InstanceMethod("load", &ModelWrap::Load), InstanceMethod("forward", &ModelWrap::Forward),
                                  InstanceMethod("scoreTokens", &ModelWrap::ScoreTokens),
                                  InstanceMethod("weightBytes", &ModelWrap::WeightBytes),
                                  InstanceMethod("dispose", &ModelWrap::Dispose)});
  constructor = Napi::Persistent(f);
  constructor.SuppressDestruct();
  exports.Set("createModel", Napi::Function::New(env, [](const Napi::CallbackInfo& info) -> Napi::Value {
    return constructor.New({info.Length() > 0 ? info[0] : info.Env().Undefined()});
  }, "createModel"));
}

ModelWrap::ModelWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ModelWrap>(info) {
  js_guard(info.Env(), [&] {
    model_ = std::make_shared<Model>(parse_config(info.Length() > 0 ? info[0] : info.Env().Undefined()));
  });
}

std::shared_ptr<Model> ModelWrap::model() const {
  if (!model_) fail(ErrorCode::Disposed, "model was disposed");
  return model_;
}

Napi::Value ModelWrap::Load(const Napi::CallbackInfo& info) {
  return js_guard(info.Env(), [&]() -> Napi::Value {
    auto* w = new ModelWorker(info.Env(), model(), ModelWorker::Load, {});
    Napi::Promise p = w->promise();
    w->Queue();
    return p;
  });
}

Napi::Value ModelWrap::Forward(const Napi::CallbackInfo& info) {
  return js_guard(info.Env(), [&]() -> Napi::Value {
    auto m = model();
    auto ids = ids_from_js(info[0], "forward(inputIds)");
    m->ensure_loaded();
    auto* w = new ModelWorker(info.Env(), m, ModelWorker::Forward, std::move(ids));
    Napi::Promise p = w->promise();
    w->Queue();
    return p;
  });
}

Napi::Value ModelWrap::ScoreTokens(const Napi::CallbackInfo& info) {
  return js_guard(info.Env(), [&]() -> Napi::Value {
    auto m = model();
    auto ids = ids_from_js(info[0], "scoreTokens(inputIds)");
    m->ensure_loaded();
    auto* w = new ModelWorker(info.Env(), m, ModelWorker::Score, std::move(ids));
    Napi::Promise p = w->promise();
    w->Queue();
    return p;
  });
}

Napi::Value ModelWrap::WeightBytes(const Napi::CallbackInfo& info) {
  return js_guard(info.Env(), [&]() -> Napi::Value { return Napi::Number::New(info.Env(), (double)model()->weight_bytes()); });
}

Napi::Value ModelWrap::Dispose(const Napi::CallbackInfo& info) {
  model_.reset();  // weights go when the last user (a running worker or engine) lets go
  return info.Env().Undefined();
}

}  // namespace lmfleet
