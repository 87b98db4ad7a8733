#include "slim/ir/error.h"

#include <c10/util/Exception.h>

namespace slim {

std::string error_brief(const std::exception& e) {
  std::string s;
  if (const auto* ce = dynamic_cast<const c10::Error*>(&e))
    s = ce->what_without_backtrace();
  else
    s = e.what();
  const auto nl = s.find('\n');
  if (nl != std::string::npos) s.resize(nl);
  return s;
}

}  // namespace slim
