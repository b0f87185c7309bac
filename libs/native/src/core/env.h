#pragma once
// Readers of LMFLEET_* tuning variables. Callers read at each use unless they say otherwise, so that a benchmark can
// switch a variable between engines in one process (graphs recapture when a setting they hold changes).
#include <cstdlib>
#include <cstring>

namespace lmfleet {

// "0" off, "1" on; unset (or anything else) dflt.
inline bool env_switch(const char* name, bool dflt) {
  const char* e = std::getenv(name);
  if (!e) return dflt;
  return std::strcmp(e, "0") == 0 ? false : std::strcmp(e, "1") == 0 ? true : dflt;
}

// atoi of the value; unset or empty dflt.
inline int env_int(const char* name, int dflt) {
  const char* e = std::getenv(name);
  return e && *e ? std::atoi(e) : dflt;
}

}  // namespace lmfleet
