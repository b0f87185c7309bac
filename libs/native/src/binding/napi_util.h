// Error plumbing between lmfleet::Error and JS: every native error reaches JS as an Error with `code`.
#pragma once
#include <napi.h>

#include <string>

#include "core/error.h"
#include "ops/rope.h"

namespace lmfleet {

inline Napi::Error make_js_error(Napi::Env env, const std::string& code, const std::string& message) {
  Napi::Error e = Napi::Error::New(env, message);
  e.Value().Set("code", Napi::String::New(env, code));
  e.Value().Set("name", Napi::String::New(env, "NativeError"));
  return e;
}

// Runs fn; lmfleet::Error and std::exception become JS errors with a code.
template <typename F>
auto js_guard(Napi::Env env, F&& fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const Napi::Error&) {
    throw;
  } catch (const Error& e) {
    throw make_js_error(env, error_code_name(e.code), e.message);
  } catch (const std::exception& e) {
    throw make_js_error(env, "E_INTERNAL", e.what());
  }
}

// An AsyncWorker whose Execute may throw lmfleet::Error; the code is kept for OnError.
class CodedWorker : public Napi::AsyncWorker {
 public:
  explicit CodedWorker(Napi::Env env) : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)) {}
  Napi::Promise promise() { return deferred_.Promise(); }

 protected:
  virtual void run() = 0;
  virtual Napi::Value result(Napi::Env env) { return env.Undefined(); }
  void Execute() override {
    try {
      run();
    } catch (const Error& e) {
      code_ = error_code_name(e.code);
      SetError(e.message);
    } catch (const std::exception& e) {
      code_ = "E_INTERNAL";
      SetError(e.what());
    }
  }
  void OnOK() override {
    Napi::Env env = Env();
    try {
      deferred_.Resolve(js_guard(env, [&] { return result(env); }));
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    }
  }
  void OnError(const Napi::Error& e) override {
    deferred_.Reject(make_js_error(Env(), code_, e.Message()).Value());
  }

  std::string code_ = "E_INTERNAL";
  Napi::Promise::Deferred deferred_;
};

// Reading plain values from JS objects, with E_INVALID_ARGUMENT on bad input.
double get_number(const Napi::Object& o, const char* key, double def, bool required = false);
std::string get_string(const Napi::Object& o, const char* key, const std::string& def, bool required = false);
bool get_bool(const Napi::Object& o, const char* key, bool def);
// The `rope` object of a model config (type, theta, factor, lowFreqFactor, highFreqFactor,
// originalMaxPositionEmbeddings, rotaryDim); `where` names the caller in the error. max_position is left to the caller.
RopeParams get_rope(const Napi::Object& config, const std::string& where, const char* key = "rope");

}  // namespace lmfleet
