#pragma once
/// FNV-1a, 64 bits, as 16 hex digits: change detection (pipeline fingerprints, the files ranks
/// of a distributed run compare), not security.
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

namespace slim {

inline uint64_t fnv1a(std::string_view bytes, uint64_t h = 14695981039346656037ull) {
  for (unsigned char c : bytes) h = (h ^ c) * 1099511628211ull;
  return h;
}

inline std::string hex64(uint64_t v) {
  char s[17];
  std::snprintf(s, sizeof s, "%016llx", static_cast<unsigned long long>(v));
  return s;
}

inline std::string digest_hex(std::string_view bytes) { return hex64(fnv1a(bytes)); }

}  // namespace slim
