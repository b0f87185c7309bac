#include "binding/model_wrap.h"
namespace lmfleet {
void ModelWrap::Init(Napi::Env, Napi::Object) {}
}
