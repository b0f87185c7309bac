// Model: Napi::ObjectWrap over engine/model.h. load/forward/scoreTokens are AsyncWorkers (Promise).
#pragma once
#include <napi.h>

#include <memory>

#include "engine/model.h"

namespace lmfleet {

class ModelWrap : public Napi::ObjectWrap<ModelWrap> {
 public:
  static void Init(Napi::Env env, Napi::Object exports);
  static Napi::FunctionReference constructor;
  explicit ModelWrap(const Napi::CallbackInfo& info);
  // The model, or E_DISPOSED.
  std::shared_ptr<Model> model() const;

 private:
  Napi::Value Load(const Napi::CallbackInfo& info);
  Napi::Value Forward(const Napi::CallbackInfo& info);
  Napi::Value ScoreTokens(const Napi::CallbackInfo& info);
  Napi::Value WeightBytes(const Napi::CallbackInfo& info);
  Napi::Value Dispose(const Napi::CallbackInfo& info);
  std::shared_ptr<Model> model_;
};

std::vector<int32_t> ids_from_js(const Napi::Value& v, const char* what);

}  // namespace lmfleet
