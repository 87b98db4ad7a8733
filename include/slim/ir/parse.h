#pragma once
/// Parsing numbers out of user text (command-line specs).
#include <cmath>
#include <optional>
#include <string>

namespace slim {

/// The whole of `text` as a finite double ("0.3", "1e-2"), or nullopt ("", "0.3x", "nan").
inline std::optional<double> parse_double(const std::string& text) {
  size_t used = 0;
  double v = 0;
  try {
    v = std::stod(text, &used);
  } catch (const std::exception&) {
    return std::nullopt;
  }
  if (used != text.size() || !std::isfinite(v)) return std::nullopt;
  return v;
}

}  // namespace slim
