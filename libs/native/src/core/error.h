// lmfleet::Error: the one exception type native code throws. `code` is stable and reaches JS as err.code
// (see NativeErrorCode in ../types.ts). Bad input must throw, never abort().
#pragma once
#include <exception>
#include <string>

namespace lmfleet {

enum class ErrorCode { InvalidArgument, ModelFormat, OutOfKvCache, BackendUnavailable, Disposed, Cuda, Internal };

const char* error_code_name(ErrorCode code);

class Error : public std::exception {
 public:
  Error(ErrorCode code, std::string message) : code(code), message(std::move(message)) {}
  const char* what() const noexcept override { return message.c_str(); }
  ErrorCode code;
  std::string message;
};

[[noreturn]] inline void fail(ErrorCode code, const std::string& message) { throw Error(code, message); }

}  // namespace lmfleet

#define LMF_CHECK(cond, code, msg)                                    \
  do {                                                                \
    if (!(cond)) ::lmfleet::fail(::lmfleet::ErrorCode::code, (msg)); \
  } while (0)
