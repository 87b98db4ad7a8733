// report.html in a real browser: a short pipeline on MNIST (the shared trained MobileNetV1,
// sensitivity, prune, fine-tune, int8) writes its report; headless Chromium renders it, a
// screenshot is taken and must show the charts, and a script run in the page checks every chart's
// data points against summary.json and that every point and label lies inside its chart.
#include <gtest/gtest.h>
#include <stb/stb_image.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>

#include "slim/onnx/onnx_io.h"
#include "test_util.h"
#include "trained_models.h"

namespace slim {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;

/// Debian's chromium-headless-shell (scripts/setup.sh installs it), else chromium.
std::string chromium() {
  for (const char* b : {"/usr/bin/chromium-headless-shell", "/usr/bin/chromium"})
    if (fs::exists(b)) return b;
  return "";
}

class ReportBrowser : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(test::temp_dir("report_browser"));
    // The suites' trained model (tests/trained_models.h), not a training stage of its own.
    onnx_save(test::trained_mnist_mobilenet_v1(), path("trained.onnx"));
    std::ofstream(path("run.yaml"))
        << "model: {file: " << path("trained.onnx") << "}\n"
        << "data: mnist:" << test::data_dir("mnist") << "\n"
        << "threads: 2\n"
        << "measure: {max-samples: 500, latency-runs: 5, latency-warmup: 1}\n"
        << "stages:\n"
        << "  - sensitivity: {params-regex: 'conv[23]_._sep_weights', ratios: [0.2, 0.4, 0.6],"
        << " max-samples: 300}\n"
        << "  - prune: {flops-target: 0.15, align: 8}\n"
        << "  - train: {name: fine-tune, epochs: 1, batch: 64, max-samples: 3000, lr: 0.02}\n"
        << "  - quant: {mode: ptq, batches: 4}\n";
    run_ = new test::CmdResult(
        test::run_cmd(test::slim_bin() + " compress " + path("run.yaml") + " -o " + path("run")));
  }
  static void TearDownTestSuite() {
    delete dir_;
    delete run_;
  }
  static std::string path(const std::string& f) { return *dir_ + "/" + f; }
  static std::string* dir_;
  static test::CmdResult* run_;
};
std::string* ReportBrowser::dir_ = nullptr;
test::CmdResult* ReportBrowser::run_ = nullptr;

