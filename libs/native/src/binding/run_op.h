#pragma once
#include <napi.h>

#include <string>
#include <vector>

namespace lmfleet {
// runOp(name, inputs: OpTensor[], params) -> Promise<OpTensor[]>
Napi::Value run_op(const Napi::CallbackInfo& info);
// Names of the ops in ops.def that the process's backend implements.
std::vector<std::string> list_ops();
}  // namespace lmfleet
