// Engine: Napi::ObjectWrap over engine/engine.h. Events of each step reach JS as one array through a
// ThreadSafeFunction (index.ts calls onEvent for each). dispose() is idempotent and returns a Promise.
#pragma once
#include <napi.h>

#include <memory>

#include "engine/engine.h"

namespace lmfleet {

class EngineWrap : public Napi::ObjectWrap<EngineWrap> {
 public:
  static void Init(Napi::Env env, Napi::Object exports);
  static Napi::FunctionReference constructor;
  explicit EngineWrap(const Napi::CallbackInfo& info);
  ~EngineWrap() override;

 private:
  Napi::Value Start(const Napi::CallbackInfo& info);
  Napi::Value Submit(const Napi::CallbackInfo& info);
  Napi::Value Cancel(const Napi::CallbackInfo& info);
  Napi::Value EndSession(const Napi::CallbackInfo& info);
  Napi::Value SetAllowedTokens(const Napi::CallbackInfo& info);
  Napi::Value Stats(const Napi::CallbackInfo& info);
  Napi::Value Dispose(const Napi::CallbackInfo& info);
  EngineCore& core();
  void shutdown();

  std::unique_ptr<EngineCore> core_;
  Napi::ThreadSafeFunction tsfn_;
  bool has_tsfn_ = false;
  bool disposed_ = false;
};

}  // namespace lmfleet
