// Checks of flag values every command shares (commands.h): output paths and number ranges,
// applied when CLI11 reads the flags, before any work.
#include <filesystem>

#include "commands.h"

namespace slim::cli {

const CLI::Validator& output_file() {
  static const CLI::Validator v(
      [](std::string& path) -> std::string {
        namespace fs = std::filesystem;
        const fs::path dir = fs::path(path).parent_path();
        if (!dir.empty() && !fs::is_directory(dir))
          return "cannot write '" + path + "': folder '" + dir.string() + "' does not exist";
        if (fs::is_directory(path)) return "'" + path + "' is a folder, not a file name";
        return "";
      },
      "");
  return v;
}

namespace {

/// A validator of numbers: `ok(value)` or the message "must be <what>, not <value>".
CLI::Validator number_check(bool (*ok)(double), const std::string& what, const std::string& desc) {
  return CLI::Validator(
      [ok, what](std::string& text) -> std::string {
        double v = 0;
        if (!CLI::detail::lexical_cast(text, v)) return "'" + text + "' is not a number";
        return ok(v) ? "" : "must be " + what + ", not " + text;
      },
      desc);
}

}  // namespace

const CLI::Validator& positive() {
  static const CLI::Validator v =
      number_check([](double x) { return x > 0; }, "positive", "POSITIVE");
  return v;
}

const CLI::Validator& non_negative() {
  static const CLI::Validator v =
      number_check([](double x) { return x >= 0; }, "0 or more", "NONNEGATIVE");
  return v;
}

}  // namespace slim::cli