TEST_F(ReportBrowser, ChromiumRendersEveryChartWithTheRunsData) {
  ASSERT_EQ(run_->code, 0) << run_->err;
  const std::string browser = chromium();
  ASSERT_FALSE(browser.empty()) << "no chromium-headless-shell or chromium: run scripts/setup.sh";
  const std::string report = path("run/report.html");
  const std::string html = test::read_file(report);
  // Self-contained: nothing fetched, no script.
  for (const char* banned : {"<script", "http://", "https://", "<link", "src="})
    EXPECT_EQ(html.find(banned), std::string::npos) << banned;
  const Json summary = Json::parse(test::read_file(path("run/summary.json")));

  // The page with a checking script appended, rendered by Chromium (scripts run, layout done).
  std::ofstream(path("check.html")) << html.substr(0, html.rfind("</body>")) << R"JS(<script>
const out = {figures: {}};
for (const f of document.querySelectorAll('figure')) {
  const box = f.querySelector('svg.chart').getBoundingClientRect();
  const fig = {width: box.width, height: box.height, outside: [], points: [], bars: [],
               series: []};
  for (const e of f.querySelectorAll('.point, .bar, .label')) {
    const b = e.getBoundingClientRect();
    if (b.left < box.left - 1 || b.right > box.right + 1 || b.top < box.top - 1 ||
        b.bottom > box.bottom + 1)
      fig.outside.push(e.textContent.slice(0, 40));
  }
  for (const p of f.querySelectorAll('.point'))
    fig.points.push({stage: p.dataset.stage || null, x: +p.dataset.x, y: +p.dataset.y,
                     title: p.querySelector('title').textContent});
  for (const b of f.querySelectorAll('.bar'))
    fig.bars.push({param: b.dataset.param, before: +b.dataset.before, after: +b.dataset.after});
  for (const s of f.querySelectorAll('.series')) fig.series.push(s.dataset.param);
  out.figures[f.id] = fig;
}
// Nothing wider than the window, the table not scrolled sideways in its frame.
out.page_width = document.documentElement.scrollWidth;
out.window_width = window.innerWidth;
const table = document.getElementById('stages');
out.table_width = table.scrollWidth;
out.table_frame = table.parentElement.clientWidth;
const nd = document.getElementById('not-drawn');
out.not_drawn = nd ? nd.textContent : '';
out.rows = [...document.querySelectorAll('#stages tbody tr')].map(
    r => [...r.querySelectorAll('td')].map(c => c.textContent));
document.body.insertAdjacentHTML('beforeend',
    '<pre id="check">' + JSON.stringify(out).replace(/</g, '\\u003c') + '</pre>');
</script></body></html>
)JS";
  const std::string flags = " --no-sandbox --disable-gpu --hide-scrollbars ";
  // A 1000-pixel window, a laptop's browser beside another window.
  const std::string window = "--window-size=1000,2400 ";
  auto dom = test::run_cmd(browser + flags + window +
                           "--virtual-time-budget=5000 --dump-dom file://" + path("check.html"));
  ASSERT_EQ(dom.code, 0) << dom.err;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(dom.out, m, std::regex("<pre id=\"check\">(\\{.*?)</pre>")))
      << dom.out.substr(0, 2000);
  const Json check = Json::parse(m[1].str());

  // The stages table: one row per measured model with its numbers.
  std::vector<Json> measured;
  for (const auto& s : summary["stages"])
    if (s["metrics"].contains("measure")) measured.push_back(s);
  ASSERT_EQ(check["rows"].size(), measured.size());
  for (size_t i = 0; i < measured.size(); ++i) {
    const auto& row = check["rows"][i];
    const auto& me = measured[i]["metrics"]["measure"];
    EXPECT_EQ(row[0], measured[i]["name"]);
    char top1[16];
    std::snprintf(top1, sizeof top1, "%.2f", 100 * me["eval"]["top1"].get<double>());
    EXPECT_EQ(row[3], top1) << row;
    int64_t flops = 0;
    std::string digits = row[5].get<std::string>();
    digits.erase(std::remove(digits.begin(), digits.end(), ','), digits.end());
    flops = std::stoll(digits);
    EXPECT_EQ(flops, me["flops"].get<int64_t>()) << row;
    // Latency in the column of the model's precision, a dash in the other.
    const bool int8 = me["precision"] == "int8";
    const std::string lat = row[int8 ? 9 : 8], other = row[int8 ? 8 : 9];
    EXPECT_NEAR(std::stod(lat), me["latency"]["median_ms"].get<double>(), 5e-4) << row;
    EXPECT_EQ(other, "\u2013") << row;
  }

  // Accuracy against latency: one point per model at its values, except models below half
  // the best top-1 (the untrained input), which are listed under the chart.
  double best = 0;
  for (const auto& s : measured)
    best = std::max(best, s["metrics"]["measure"]["eval"]["top1"].get<double>());
  std::vector<Json> drawn;
  for (const auto& s : measured)
    if (s["metrics"]["measure"]["eval"]["top1"].get<double>() >= 0.5 * best)
      drawn.push_back(s);
    else
      EXPECT_NE(check["not_drawn"].get<std::string>().find(s["name"].get<std::string>()),
                std::string::npos)
          << check["not_drawn"];
  const Json& acc = check["figures"]["accuracy-latency"];
  ASSERT_EQ(acc["points"].size(), drawn.size());
  ASSERT_GE(drawn.size(), 3u);
  for (size_t i = 0; i < drawn.size(); ++i) {
    const auto& p = acc["points"][i];
    const auto& me = drawn[i]["metrics"]["measure"];
    EXPECT_EQ(p["stage"], drawn[i]["name"]);
    EXPECT_DOUBLE_EQ(p["x"].get<double>(), me["latency"]["median_ms"].get<double>());
    EXPECT_DOUBLE_EQ(p["y"].get<double>(), 100 * me["eval"]["top1"].get<double>());
    EXPECT_NE(p["title"].get<std::string>().find(drawn[i]["name"].get<std::string>()),
              std::string::npos);
  }
  // Sensitivity: a curve per analysed conv, a point per ratio, at the file's values.
  const Json sens = Json::parse(test::read_file(path("run/01-sensitivity/sens.json")));
  const Json& sf = check["figures"]["sensitivity-sensitivity"];
  ASSERT_EQ(sf["series"].size(), sens.size());
  size_t cells = 0;
  for (const auto& [param, points] : sens.items()) cells += points.size();
  ASSERT_EQ(sf["points"].size(), cells);
  size_t k = 0;
  for (const auto& [param, points] : sens.items()) {
    EXPECT_EQ(sf["series"][k++], param);
  }
  // Pruned layers: a bar per pruned group with its counts.
  const Json& pruned = summary["stages"][2]["metrics"]["pruned"];
  const Json& bars = check["figures"]["channels-prune"]["bars"];
  ASSERT_EQ(bars.size(), pruned.size());
  ASSERT_GT(bars.size(), 0u);
  for (size_t i = 0; i < pruned.size(); ++i) {
    EXPECT_EQ(bars[i]["param"], pruned[i]["master"]);
    EXPECT_EQ(bars[i]["before"], pruned[i]["channels"]);
    EXPECT_EQ(bars[i]["after"], pruned[i]["kept"]);
  }
  EXPECT_LE(check["page_width"].get<double>(), check["window_width"].get<double>());
  EXPECT_LE(check["table_width"].get<double>(), check["table_frame"].get<double>());
  // Every chart laid out at a readable size with nothing outside it.
  EXPECT_EQ(check["figures"].size(), 3u);
  for (const auto& [id, fig] : check["figures"].items()) {
    EXPECT_GT(fig["width"].get<double>(), 400) << id;
    EXPECT_GT(fig["height"].get<double>(), 100) << id;
    EXPECT_TRUE(fig["outside"].empty()) << id << ": " << fig["outside"];
  }

  // The screenshot shows the page: mostly background, with the charts' colours in it.
  const std::string png = path("report.png");
  auto shot = test::run_cmd(browser + flags + window + "--screenshot=" + png + " file://" + report);
  ASSERT_EQ(shot.code, 0) << shot.err;
  int w = 0, h = 0, n = 0;
  unsigned char* px = stbi_load(png.c_str(), &w, &h, &n, 3);
  ASSERT_NE(px, nullptr) << png;
  int64_t ink = 0, blue = 0, orange = 0;
  for (int64_t i = 0; i < static_cast<int64_t>(w) * h; ++i) {
    const int r = px[3 * i], g = px[3 * i + 1], b = px[3 * i + 2];
    ink += r + g + b < 600;
    blue += std::abs(r - 0x00) < 40 && std::abs(g - 0x72) < 40 && std::abs(b - 0xB2) < 40;
    orange += std::abs(r - 0xE6) < 40 && std::abs(g - 0x9F) < 40 && std::abs(b - 0x00) < 40;
  }
  stbi_image_free(px);
  EXPECT_EQ(w, 1000);
  const double area = static_cast<double>(w) * h;
  EXPECT_GT(ink / area, 0.01) << "blank page? " << png;
  EXPECT_LT(ink / area, 0.5) << png;
  EXPECT_GT(blue, 200) << "float model points, curves and bars missing from " << png;
  EXPECT_GT(orange, 50) << "int8 point and a sensitivity curve missing from " << png;
}

}  // namespace
}  // namespace slim
