#include "core/error.h"

namespace lmfleet {

const char* error_code_name(ErrorCode code) {
  switch (code) {
    case ErrorCode::InvalidArgument: return "E_INVALID_ARGUMENT";
    case ErrorCode::ModelFormat: return "E_MODEL_FORMAT";
    case ErrorCode::OutOfKvCache: return "E_OUT_OF_KV_CACHE";
    case ErrorCode::BackendUnavailable: return "E_BACKEND_UNAVAILABLE";
    case ErrorCode::Disposed: return "E_DISPOSED";
    case ErrorCode::Cuda: return "E_CUDA";
    case ErrorCode::Internal: return "E_INTERNAL";
  }
  return "E_INTERNAL";
}

}  // namespace lmfleet
