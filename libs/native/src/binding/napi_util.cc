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

}  // namespace lmfleet
