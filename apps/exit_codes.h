#pragma once
// Exit statuses of `moda` (documented in README.md, "Commands"). A script can tell a mistake in
// the command line (fix the call) from a failure while running (fix the input or the machine).
#include <string>

#include "core/error.h"

namespace moda::app {

constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;  // runtime error: bad config/file contents, I/O, training failure
constexpr int kExitUsage = 2;    // the command line itself: unknown command/option, missing or malformed option

// Thrown for a command-line mistake; the dispatcher prints it with a pointer to --help and exits 2.
class UsageError : public Error {
 public:
  using Error::Error;
};

}  // namespace moda::app

// MODA_USAGE_CHECK(cond, parts...): like MODA_CHECK, for conditions on the command line itself.
#define MODA_USAGE_CHECK(cond, ...)                                                  \
  do {                                                                               \
    if (!(cond)) throw ::moda::app::UsageError(::moda::detail::concat(__VA_ARGS__)); \
  } while (0)
