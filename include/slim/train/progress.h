#pragma once
/// Progress of long work (training, evaluation, sensitivity, search): a one-line bar redrawn in
/// place on a terminal, plain log lines every `log_every` steps otherwise (CI, pipes, files).
#include <chrono>
#include <cstdio>
#include <string>

namespace slim {

class Progress {
 public:
  /// `total` steps (0 = unknown); output goes to stderr.
  Progress(std::string title, int64_t total, int64_t log_every = 0);
  /// Advances to `done` steps; `items` processed so far (images) for the rate; `info` is the
  /// caller's text ("loss 0.31 acc 0.91").
  void update(int64_t done, int64_t items, const std::string& info);
  /// Ends the line (terminal) or prints a final log line.
  void finish(const std::string& info);
  /// Suppresses all output (e.g. --quiet, or --json on stdout is fine since this is stderr).
  void set_enabled(bool on) { enabled_ = on; }
  double elapsed_s() const;

 private:
  std::string line(int64_t done, int64_t items, const std::string& info) const;
  std::string title_;
  int64_t total_;
  int64_t log_every_;
  bool tty_;
  bool enabled_ = true;
  int64_t last_logged_ = -1;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

}  // namespace slim
