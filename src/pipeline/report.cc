#include "slim/pipeline/report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <sstream>
#include <vector>

#include "slim/analysis/summary.h"

namespace slim {

namespace {

using Json = nlohmann::json;

std::string esc(const std::string& s) {
  std::string o;
  for (char c : s) {
    switch (c) {
      case '&':
        o += "&amp;";
        break;
      case '<':
        o += "&lt;";
        break;
      case '>':
        o += "&gt;";
        break;
      case '"':
        o += "&quot;";
        break;
      default:
        o += c;
    }
  }
  return o;
}

std::string fmt(const char* f, double v) {
  char b[64];
  std::snprintf(b, sizeof b, f, v);
  return b;
}

/// A value for a data- attribute: the shortest decimal that reads back as exactly `v` (as JSON
/// writes numbers), so the page carries the run's numbers, not six significant digits of them.
std::string exact(double v) { return Json(v).dump(); }

/// Round tick values covering [lo, hi]: steps of 1, 2, 2.5 or 5 times a power of ten.
std::vector<double> ticks(double lo, double hi, int target = 5) {
  if (!(hi - lo > 1e-9 * std::max({std::abs(lo), std::abs(hi), 1.0}))) {
    const double pad = std::max(std::abs(lo) * 0.05, 1e-3);
    lo -= pad, hi += pad;
  }
  const double raw = (hi - lo) / target;
  double step = std::pow(10.0, std::floor(std::log10(raw)));
  for (double m : {1.0, 2.0, 2.5, 5.0, 10.0})
    if (raw <= step * m) {
      step *= m;
      break;
    }
  std::vector<double> t;
  for (double v = std::floor(lo / step) * step; v <= hi + step * 0.999 && t.size() < 50; v += step)
    t.push_back(std::abs(v) < step * 1e-9 ? 0.0 : v);
  return t;
}

std::string tick_text(double v, double step) {
  const int digits = std::max(0, -static_cast<int>(std::floor(std::log10(step) + 1e-9)));
  return fmt(("%." + std::to_string(std::min(digits, 6)) + "f").c_str(), v);
}

/// Eight colours that stay apart for common colour-vision deficiencies (Okabe and Ito) and
/// on light and dark backgrounds; series beyond eight repeat them dashed.
const char* kColors[] = {"#0072B2", "#E69F00", "#009E73", "#CC79A7",
                         "#56B4E9", "#D55E00", "#F0E442", "#999999"};

/// A plot area with two linear axes, drawn as SVG.
class Chart {
 public:
  Chart(std::string id, std::string title, std::string x_label, std::string y_label,
        std::vector<double> xs, std::vector<double> ys, double x_floor = NAN, double y_floor = NAN)
      : id_(std::move(id)),
        title_(std::move(title)),
        xl_(std::move(x_label)),
        yl_(std::move(y_label)) {
    auto range = [](std::vector<double> v, double floor) {
      if (!std::isnan(floor)) v.push_back(floor);
      return std::make_pair(*std::min_element(v.begin(), v.end()),
                            *std::max_element(v.begin(), v.end()));
    };
    auto [x0, x1] = range(xs, x_floor);
    auto [y0, y1] = range(ys, y_floor);
    xt_ = ticks(x0, x1);
    yt_ = ticks(y0, y1);
  }

  double x(double v) const {
    return kLeft + (v - xt_.front()) / (xt_.back() - xt_.front()) * (kWidth - kLeft - kRight);
  }
  double y(double v) const {
    return kHeight - kBottom -
           (v - yt_.front()) / (yt_.back() - yt_.front()) * (kHeight - kTop - kBottom);
  }

  void add(const std::string& svg) { body_ += svg; }

