#pragma once
#include <napi.h>
namespace lmfleet {
struct EngineWrap { static void Init(Napi::Env env, Napi::Object exports); };
}
