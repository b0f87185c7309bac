// Process-wide state of the addon: the default backend used by runOp (models create their own).
#pragma once
#include "core/backend.h"

namespace lmfleet {
Backend& default_backend();
const char* variant_name();  // "cpu" or "cuda" (the build variant)
}  // namespace lmfleet