  std::string svg(const std::string& legend = "") const {
    std::ostringstream s;
    s << "<figure id=\"" << esc(id_) << "\"><figcaption>" << esc(title_) << "</figcaption>"
      << "<svg class=\"chart\" viewBox=\"0 0 " << kWidth << " " << kHeight
      << "\" role=\"img\" aria-label=\"" << esc(title_) << "\">";
    const double xs = xt_[1] - xt_[0], ys = yt_[1] - yt_[0];
    for (double v : yt_)
      s << "<line class=\"grid\" x1=\"" << kLeft << "\" x2=\"" << kWidth - kRight << "\" y1=\""
        << y(v) << "\" y2=\"" << y(v) << "\"/><text class=\"tick\" x=\"" << kLeft - 6 << "\" y=\""
        << y(v) + 4 << "\" text-anchor=\"end\">" << tick_text(v, ys) << "</text>";
    for (double v : xt_)
      s << "<line class=\"grid\" y1=\"" << kTop << "\" y2=\"" << kHeight - kBottom << "\" x1=\""
        << x(v) << "\" x2=\"" << x(v) << "\"/><text class=\"tick\" x=\"" << x(v) << "\" y=\""
        << kHeight - kBottom + 16 << "\" text-anchor=\"middle\">" << tick_text(v, xs) << "</text>";
    s << "<rect class=\"frame\" x=\"" << kLeft << "\" y=\"" << kTop << "\" width=\""
      << kWidth - kLeft - kRight << "\" height=\"" << kHeight - kTop - kBottom << "\"/>";
    s << "<text class=\"axis\" x=\"" << (kLeft + kWidth - kRight) / 2 << "\" y=\"" << kHeight - 8
      << "\" text-anchor=\"middle\">" << esc(xl_) << "</text>";
    s << "<text class=\"axis\" transform=\"translate(16 " << (kTop + kHeight - kBottom) / 2
      << ") rotate(-90)\" text-anchor=\"middle\">" << esc(yl_) << "</text>";
    s << body_ << "</svg>" << legend << "</figure>\n";
    return s.str();
  }

  static constexpr double kWidth = 720, kHeight = 400, kLeft = 70, kRight = 20, kTop = 16,
                          kBottom = 52;

