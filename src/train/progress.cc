#include "slim/train/progress.h"

#include <unistd.h>

#include <cmath>

namespace slim {

Progress::Progress(std::string title, int64_t total, int64_t log_every)
    : title_(std::move(title)),
      total_(total),
      log_every_(log_every > 0 ? log_every : std::max<int64_t>(1, total / 10)),
      tty_(::isatty(STDERR_FILENO) != 0),
      start_(std::chrono::steady_clock::now()),
      last_draw_(start_) {}

double Progress::elapsed_s() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

namespace {
std::string fmt_time(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  char buf[32];
  int t = static_cast<int>(s + 0.5);
  if (t >= 3600)
    std::snprintf(buf, sizeof buf, "%d:%02d:%02d", t / 3600, t / 60 % 60, t % 60);
  else
    std::snprintf(buf, sizeof buf, "%d:%02d", t / 60, t % 60);
  return buf;
}
}  // namespace

std::string Progress::line(int64_t done, int64_t items, const std::string& info) const {
  double el = elapsed_s();
  double rate = el > 0 ? static_cast<double>(items) / el : 0;
  char buf[256];
  if (total_ > 0) {
    double eta = done > 0 ? el * static_cast<double>(total_ - done) / static_cast<double>(done) : -1;
    std::snprintf(buf, sizeof buf, "%s %lld/%lld (%3.0f%%) %s | %.0f img/s | %s elapsed, ETA %s",
                  title_.c_str(), static_cast<long long>(done), static_cast<long long>(total_),
                  100.0 * static_cast<double>(done) / static_cast<double>(total_), info.c_str(),
                  rate, fmt_time(el).c_str(), fmt_time(eta).c_str());
  } else {
    std::snprintf(buf, sizeof buf, "%s %lld %s | %.0f img/s | %s elapsed", title_.c_str(),
                  static_cast<long long>(done), info.c_str(), rate, fmt_time(el).c_str());
  }
  return buf;
}

void Progress::update(int64_t done, int64_t items, const std::string& info) {
  if (!enabled_) return;
  if (tty_) {
    auto now = std::chrono::steady_clock::now();
    // Redraw at most 10 times a second.
    if (done != total_ && now - last_draw_ < std::chrono::milliseconds(100)) return;
    last_draw_ = now;
    std::fprintf(stderr, "\r\033[K%s", line(done, items, info).c_str());
    std::fflush(stderr);
  } else if (done / log_every_ != last_logged_ / log_every_ || last_logged_ < 0) {
    if (done % log_every_ == 0 || done == total_) {
      last_logged_ = done;
      std::fprintf(stderr, "%s\n", line(done, items, info).c_str());
    }
  }
}

void Progress::finish(const std::string& info) {
  if (!enabled_) return;
  if (tty_) {
    std::fprintf(stderr, "\r\033[K%s\n", (title_ + " done " + info + " in " + fmt_time(elapsed_s())).c_str());
  } else {
    std::fprintf(stderr, "%s done %s in %s\n", title_.c_str(), info.c_str(),
                 fmt_time(elapsed_s()).c_str());
  }
  std::fflush(stderr);
}

}  // namespace slim
