// The addon's entry: registers the native surface typed by types.ts (NativeModule). index.ts wraps it.
#include <napi.h>

#include <fstream>
#include <mutex>
#include <thread>

#include "binding/addon_state.h"
#include "binding/engine_wrap.h"
#include "binding/model_wrap.h"
#include "binding/napi_util.h"
#include "binding/run_op.h"

#ifndef LMFLEET_VERSION
#define LMFLEET_VERSION "0.0.0"
#endif
#ifndef LMFLEET_VARIANT
#define LMFLEET_VARIANT "cpu"
#endif

namespace lmfleet {

void init_scheduler_harness(Napi::Env env, Napi::Object exports);
void init_collective_harness(Napi::Env env, Napi::Object exports);
void init_awq_session(Napi::Env env, Napi::Object exports);  // binding/awq_session_wrap.cc

namespace {
// The variant's backend for runOp: cpu, or (cuda variant) device 0. On a cuda build without a usable GPU
// it stays null and backendInfo() reports why (index.ts then falls back to the cpu build).
std::once_flag g_once;
std::unique_ptr<Backend> g_backend;
std::string g_unavailable;
void init_backend() {
  std::call_once(g_once, [] {
#ifdef LMFLEET_WITH_CUDA
    try {
      g_backend = make_cuda_backend(0);
    } catch (const Error& e) {
      g_unavailable = e.message;
    }
#else
    g_backend = make_cpu_backend(0);
#endif
  });
}
}  // namespace

Backend& default_backend() {
  init_backend();
  if (!g_backend) fail(ErrorCode::BackendUnavailable, std::string(LMFLEET_VARIANT) + " backend unavailable: " + g_unavailable);
  return *g_backend;
}

const char* variant_name() { return LMFLEET_VARIANT; }

namespace {

double total_memory_bytes() {
  std::ifstream f("/proc/meminfo");
  std::string key;
  double kb = 0;
  while (f >> key >> kb) {
    if (key == "MemTotal:") return kb * 1024;
    f.ignore(256, '\n');
  }
  return 0;
}

Napi::Value backend_info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  init_backend();
  o.Set("backend", LMFLEET_VARIANT);
  o.Set("available", g_backend != nullptr);
  if (!g_backend) {
    o.Set("reason", g_unavailable);
    return o;
  }
#ifdef LMFLEET_WITH_CUDA
  o.Set("deviceName", "cuda:0");
  return o;
#endif
  o.Set("deviceName", "cpu (" + std::to_string(std::thread::hardware_concurrency()) + " threads)");
  o.Set("totalMemoryBytes", total_memory_bytes());
  return o;
}

Napi::Value list_ops_js(const Napi::CallbackInfo& info) {
  auto ops = list_ops();
  Napi::Array a = Napi::Array::New(info.Env(), ops.size());
  for (size_t i = 0; i < ops.size(); i++) a.Set(i, ops[i]);
  return a;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("version", std::string("lmfleet-native ") + LMFLEET_VERSION + " " + LMFLEET_VARIANT);
  exports.Set("backend", LMFLEET_VARIANT);
  exports.Set("backendInfo", Napi::Function::New(env, backend_info, "backendInfo"));
  exports.Set("listOps", Napi::Function::New(env, list_ops_js, "listOps"));
  exports.Set("runOp", Napi::Function::New(env, run_op, "runOp"));
  ModelWrap::Init(env, exports);
  EngineWrap::Init(env, exports);
  init_awq_session(env, exports);
  init_scheduler_harness(env, exports);  // tests only (src/engine/scheduler.spec.ts)
  init_collective_harness(env, exports);  // tests only (src/core/collective.spec.ts)
  return exports;
}

}  // namespace
}  // namespace lmfleet

static Napi::Object InitLmfleet(Napi::Env env, Napi::Object exports) { return lmfleet::Init(env, exports); }

NODE_API_MODULE(lmfleet_native, InitLmfleet)
