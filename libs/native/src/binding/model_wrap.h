#pragma once
#include <napi.h>
namespace lmfleet {
struct ModelWrap { static void Init(Napi::Env env, Napi::Object exports); };
}
