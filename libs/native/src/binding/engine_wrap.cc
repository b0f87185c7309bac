#include "binding/engine_wrap.h"
namespace lmfleet {
void EngineWrap::Init(Napi::Env, Napi::Object) {}
}
