#pragma once
/// Slim's two kinds of failure (after c10's TORCH_CHECK / TORCH_INTERNAL_ASSERT):
/// SLIM_CHECK for bad user input -> throws slim::Error with a message naming what was wrong;
/// SLIM_ASSERT for broken internal invariants -> throws slim::InternalError.
#include <sstream>
#include <stdexcept>
#include <string>

namespace slim {

/// Bad input: a file, op, parameter or value the user gave us. Caught once at the CLI's main.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& msg) : std::runtime_error(msg) {}
};

/// A bug in Slim: an invariant that should always hold did not.
class InternalError : public std::logic_error {
 public:
  explicit InternalError(const std::string& msg) : std::logic_error(msg) {}
};

/// The first line of an exception's text, without the backtrace LibTorch appends to its own
/// (c10::Error): what a one-line error message quotes of a failure from below.
std::string error_brief(const std::exception& e);

namespace detail {
template <typename... Args>
std::string str_cat(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}
}  // namespace detail

}  // namespace slim

#define SLIM_CHECK(cond, ...)                                               \
  do {                                                                      \
    if (!(cond)) throw ::slim::Error(::slim::detail::str_cat(__VA_ARGS__)); \
  } while (0)

#define SLIM_FAIL(...) throw ::slim::Error(::slim::detail::str_cat(__VA_ARGS__))

#define SLIM_ASSERT(cond, ...)                                                               \
  do {                                                                                       \
    if (!(cond))                                                                             \
      throw ::slim::InternalError(::slim::detail::str_cat(                                   \
          "internal error at ", __FILE__, ":", __LINE__, ": ", #cond, ": ", ##__VA_ARGS__)); \
  } while (0)
