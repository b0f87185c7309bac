#include "binding/napi_util.h"

namespace lmfleet {

double get_number(const Napi::Object& o, const char* key, double def, bool required) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) {
    if (required) fail(ErrorCode::InvalidArgument, std::string("missing number '") + key + "'");
    return def;
  }
  if (!v.IsNumber()) fail(ErrorCode::InvalidArgument, std::string("'") + key + "' must be a number");
  return v.As<Napi::Number>().DoubleValue();
}

std::string get_string(const Napi::Object& o, const char* key, const std::string& def, bool required) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) {
    if (required) fail(ErrorCode::InvalidArgument, std::string("missing string '") + key + "'");
    return def;
  }
  if (!v.IsString()) fail(ErrorCode::InvalidArgument, std::string("'") + key + "' must be a string");
  return v.As<Napi::String>().Utf8Value();
}

bool get_bool(const Napi::Object& o, const char* key, bool def) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) return def;
  if (!v.IsBoolean()) fail(ErrorCode::InvalidArgument, std::string("'") + key + "' must be a boolean");
  return v.As<Napi::Boolean>().Value();
}

RopeParams get_rope(const Napi::Object& config, const std::string& where, const char* key) {
  Napi::Value rv = config.Get(key);
  if (!rv.IsObject()) fail(ErrorCode::InvalidArgument, where + ": " + key + " must be an object");
  Napi::Object r = rv.As<Napi::Object>();
  RopeParams p;
  p.type = get_string(r, "type", "default");
  p.theta = get_number(r, "theta", 10000.0);
  p.factor = get_number(r, "factor", 1.0);
  p.low_freq_factor = get_number(r, "lowFreqFactor", 1.0);
  p.high_freq_factor = get_number(r, "highFreqFactor", 4.0);
  p.original_max_position = (int64_t)get_number(r, "originalMaxPositionEmbeddings", 0);
  p.rotary = get_number(r, "rotaryDim", 0);
  // longrope: the two factor lists and the attention factor (HF's cos/sin multiplier)
  auto factors = [&](const char* key) {
    std::vector<float> v;
    Napi::Value a = r.Get(key);
    if (a.IsUndefined() || a.IsNull()) return v;
    if (!a.IsArray()) fail(ErrorCode::InvalidArgument, where + ": rope." + key + " must be an array of numbers");
    Napi::Array arr = a.As<Napi::Array>();
    for (uint32_t i = 0; i < arr.Length(); i++) {
      Napi::Value x = arr.Get(i);
      if (!x.IsNumber()) fail(ErrorCode::InvalidArgument, where + ": rope." + key + " must be an array of numbers");
      v.push_back(x.As<Napi::Number>().FloatValue());
    }
    return v;
  };
  p.short_factor = factors("shortFactor");
  p.long_factor = factors("longFactor");
  p.attention_factor = get_number(r, "attentionFactor", 1.0);
  p.beta_fast = get_number(r, "betaFast", 32.0);
  p.beta_slow = get_number(r, "betaSlow", 1.0);
  p.truncate = get_bool(r, "truncate", true);
  p.attention_scale = get_number(r, "attentionScale", 0.0);
  if (!(p.attention_scale >= 0)) fail(ErrorCode::InvalidArgument, where + ": rope.attentionScale must be >= 0");
  return p;
}

}  // namespace lmfleet