 private:
  std::string id_, title_, xl_, yl_, body_;
  std::vector<double> xt_, yt_;
};

std::string legend(const std::vector<std::pair<std::string, std::string>>& items) {
  std::string s = "<ul class=\"legend\">";
  for (const auto& [swatch, label] : items)
    s += "<li>" + swatch + "<span>" + esc(label) + "</span></li>";
  return s + "</ul>";
}

std::string swatch_dot(const char* color) {
  return "<svg width=\"14\" height=\"14\"><circle cx=\"7\" cy=\"7\" r=\"5\" fill=\"" +
         std::string(color) + "\"/></svg>";
}

std::string swatch_line(const std::string& color, bool dashed) {
  return "<svg width=\"28\" height=\"10\"><line x1=\"0\" y1=\"5\" x2=\"28\" y2=\"5\" "
         "stroke=\"" +
         color + "\" stroke-width=\"2.5\"" + (dashed ? " stroke-dasharray=\"5 3\"" : "") +
         "/></svg>";
}

struct Row {
  std::string name, kind, precision, what;
  bool has_top1 = false, has_latency = false;
  double top1 = 0, latency = 0;
  int64_t flops = 0, params = 0, bytes = 0, latency_batch = 1;
};

/// One line about what a stage did, from its metrics.
std::string describe(const Json& stage) {
  const Json& m = stage["metrics"];
  const std::string kind = stage["kind"];
  if (kind == "model") return m.contains("zoo") ? "zoo " + m["zoo"].get<std::string>() : "file";
  if (kind == "train" || kind == "distill") {
    std::string s = std::to_string(m.value("epochs", Json::array()).size()) + " epoch(s)";
    if (kind == "distill" && m.contains("losses") && !m["losses"].empty())
      s += ", " + m["losses"][0].get<std::string>();
    return s;
  }
  if (kind == "prune" && m.contains("flops_before")) {
    const double cut = 1.0 - m["flops_after"].get<double>() / m["flops_before"].get<double>();
    return fmt("%.1f%% fewer FLOPs", 100 * cut) + ", " +
           std::to_string(m.value("pruned", Json::array()).size()) + " layer(s) pruned";
  }
  if (kind == "auto" && m.contains("candidates"))
    return "chose " + m.value("chosen", std::string("none")) + " of " +
           std::to_string(m["candidates"].size()) + " candidates";
  if (kind == "nas" && m.contains("rewarded"))
    return std::to_string(m["rewarded"].get<int64_t>()) + " candidates trained, best of space " +
           m.value("space", std::string());
  if (kind == "quant") {
    std::string s = m.value("mode", "");
    if (m.contains("algo")) s += " " + m["algo"].get<std::string>();
    return s;
  }
  return "";
}

}  // namespace

std::string pipeline_report_html(const Json& summary) {
  std::vector<Row> rows;
  for (const auto& st : summary["stages"]) {
    const Json& metrics = st["metrics"];
    if (!metrics.contains("measure")) continue;
    const Json& m = metrics["measure"];
    Row r;
    r.name = st["name"];
    r.kind = st["kind"];
    r.what = describe(st);
    r.precision = m.value("precision", "float");
    r.flops = m.value("flops", int64_t{0});
    r.params = m.value("params", int64_t{0});
    r.bytes = m.value("file_bytes", int64_t{0});
    if (m.contains("eval")) r.has_top1 = true, r.top1 = m["eval"]["top1"].get<double>();
    if (m.contains("latency")) {
      r.has_latency = true;
      r.latency = m["latency"]["median_ms"].get<double>();
      r.latency_batch = m["latency"].value("batch", int64_t{1});
    }
    rows.push_back(r);
  }

  std::ostringstream h;
  h << "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
    << "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
    << "<meta name=\"color-scheme\" content=\"light dark\">"
    << "<title>Slim compression report</title><style>\n"
    << ":root{--fg:#1b1f24;--muted:#57606a;--grid:#d8dee4;--bg:#fff;--row:#f6f8fa}\n"
    << "@media (prefers-color-scheme: dark){:root{--fg:#e6edf3;--muted:#9da7b3;--grid:#30363d;"
    << "--bg:#0d1117;--row:#161b22}}\n"
    << "body{font:15px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,'Noto Sans',sans-serif;"
    << "color:var(--fg);background:var(--bg);max-width:980px;margin:24px auto;padding:0 16px}\n"
    << "h1{font-size:1.5em;margin:0 0 4px}h2{font-size:1.15em;margin:28px 0 8px}"
    << ".meta{color:var(--muted);margin:0 0 16px}code{font-size:.92em}\n"
    << ".scroll{overflow-x:auto}table{border-collapse:collapse;width:100%;font-size:13px;"
    << "font-variant-numeric:tabular-nums}th,td{padding:5px 7px;border-bottom:1px solid "
    << "var(--grid);text-align:right;white-space:nowrap}th{white-space:normal;"
    << "vertical-align:bottom}th:nth-child(-n+3),td:nth-child(-n+3){text-align:left}"
    << "tbody tr:nth-child(odd){background:var(--row)}td.what{white-space:normal;"
    << "color:var(--muted)}\n"
    << "figure{margin:8px 0 24px}figcaption{font-weight:600;margin-bottom:4px}"
    << "svg.chart{width:100%;height:auto;max-width:720px;display:block;color:var(--fg)}\n"
    << ".grid{stroke:var(--grid);stroke-width:1}.frame{fill:none;stroke:var(--muted)}"
    << ".tick{fill:var(--muted);font-size:12px}.axis{fill:var(--fg);font-size:13px}"
    << ".label{fill:var(--fg);font-size:12px}\n"
    << ".legend{list-style:none;padding:0;margin:6px 0 0;display:flex;flex-wrap:wrap;"
    << "gap:4px 16px;font-size:13px}.legend li{display:flex;align-items:center;gap:6px}\n"
    << ".point:hover,.bar:hover{stroke:var(--fg);stroke-width:2}\n"
    << "</style></head><body>\n";
  h << "<h1>Slim compression report</h1><p class=\"meta\">config <code>"
    << esc(summary.value("config", "")) << "</code> &middot; run folder <code>"
    << esc(summary.value("run_dir", "")) << "</code> &middot; final model <code>"
    << esc(summary.value("final_model", "")) << "</code></p>\n";

  // The stages table. Top-1 changes are against the reference: the first model trained, else
  // the input model.
  const Row* base = nullptr;
  for (const auto& r : rows)
    if (r.has_top1 && (r.kind == "train" || (!base && r.kind == "model"))) {
      base = &r;
      if (r.kind == "train") break;
    }
  h << "<h2>Stages</h2><div class=\"scroll\"><table id=\"stages\"><thead><tr><th>stage</th>"
    << "<th>method</th><th>what it did</th><th>top-1 (%)</th><th>&Delta; top-1 vs "
    << (base ? esc(base->name) : std::string("input")) << " (points)</th>"
    << "<th>FLOPs</th><th>params</th><th>file (MB)</th><th>latency float (ms)</th>"
    << "<th>latency int8 (ms)</th></tr></thead><tbody>\n";
  for (const auto& r : rows) {
    const bool int8 = r.precision == "int8";
    h << "<tr data-stage=\"" << esc(r.name) << "\"><td>" << esc(r.name) << "</td><td>"
      << esc(r.kind) << (int8 ? " (int8)" : "") << "</td><td class=\"what\">" << esc(r.what)
      << "</td><td>" << (r.has_top1 ? fmt("%.2f", 100 * r.top1) : "&ndash;") << "</td><td>"
      << (r.has_top1 && base ? fmt("%+.2f", 100 * (r.top1 - base->top1)) : "&ndash;") << "</td><td>"
      << with_commas(r.flops) << "</td><td>" << with_commas(r.params) << "</td><td>"
      << fmt("%.2f", static_cast<double>(r.bytes) / 1e6) << "</td><td>"
      << (r.has_latency && !int8 ? fmt("%.3f", r.latency) : "&ndash;") << "</td><td>"
      << (r.has_latency && int8 ? fmt("%.3f", r.latency) : "&ndash;") << "</td></tr>\n";
  }
  h << "</tbody></table></div>\n";

  // Top-1 against latency.
  // Models far below the best (an untrained input, a failed stage) would squeeze the others
  // into a corner: listed under the chart instead of drawn.
  std::vector<const Row*> both, left_out;
  double best = 0;
  for (const auto& r : rows)
    if (r.has_top1) best = std::max(best, r.top1);
  for (const auto& r : rows)
    if (r.has_top1 && r.has_latency) (r.top1 >= 0.5 * best ? both : left_out).push_back(&r);
  if (!both.empty()) {
    std::vector<double> xs, ys;
    for (const Row* r : both) xs.push_back(r->latency), ys.push_back(100 * r->top1);
    Chart c("accuracy-latency", "Top-1 against latency, one point per model",
            "latency at batch " + std::to_string(both[0]->latency_batch) + " (ms)", "top-1 (%)", xs,
            ys, 0.0);
    struct Placed {
      double x0, y0, x1, y1;
    };
    std::vector<Placed> placed;  // every marker, then each label as it is placed
    for (const Row* r : both)
      placed.push_back({c.x(r->latency) - 7, c.y(100 * r->top1) - 7, c.x(r->latency) + 7,
                        c.y(100 * r->top1) + 7});
    for (size_t i = 0; i < both.size(); ++i) {
      const Row& r = *both[i];
      const bool int8 = r.precision == "int8";
      const double px = c.x(r.latency), py = c.y(100 * r.top1);
      const std::string tip = r.name + ": top-1 " + fmt("%.2f%%", 100 * r.top1) + ", " +
                              fmt("%.3f ms", r.latency) + ", " + r.precision;
      std::ostringstream p;
      p << "<g class=\"point\" data-stage=\"" << esc(r.name) << "\" data-x=\"" << exact(r.latency)
        << "\" data-y=\"" << exact(100 * r.top1) << "\"><title>" << esc(tip) << "</title>";
      if (int8)
        p << "<rect x=\"" << px - 6 << "\" y=\"" << py - 6
          << "\" width=\"12\" height=\"12\" fill=\"" << kColors[1] << "\"/>";
      else
        p << "<circle cx=\"" << px << "\" cy=\"" << py << "\" r=\"6\" fill=\"" << kColors[0]
          << "\"/>";
      // The label goes to the first of eight places around the point that overlaps no point
      // and no label placed before (12-px text, about 7 px per character), inside the plot.
      const double w = 7.0 * static_cast<double>(r.name.size()), lh = 12;
      auto hits = [&](const Placed& b) {
        if (b.x0 < Chart::kLeft || b.x1 > Chart::kWidth - Chart::kRight || b.y0 < Chart::kTop ||
            b.y1 > Chart::kHeight - Chart::kBottom)
          return true;
        for (const Placed& o : placed)
          if (b.x0 < o.x1 && o.x0 < b.x1 && b.y0 < o.y1 && o.y0 < b.y1) return true;
        return false;
      };
      Placed label{px + 9, py - 9 - lh, px + 9 + w, py - 9};
      for (const auto& [dx, dy] : std::vector<std::pair<double, double>>{{9, -9},
                                                                         {9, 16},
                                                                         {-9 - w, -9},
                                                                         {-9 - w, 16},
                                                                         {9, 4},
                                                                         {-9 - w, 4},
                                                                         {-w / 2, -12},
                                                                         {-w / 2, 22}}) {
        const Placed b{px + dx, py + dy - lh, px + dx + w, py + dy};
        if (!hits(b)) {
          label = b;
          break;
        }
      }
      placed.push_back(label);
      p << "<text class=\"label\" x=\"" << label.x0 << "\" y=\"" << label.y1 << "\">" << esc(r.name)
        << "</text></g>";
      c.add(p.str());
    }
    h << "<h2>Accuracy and latency</h2>"
      << c.svg(legend({{"<svg width=\"14\" height=\"14\"><circle cx=\"7\" cy=\"7\" r=\"6\" "
                        "fill=\"" +
                            std::string(kColors[0]) + "\"/></svg>",
                        "float model"},
                       {"<svg width=\"14\" height=\"14\"><rect x=\"1\" y=\"1\" width=\"12\" "
                        "height=\"12\" fill=\"" +
                            std::string(kColors[1]) + "\"/></svg>",
                        "int8 model"}}));
    if (!left_out.empty()) {
      h << "<p class=\"meta\" id=\"not-drawn\">Not drawn (top-1 below half the best):";
      for (const Row* r : left_out)
        h << " " << esc(r->name) << " " << fmt("%.2f%%", 100 * r->top1) << " at "
          << fmt("%.3f ms", r->latency) << (r == left_out.back() ? "." : ";");
      h << "</p>\n";
    }
  }

  // Sensitivity curves.
  for (const auto& st : summary["stages"]) {
    if (st["kind"] != "sensitivity" || !st["metrics"].contains("sensitivity")) continue;
    const Json& sens = st["metrics"]["sensitivity"];
    std::vector<double> xs{0.0}, ys{0.0};
    for (const auto& [param, points] : sens.items())
      for (const auto& [ratio, loss] : points.items())
        xs.push_back(std::stod(ratio)), ys.push_back(100 * loss.get<double>());
    const std::string sname = st["name"];
    Chart c("sensitivity-" + sname,
            "Top-1 lost when one conv is pruned" +
                (sname == "sensitivity" ? std::string() : " (" + sname + ")"),
            "pruning ratio (share of the conv's filters removed)",
            "top-1 loss (% of the unpruned top-1)", xs, ys, 0.0, 0.0);
    std::vector<std::pair<std::string, std::string>> items;
    int k = 0;
    for (const auto& [param, points] : sens.items()) {
      const std::string color = kColors[k % 8];
      const bool dashed = k >= 8;
      std::vector<std::pair<double, double>> pts;
      for (const auto& [ratio, loss] : points.items())
        pts.emplace_back(std::stod(ratio), 100 * loss.get<double>());
      std::sort(pts.begin(), pts.end());
      std::ostringstream s;
      s << "<g class=\"series\" data-param=\"" << esc(param) << "\"><polyline fill=\"none\" "
        << "stroke=\"" << color << "\" stroke-width=\"2\""
        << (dashed ? " stroke-dasharray=\"6 4\"" : "") << " points=\"";
      for (const auto& [rx, ly] : pts) s << c.x(rx) << "," << c.y(ly) << " ";
      s << "\"/>";
      for (const auto& [rx, ly] : pts)
        s << "<circle class=\"point\" data-x=\"" << exact(rx) << "\" data-y=\"" << exact(ly)
          << "\" cx=\"" << c.x(rx) << "\" cy=\"" << c.y(ly) << "\" r=\"3.5\" fill=\"" << color
          << "\"><title>" << esc(param) << " at ratio " << fmt("%.2f", rx) << ": top-1 loss "
          << fmt("%.2f%%", ly) << "</title></circle>";
      s << "</g>";
      c.add(s.str());
      items.emplace_back(swatch_line(color, dashed), param);
      ++k;
    }
    h << "<h2>Sensitivity</h2>" << c.svg(legend(items));
  }

  // Channels per layer before and after pruning.
  bool pruned_heading = false;
  for (const auto& st : summary["stages"]) {
    if (st["kind"] != "prune" || !st["metrics"].contains("pruned")) continue;
    const Json& pruned = st["metrics"]["pruned"];
    if (pruned.empty()) continue;
    const double row_h = 22, left = 230, right = 60, width = 720;
    const double height = 40 + row_h * static_cast<double>(pruned.size());
    int64_t most = 1;
    for (const auto& p : pruned) most = std::max(most, p["channels"].get<int64_t>());
    const std::vector<double> t = ticks(0, static_cast<double>(most));
    const double scale = (width - left - right) / t.back();
    std::ostringstream s;
    const std::string name = st["name"];
    s << "<figure id=\"channels-" << esc(name) << "\"><figcaption>Channels per layer before and "
      << "after pruning" << (name == "prune" ? "" : " (" + esc(name) + ")")
      << "</figcaption><svg class=\"chart\" viewBox=\"0 0 " << width << " " << height
      << "\" role=\"img\" aria-label=\"channels per layer\">";
    for (double v : t)
      s << "<line class=\"grid\" x1=\"" << left + v * scale << "\" x2=\"" << left + v * scale
        << "\" y1=\"8\" y2=\"" << height - 28 << "\"/><text class=\"tick\" x=\"" << left + v * scale
        << "\" y=\"" << height - 12 << "\" text-anchor=\"middle\">" << tick_text(v, t[1] - t[0])
        << "</text>";
    double y = 12;
    for (const auto& p : pruned) {
      const int64_t ch = p["channels"], kept = p["kept"];
      const std::string master = p["master"];
      const std::string tip =
          master + ": " + std::to_string(ch) + " -> " + std::to_string(kept) + " channels (" +
          fmt("%.0f%%", 100.0 * static_cast<double>(kept) / static_cast<double>(ch)) + " kept)";
      s << "<g class=\"bar\" data-param=\"" << esc(master) << "\" data-before=\"" << ch
        << "\" data-after=\"" << kept << "\"><title>" << esc(tip) << "</title>"
        << "<text class=\"label\" x=\"" << left - 8 << "\" y=\"" << y + 14
        << "\" text-anchor=\"end\">" << esc(master) << "</text><rect x=\"" << left << "\" y=\"" << y
        << "\" width=\"" << static_cast<double>(ch) * scale << "\" height=\"" << row_h - 6
        << "\" fill=\"" << kColors[4] << "\" opacity=\"0.45\"/><rect x=\"" << left << "\" y=\"" << y
        << "\" width=\"" << static_cast<double>(kept) * scale << "\" height=\"" << row_h - 6
        << "\" fill=\"" << kColors[0] << "\"/><text class=\"label\" x=\""
        << left + static_cast<double>(ch) * scale + 6 << "\" y=\"" << y + 14 << "\">" << kept << "/"
        << ch << "</text></g>";
      y += row_h;
    }
    s << "</svg>"
      << legend({{"<svg width=\"14\" height=\"14\"><rect width=\"14\" height=\"14\" fill=\"" +
                      std::string(kColors[4]) + "\" opacity=\"0.45\"/></svg>",
                  "channels before"},
                 {"<svg width=\"14\" height=\"14\"><rect width=\"14\" height=\"14\" fill=\"" +
                      std::string(kColors[0]) + "\"/></svg>",
                  "kept after pruning"}})
      << "</figure>\n";
    if (!pruned_heading) h << "<h2>Pruned layers</h2>";
    pruned_heading = true;
    h << s.str();
  }
  // Architecture search: the validation top-1 of every trained candidate, in order.
  for (const auto& st : summary["stages"]) {
    if (st["kind"] != "nas" || !st["metrics"].contains("candidates")) continue;
    const Json& m = st["metrics"];
    std::vector<double> xs, ys;
    for (const auto& c : m["candidates"])
      if (!c.value("rejected", false))
        xs.push_back(c["step"].get<double>()), ys.push_back(100 * c["val_top1"].get<double>());
    h << "<h2>Architecture search</h2><p class=\"meta\">Space " << esc(m.value("space", "")) << ": "
      << m.value("rewarded", int64_t{0}) << " candidates trained, "
      << m.value("rejected", int64_t{0}) << " rejected by the limits before training; best "
      << "tokens <code>" << esc(m["best_tokens"].dump()) << "</code>.</p>";
    if (xs.empty()) continue;
    Chart c("nas-" + st["name"].get<std::string>(), "Validation top-1 of each trained candidate",
            "search step", "validation top-1 (%)", xs, ys);
    double best = -1;
    std::string line;
    for (const auto& cand : m["candidates"]) {
      if (cand.value("rejected", false)) continue;
      const double x = cand["step"].get<double>(), y = 100 * cand["val_top1"].get<double>();
      best = std::max(best, y);
      line += fmt("%.2f", c.x(x)) + "," + fmt("%.2f", c.y(best)) + " ";
      const bool accepted = cand.value("accepted", false);
      std::ostringstream pt;
      pt << "<g class=\"point\" data-x=\"" << exact(x) << "\" data-y=\"" << exact(y)
         << "\"><title>step " << x << ": top-1 " << fmt("%.2f%%", y)
         << (cand.contains("latency_ms") ? ", " + fmt("%.3f ms", cand["latency_ms"].get<double>())
                                         : std::string())
         << (accepted ? ", accepted" : ", not accepted") << ", tokens "
         << esc(cand["tokens"].dump()) << "</title><circle cx=\"" << c.x(x) << "\" cy=\"" << c.y(y)
         << "\" r=\"4\" fill=\"" << (accepted ? kColors[2] : kColors[7]) << "\"/></g>";
      c.add(pt.str());
    }
    c.add("<polyline fill=\"none\" stroke=\"" + std::string(kColors[0]) +
          "\" stroke-width=\"1.5\" points=\"" + line + "\"/>");
    h << c.svg(legend({{swatch_dot(kColors[2]), "accepted by the controller"},
                       {swatch_dot(kColors[7]), "not accepted"},
                       {swatch_line(kColors[0], false), "best so far"}}));
  }

  // Auto-compression: every candidate of the ladder against the budget.
  for (const auto& st : summary["stages"]) {
    if (st["kind"] != "auto" || !st["metrics"].contains("candidates")) continue;
    const Json& m = st["metrics"];
    const Json& budget = m["budget"];
    h << "<h2>Auto-compression</h2><p class=\"meta\">Budget: top-1 loss at most "
      << fmt("%.2f%%", 100 * budget.value("max_loss", 0.0));
    if (budget.contains("max_latency_ms"))
      h << ", latency at most " << fmt("%.3f ms", budget["max_latency_ms"].get<double>());
    if (budget.contains("max_size"))
      h << ", file at most " << with_commas(budget["max_size"].get<int64_t>()) << " bytes";
    h << "; float model: top-1 " << fmt("%.2f%%", 100 * m["float"]["top1"].get<double>());
    if (m["float"].contains("latency_ms"))
      h << ", " << fmt("%.3f ms", m["float"]["latency_ms"].get<double>());
    h << ". Chosen: <b>" << esc(m.value("chosen", "none")) << "</b>.</p>";
    h << "<div class=\"scroll\"><table id=\"candidates\"><thead><tr><th>candidate</th><th>"
      << "what</th><th>top-1 (%)</th><th>loss (%)</th><th>latency (ms)</th><th>file (MB)</th>"
      << "<th>meets the budget</th></tr></thead><tbody>\n";
    std::vector<double> xs, ys;
    auto num = [](const Json& c, const char* key, const char* f, double scale) {
      return c.contains(key) && c[key].is_number() ? fmt(f, scale * c[key].get<double>())
                                                   : std::string("&ndash;");
    };
    for (const auto& c : m["candidates"]) {
      h << "<tr data-candidate=\"" << esc(c["name"]) << "\"><td>" << esc(c["name"])
        << "</td><td class=\"what\">" << esc(c.value("what", "")) << "</td><td>"
        << num(c, "top1", "%.2f", 100) << "</td><td>" << num(c, "loss", "%.2f", 100) << "</td><td>"
        << num(c, "latency_ms", "%.3f", 1) << "</td><td>" << num(c, "file_bytes", "%.2f", 1e-6)
        << "</td><td>"
        << (c["meets"].get<bool>() ? std::string("yes") : "no: " + esc(c.value("why_not", "")))
        << "</td></tr>\n";
      if (c.contains("latency_ms") && c.contains("top1"))
        xs.push_back(c["latency_ms"].get<double>()), ys.push_back(100 * c["top1"].get<double>());
    }
    h << "</tbody></table></div>\n";
    if (xs.empty()) continue;
    if (m["float"].contains("latency_ms")) {
      xs.push_back(m["float"]["latency_ms"].get<double>());
      ys.push_back(100 * m["float"]["top1"].get<double>());
    }
    if (budget.contains("max_latency_ms")) xs.push_back(budget["max_latency_ms"].get<double>());
    Chart c("auto-" + st["name"].get<std::string>(),
            "Candidates of the ladder: top-1 against latency", "latency (ms)", "top-1 (%)", xs, ys,
            0.0);
    if (budget.contains("max_latency_ms")) {
      const double bx = c.x(budget["max_latency_ms"].get<double>());
      c.add("<line x1=\"" + fmt("%.2f", bx) + "\" x2=\"" + fmt("%.2f", bx) + "\" y1=\"" +
            fmt("%.2f", Chart::kTop) + "\" y2=\"" + fmt("%.2f", Chart::kHeight - Chart::kBottom) +
            "\" stroke=\"" + kColors[5] + "\" stroke-width=\"1.5\" stroke-dasharray=\"6 4\">" +
            "<title>latency budget</title></line>");
    }
    auto point = [&](double x, double y, const std::string& color, const std::string& name,
                     const std::string& tip) {
      std::ostringstream p;
      p << "<g class=\"point\" data-stage=\"" << esc(name) << "\" data-x=\"" << exact(x)
        << "\" data-y=\"" << exact(y) << "\"><title>" << esc(tip) << "</title><circle cx=\""
        << c.x(x) << "\" cy=\"" << c.y(y) << "\" r=\"5\" fill=\"" << color << "\"/></g>";
      c.add(p.str());
    };
    if (m["float"].contains("latency_ms"))
      point(m["float"]["latency_ms"].get<double>(), 100 * m["float"]["top1"].get<double>(),
            kColors[0], "float", "float model");
    for (const auto& cand : m["candidates"]) {
      if (!cand.contains("latency_ms") || !cand.contains("top1")) continue;
      const bool ok = cand["meets"].get<bool>();
      point(cand["latency_ms"].get<double>(), 100 * cand["top1"].get<double>(),
            ok ? kColors[2] : kColors[7], cand["name"],
            cand["name"].get<std::string>() + ": top-1 " +
                fmt("%.2f%%", 100 * cand["top1"].get<double>()) + ", " +
                fmt("%.3f ms", cand["latency_ms"].get<double>()) +
                (ok ? ", meets the budget" : ", " + cand.value("why_not", "")));
    }
    h << c.svg(legend({{swatch_dot(kColors[0]), "float model"},
                       {swatch_dot(kColors[2]), "meets the budget"},
                       {swatch_dot(kColors[7]), "misses it"},
                       {swatch_line(kColors[5], true), "latency budget"}}));
  }
  h << "</body></html>\n";
  return h.str();
}

}  // namespace slim
