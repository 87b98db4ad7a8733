#include "slim/pipeline/config.h"

#include <yaml-cpp/yaml.h>

#include <cctype>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "slim/ir/error.h"
#include "slim/nas/search_space.h"
#include "slim/zoo/zoo.h"

namespace slim {

namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;

// kTermList: a repeatable flag whose values hold commas themselves (distill's --loss): a list,
// or one value; never split at commas.
enum class T { kInt, kNum, kBool, kStr, kIntList, kNumList, kStrList, kTermList, kRatioMap, kPath };

/// A bound on numbers (lists: on each element). Inclusive unless *_open.
struct Range {
  double lo = -INFINITY, hi = INFINITY;
  bool lo_open = false, hi_open = false;
  bool contains(double v) const {
    return (lo_open ? v > lo : v >= lo) && (hi_open ? v < hi : v <= hi);
  }
  bool any() const { return std::isinf(lo) && std::isinf(hi); }
  std::string str() const {
    std::ostringstream s;
    if (std::isinf(hi)) {
      s << (lo_open ? "> " : ">= ") << lo;
    } else {
      s << (lo_open ? "(" : "[") << lo << ", " << hi << (hi_open ? ")" : "]");
    }
    return s.str();
  }
};

const Range kAny{};
const Range kPositive{0, INFINITY, true, false};
const Range kNonNegative{0, INFINITY, false, false};
const Range kUnit{0, 1, false, false};
const Range kRatio{0, 1, false, true};  // a pruning ratio: 1 would remove every filter

struct Key {
  std::string name;
  T type;
  Range range = kAny;
  std::vector<std::string> allowed = {};
  std::string modes = "";  ///< quant: the modes that take it ("ptq,qat"); empty: all
};

std::vector<Key> train_keys() {
  return {{"epochs", T::kInt, kPositive},
          {"batch", T::kInt, kPositive},
          {"lr", T::kNum, kPositive},
          {"optimizer", T::kStr, kAny, {"momentum", "adam"}},
          {"momentum", T::kNum, {0, 1, false, true}},
          {"weight-decay", T::kNum, kNonNegative},
          {"lr-schedule", T::kStr, kAny, {"constant", "piecewise", "cosine"}},
          {"boundaries", T::kNumList, kNonNegative},
          {"values", T::kNumList, kPositive},
          {"seed", T::kInt, kNonNegative},
          {"max-samples", T::kInt, kNonNegative},
          {"no-shuffle", T::kBool},
          {"drop-last", T::kBool}};
}

const std::vector<std::string> kCriteria{"l1_norm", "l2_norm", "l0_norm", "fpgm", "bn_scale"};

std::vector<Key> keys_of(const std::string& kind) {
  std::vector<Key> k;
  auto add = [&](std::vector<Key> more) { k.insert(k.end(), more.begin(), more.end()); };
  if (kind == "train") {
    add(train_keys());
    add({{"reset-head", T::kBool}});
  } else if (kind == "eval") {
    add({{"batch", T::kInt, kPositive}, {"max-samples", T::kInt, kNonNegative}});
  } else if (kind == "sensitivity") {
    add({{"params", T::kStrList},
         {"params-regex", T::kStr},
         {"ratios", T::kNumList, kRatio},
         {"criterion", T::kStr, kAny, kCriteria},
         {"align", T::kInt, kPositive},
         {"batch", T::kInt, kPositive},
         {"max-samples", T::kInt, kNonNegative}});
  } else if (kind == "prune") {
    add({{"ratios", T::kRatioMap, kRatio},
         {"sens", T::kStr},
         {"loss", T::kNum, kUnit},
         {"flops-target", T::kNum, kUnit},
         {"uniform", T::kNum, kRatio},
         {"params-regex", T::kStr},
         {"max-ratio", T::kNum, kRatio},
         {"criterion", T::kStr, kAny, kCriteria},
         {"align", T::kInt, kPositive},
         {"lazy", T::kBool},
         {"input", T::kStr}});
  } else if (kind == "distill") {
    add(train_keys());
    add({{"teacher", T::kStr},
         {"loss", T::kTermList},
         {"task-weight", T::kNum, kNonNegative},
         {"adapter", T::kBool},
         {"t2-scale", T::kBool},
         {"map", T::kStrList},
         {"prefix", T::kStr}});
  } else if (kind == "quant") {
    add({{"mode", T::kStr, kAny, {"ptq", "qat", "weight"}},
         {"algo", T::kStr, kAny, {"hist", "kl", "mse", "avg", "abs_max"}, "ptq"},
         {"batches", T::kInt, kNonNegative, {}, "ptq"},
         {"batch-size", T::kInt, kPositive, {}, "ptq"},
         {"kl-max-clip", T::kNum, {0, 1, true, false}, {}, "ptq"},
         {"hist-percent", T::kNum, {0, 1, true, false}, {}, "ptq"},
         {"bias-correction", T::kBool, kAny, {}, "ptq"},
         {"no-fold-bn", T::kBool, kAny, {}, "ptq"},
         {"weight-algo", T::kStr, kAny, {"channel_wise_abs_max", "abs_max"}},
         {"weight-bits", T::kInt, {2, 8}, {}, "ptq,qat"},
         {"act-bits", T::kInt, {2, 8}, {}, "ptq,qat"},
         {"float-outputs", T::kBool, kAny, {}, "ptq,qat"},
         {"op-types", T::kStrList},
         {"not-quant-pattern", T::kStr},
         {"act-algo", T::kStr, kAny, {"moving_average_abs_max", "abs_max", "range_abs_max"}, "qat"},
         {"moving-rate", T::kNum, {0, 1, true, true}, {}, "qat"},
         {"window-size", T::kInt, kPositive, {}, "qat"},
         {"fold-bn", T::kStr, kAny, {"before", "after"}, "qat"},
         {"bits", T::kInt, {2, 16}, {}, "weight"},
         {"teacher", T::kStr, kAny, {}, "qat"},
         {"loss", T::kTermList, kAny, {}, "qat"},
         {"task-weight", T::kNum, kNonNegative, {}, "qat"},
         {"t2-scale", T::kBool, kAny, {}, "qat"}});
    for (Key t : train_keys()) {
      t.modes = "qat";
      k.push_back(t);
    }
    // ptq's own max-samples (calibration samples); qat's is the training one above.
    for (auto& key : k)
      if (key.name == "max-samples") key.modes = "ptq,qat";
  } else if (kind == "bench") {
    add({{"batch", T::kInt, kPositive},
         {"runs", T::kInt, kPositive},
         {"warmup", T::kInt, kNonNegative}});
  } else if (kind == "nas") {  // slim nas: the stage's model is the best candidate found
    add(train_keys());
    add({{"space", T::kStr, kAny, search_space_names()},
         {"input", T::kIntList, kPositive},
         {"classes", T::kInt, kPositive},
         {"steps", T::kInt, kPositive},
         {"max-flops", T::kInt, kNonNegative},
         {"max-params", T::kInt, kNonNegative},
         {"max-size", T::kInt, kNonNegative},
         {"size-format", T::kStr, kAny, {"float", "int8"}},
         {"max-latency-ms", T::kNum, kNonNegative},
         {"latency-batch", T::kInt, kPositive},
         {"latency-threads", T::kInt, kNonNegative},
         {"latency-runs", T::kInt, kPositive},
         {"latency-table", T::kPath},
         {"latency-weight", T::kNum, kNonNegative},
         {"target-latency-ms", T::kNum, kNonNegative},
         {"val-samples", T::kInt, kPositive},
         {"eval-batch", T::kInt, kPositive},
         {"init-temperature", T::kNum, kPositive},
         {"reduce-rate", T::kNum, kUnit},
         {"max-draws", T::kInt, kPositive}});
  } else if (kind == "auto") {  // auto-compression to a budget (pipeline.h)
    add({{"max-latency-ms", T::kNum, kPositive},
         {"max-size", T::kInt, kPositive},
         {"max-loss", T::kNum, kUnit},
         {"algos", T::kStrList, kAny, {"hist", "kl", "mse", "avg", "abs_max"}},
         {"calib-batches", T::kInt, kNonNegative},
         {"qat-epochs", T::kInt, kPositive},
         {"qat-lr", T::kNum, kPositive},
         {"finetune-epochs", T::kInt, kPositive},
         {"lr", T::kNum, kPositive},
         {"batch", T::kInt, kPositive},
         {"max-samples", T::kInt, kNonNegative},
         {"seed", T::kInt, kNonNegative},
         {"flops-targets", T::kNumList, {0, 1, true, true}},
         {"sens-ratios", T::kNumList, kRatio},
         {"sens-max-samples", T::kInt, kNonNegative},
         {"align", T::kInt, kPositive},
         {"exhaustive", T::kBool}});
  } else if (kind == "model") {  // another model, e.g. a teacher: as the config's model key
    add({{"file", T::kPath},
         {"zoo", T::kStr, kAny, zoo_names()},
         {"input", T::kIntList, kPositive},
         {"classes", T::kInt, kPositive},
         {"scale", T::kNum, kPositive},
         {"seed", T::kInt, kNonNegative}});
  }
  return k;
}

const std::vector<std::string> kKinds{"train", "eval",  "sensitivity", "prune", "distill",
                                      "quant", "bench", "nas",         "model", "auto"};

std::string joined(const std::vector<std::string>& v) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + v[i];
  return s;
}

bool has_mode(const std::string& modes, const std::string& mode) {
  if (modes.empty()) return true;
  std::stringstream ss(modes);
  std::string m;
  while (std::getline(ss, m, ','))
    if (m == mode) return true;
  return false;
}

class Parser {
 public:
  Parser(std::string path) : path_(std::move(path)) {
    base_ = fs::absolute(fs::path(path_)).parent_path();
  }

  ConfigPos pos(const YAML::Node& n) const {
    const YAML::Mark m = n.Mark();
    return {path_, m.line + 1, m.column + 1};
  }

  template <typename... Args>
  [[noreturn]] void fail(const YAML::Node& n, const Args&... args) const {
    std::string msg = detail::str_cat(args...);
    for (size_t i = 0; (i = msg.find('\n', i)) != std::string::npos;) msg.replace(i, 1, "\\n");
    SLIM_FAIL(pos(n).str(), ": ", msg);  // one line, whatever a value held
  }

  std::string path_of(const std::string& p) const {
    if (p.empty() || fs::path(p).is_absolute()) return p;
    return fs::weakly_canonical(base_ / p).string();
  }

  /// "KIND:DIR" with DIR made absolute.
  std::string data_spec(const YAML::Node& n, const std::string& s) const {
    const auto colon = s.find(':');
    const std::string kind = colon == std::string::npos ? "" : s.substr(0, colon);
    if (kind != "mnist" && kind != "fashion" && kind != "folder")
      fail(n, "data '", s, "': expected KIND:DIR with KIND mnist, fashion or folder");
    return s.substr(0, colon + 1) + path_of(s.substr(colon + 1));
  }

  std::string scalar(const YAML::Node& n, const std::string& key) const {
    if (!n.IsScalar())
      fail(n, key, ": expected a single value, not a ",
           n.IsMap()        ? "map"
           : n.IsSequence() ? "list"
                            : "null");
    return n.Scalar();
  }

  double number(const YAML::Node& n, const std::string& key, const std::string& text, bool integer,
                const Range& r) const {
    double v = 0;
    bool ok = false;
    if (integer) {
      long long i = 0;
      auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), i);
      ok = ec == std::errc() && p == text.data() + text.size();
      v = static_cast<double>(i);
    } else {
      char* end = nullptr;
      v = std::strtod(text.c_str(), &end);
      ok = !text.empty() && end == text.c_str() + text.size() && std::isfinite(v);
    }
    if (!ok) fail(n, key, ": '", text, "' is not ", integer ? "an integer" : "a number");
    if (!r.contains(v)) fail(n, key, ": ", text, " is out of range; allowed ", r.str());
    return v;
  }

  /// Sequence items, or a scalar's comma-separated parts (the CLI's form).
  /// A list's items: a YAML list, or one scalar split at commas (kept whole with split false).
  std::vector<std::pair<YAML::Node, std::string>> items(const YAML::Node& n, const std::string& key,
                                                        bool split = true) const {
    std::vector<std::pair<YAML::Node, std::string>> out;
    if (n.IsSequence()) {
      for (const auto& item : n) out.emplace_back(item, scalar(item, key));
    } else if (!split) {
      out.emplace_back(n, scalar(n, key));
    } else {
      std::stringstream ss(scalar(n, key));
      std::string part;
      while (std::getline(ss, part, ',')) {
        const auto b = part.find_first_not_of(" \t"), e = part.find_last_not_of(" \t");
        out.emplace_back(n, b == std::string::npos ? "" : part.substr(b, e - b + 1));
      }
    }
    if (out.empty()) fail(n, key, ": empty list");
    return out;
  }

  Json value(const YAML::Node& n, const Key& k) const {
    const std::string& key = k.name;
    switch (k.type) {
      case T::kInt:
        return static_cast<int64_t>(number(n, key, scalar(n, key), true, k.range));
      case T::kNum:
        return number(n, key, scalar(n, key), false, k.range);
      case T::kBool: {
        const std::string s = scalar(n, key);
        if (s == "true" || s == "True") return true;
        if (s == "false" || s == "False") return false;
        fail(n, key, ": '", s, "' is not true or false");
      }
      case T::kStr:
      case T::kPath: {
        const std::string s = scalar(n, key);
        if (!k.allowed.empty() &&
            std::find(k.allowed.begin(), k.allowed.end(), s) == k.allowed.end())
          fail(n, key, ": '", s, "' is not one of ", joined(k.allowed));
        if (s.empty()) fail(n, key, ": empty value");
        return k.type == T::kPath ? path_of(s) : s;
      }
      case T::kIntList:
      case T::kNumList: {
        Json a = Json::array();
        for (const auto& [node, text] : items(n, key))
          a.push_back(k.type == T::kIntList
                          ? Json(static_cast<int64_t>(number(node, key, text, true, k.range)))
                          : Json(number(node, key, text, false, k.range)));
        return a;
      }
      case T::kStrList:
      case T::kTermList: {
        Json a = Json::array();
        for (const auto& [node, text] : items(n, key, k.type == T::kStrList)) {
          if (k.type == T::kTermList && text.empty()) fail(node, key, ": empty value");
          a.push_back(text);
        }
        return a;
      }
      case T::kRatioMap: {
        Json m = Json::object();
        if (n.IsMap()) {
          for (const auto& it : n) {
            const std::string name = scalar(it.first, key);
            if (m.contains(name)) fail(it.first, key, ": '", name, "' given twice");
            m[name] = number(it.second, key + "." + name, scalar(it.second, key), false, k.range);
          }
        } else {
          for (const auto& [node, text] : items(n, key)) {
            const auto eq = text.rfind('=');
            if (eq == std::string::npos || eq == 0 || eq + 1 == text.size())
              fail(node, key, ": '", text, "' is not NAME=RATIO (or write a map NAME: RATIO)");
            const std::string name = text.substr(0, eq);
            if (m.contains(name)) fail(node, key, ": '", name, "' given twice");
            m[name] = number(node, key, text.substr(eq + 1), false, k.range);
          }
        }
        if (m.empty()) fail(n, key, ": empty map");
        return m;
      }
    }
    SLIM_ASSERT(false, "key type");
  }

  /// The keys of map `n` (each once), checked against `allowed`.
  std::vector<std::pair<YAML::Node, YAML::Node>> entries(
      const YAML::Node& n, const std::string& what, const std::vector<std::string>& allowed) const {
    if (!n.IsMap()) fail(n, what, ": expected a map of key: value");
    std::vector<std::pair<YAML::Node, YAML::Node>> out;
    std::set<std::string> seen;
    for (const auto& it : n) {
      const std::string key = scalar(it.first, what);
      if (!seen.insert(key).second) fail(it.first, what, ": key '", key, "' given twice");
      if (std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
        char* end = nullptr;
        std::strtod(key.c_str(), &end);
        const bool number = !key.empty() && end == key.c_str() + key.size();
        fail(it.first, what, ": unknown key '", key, "'; allowed: ", joined(allowed),
             number ? " (inside {...} a comma starts a new key: write a list [1, 2] or quote "
                      "'1,2')"
                    : "");
      }
      out.emplace_back(it.first, it.second);
    }
    return out;
  }

  PipelineConfig parse(const std::string& text) {
    YAML::Node root;
    try {
      root = YAML::Load(text);
    } catch (const YAML::ParserException& e) {
      SLIM_FAIL(ConfigPos{path_, e.mark.line + 1, e.mark.column + 1}.str(),
                ": not valid YAML: ", e.msg);
    }
    PipelineConfig c;
    c.path = path_;
    if (!root.IsMap())
      SLIM_FAIL(ConfigPos{path_, 1, 1}.str(),
                ": expected a map with model, data and stages (see slim compress --help)");
    bool has_model = false, has_stages = false;
    for (const auto& [k, v] :
         entries(root, "config", {"model", "data", "threads", "image", "measure", "stages"})) {
      const std::string key = k.Scalar();
      if (key == "model") {
        model(v, c.model);
        has_model = true;
      } else if (key == "data") {
        c.data = data_spec(v, scalar(v, "data"));
      } else if (key == "threads") {
        c.threads = static_cast<int>(number(v, "threads", scalar(v, "threads"), true, {0, 4096}));
      } else if (key == "image") {
        for (const auto& [ik, iv] :
             entries(v, "image", {"image-size", "mean", "std", "channel-order"})) {
          const std::string name = ik.Scalar();
          // One string as the flag takes it ('224,224'), or a list of values ([224, 224]).
          std::string s;
          if (iv.IsSequence() && name != "channel-order") {
            for (const auto& e : iv) s += (s.empty() ? "" : ",") + scalar(e, name);
            if (s.empty()) fail(iv, name, ": the list is empty");
          } else {
            s = scalar(iv, name);
          }
          if (name == "image-size") c.image.size = s;
          if (name == "mean") c.image.mean = s;
          if (name == "std") c.image.std = s;
          if (name == "channel-order") {
            if (s != "rgb" && s != "bgr") fail(iv, name, ": '", s, "' is not one of rgb, bgr");
            c.image.order = s;
          }
        }
      } else if (key == "measure") {
        measure(v, c.measure);
      } else if (key == "stages") {
        stages(v, c);
        has_stages = true;
      }
    }
    if (!has_model) fail(root, "config: 'model' is missing ({file: M.onnx} or {zoo: NAME})");
    if (!has_stages) fail(root, "config: 'stages' is missing (a list of stages)");
    const bool needs_data = std::any_of(c.stages.begin(), c.stages.end(), [](const auto& s) {
      return s.kind != "prune" && s.kind != "bench" &&
             !(s.kind == "quant" && s.params.value("mode", "") == "weight");
    });
    pipeline_config_check(c);
    if (c.data.empty() && (needs_data || c.measure.eval))
      fail(root, "config: 'data' is missing (mnist:DIR, fashion:DIR or folder:DIR); the ",
           needs_data ? "stages read data" : "measurements evaluate (measure: {eval: false})");
    return c;
  }

  void model(const YAML::Node& n, PipelineModel& m) const {
    if (n.IsScalar()) {  // a file
      m.file = path_of(n.Scalar());
      return;
    }
    for (const auto& [k, v] :
         entries(n, "model", {"file", "zoo", "input", "classes", "scale", "seed"})) {
      const std::string key = k.Scalar();
      if (key == "file") m.file = path_of(scalar(v, key));
      if (key == "zoo") {
        m.zoo = scalar(v, key);
        const auto names = zoo_names();
        if (std::find(names.begin(), names.end(), m.zoo) == names.end())
          fail(v, "model.zoo: '", m.zoo, "' is not one of ", joined(names));
      }
      if (key == "input") {
        m.input.clear();
        for (const auto& [node, text] : items(v, key))
          m.input.push_back(static_cast<int64_t>(number(node, key, text, true, kPositive)));
        if (m.input.size() != 3) fail(v, "model.input: expected C,H,W (3 numbers)");
      }
      if (key == "classes")
        m.classes = static_cast<int64_t>(number(v, key, scalar(v, key), true, kPositive));
      if (key == "scale") m.scale = number(v, key, scalar(v, key), false, kPositive);
      if (key == "seed")
        m.seed = static_cast<uint64_t>(number(v, key, scalar(v, key), true, kNonNegative));
    }
    if (m.file.empty() == m.zoo.empty())
      fail(n, "model: give exactly one of file: M.onnx or zoo: NAME");
    if (!m.file.empty() && !fs::exists(m.file))
      fail(n, "model: file '", m.file, "' does not exist");
  }

  void measure(const YAML::Node& n, PipelineMeasure& m) const {
    for (const auto& [k, v] : entries(n, "measure",
                                      {"eval", "eval-batch", "max-samples", "latency-batch",
                                       "latency-runs", "latency-warmup"})) {
      const std::string key = k.Scalar();
      if (key == "eval") m.eval = value(v, {key, T::kBool}).get<bool>();
      if (key == "eval-batch") m.eval_batch = value(v, {key, T::kInt, kPositive}).get<int64_t>();
      if (key == "max-samples")
        m.max_samples = value(v, {key, T::kInt, kNonNegative}).get<int64_t>();
      if (key == "latency-batch")
        m.latency_batch = value(v, {key, T::kInt, kPositive}).get<int64_t>();
      if (key == "latency-runs") m.latency_runs = value(v, {key, T::kInt, {0, 1e6}}).get<int>();
      if (key == "latency-warmup") m.latency_warmup = value(v, {key, T::kInt, {0, 1e6}}).get<int>();
    }
  }

  void stages(const YAML::Node& n, PipelineConfig& c) const {
    if (!n.IsSequence() || n.size() == 0)
      fail(n, "stages: expected a list of stages, e.g. - train: {epochs: 1}");
    std::map<std::string, int> kind_count;
    std::set<std::string> names{"model"};  // the input model's stage
    std::set<std::string> sens_stages;     // earlier sensitivity stages, for prune's sens key
    for (const auto& item : n) {
      PipelineStage s;
      s.pos = pos(item);
      if (!item.IsMap() || item.size() != 1)
        fail(item, "stage: expected one of ", joined(kKinds),
             " with its keys, e.g. - train: ", "{epochs: 1}");
      const auto it = item.begin();
      s.kind = scalar(it->first, "stage");
      if (std::find(kKinds.begin(), kKinds.end(), s.kind) == kKinds.end())
        fail(it->first, "unknown stage '", s.kind, "'; allowed: ", joined(kKinds));
      const YAML::Node body = it->second;
      std::vector<Key> keys = keys_of(s.kind);
      std::vector<std::string> allowed{"name", "from"};
      for (const auto& k : keys) allowed.push_back(k.name);
      std::string mode;
      if (s.kind == "quant") {
        if (!body.IsMap() || !body["mode"])
          fail(it->first, "quant: 'mode' is missing (ptq, qat or weight)");
        mode = value(body["mode"], keys[0]).get<std::string>();
      }
      if (!body.IsNull()) {
        for (const auto& [k, v] : entries(body, s.kind, allowed)) {
          const std::string key = k.Scalar();
          s.keys[key] = pos(k);
          if (key == "name") {  // a folder name in the run folder
            s.name = scalar(v, key);
            const bool ok = !s.name.empty() && s.name != "." && s.name != ".." &&
                            std::all_of(s.name.begin(), s.name.end(), [](char ch) {
                              return std::isalnum(static_cast<unsigned char>(ch)) || ch == '.' ||
                                     ch == '_' || ch == '-';
                            });
            if (!ok)
              fail(v, "name: '", s.name,
                   "': use letters, digits, '.', '_' and '-' (it names "
                   "the stage's folder)");
            continue;
          }
          if (key == "from") {  // start from an earlier stage's model instead of the last one
            const std::string from = scalar(v, key);
            if (!names.count(from))
              fail(v, "from: '", from, "' is not an earlier stage (",
                   names.empty() ? "none"
                                 : joined(std::vector<std::string>(names.begin(), names.end())),
                   ")");
            s.params["from"] = from;
            continue;
          }
          const Key& spec =
              *std::find_if(keys.begin(), keys.end(), [&](const Key& x) { return x.name == key; });
          if (!has_mode(spec.modes, mode))
            fail(k, "quant ", mode, ": key '", key, "' applies to mode ", spec.modes,
                 " only; allowed here: ", joined(pipeline_stage_keys("quant " + mode)));
          s.params[key] = value(v, spec);
        }
      }
      // "model" names the input: a model stage is model-2, model-3, ... by default.
      const int count = ++kind_count[s.kind] + (s.kind == "model");
      if (s.name.empty()) s.name = count == 1 ? s.kind : s.kind + "-" + std::to_string(count);
      if (!names.insert(s.name).second)
        fail(item, "stage name '", s.name, "' is used twice (\"model\" is the input); give ",
             "one a name: key");
      check_stage(item, s, names, sens_stages);
      if (s.kind == "sensitivity") sens_stages.insert(s.name);
      c.stages.push_back(std::move(s));
    }
  }

  /// What the keys alone cannot say: choices that exclude each other, required keys.
  void check_stage(const YAML::Node& item, PipelineStage& s, const std::set<std::string>& names,
                   const std::set<std::string>& sens_stages) const {
    const Json& p = s.params;
    auto at = [&](const std::string& key) -> const ConfigPos& { return s.keys.at(key); };
    auto fail_at = [&](const std::string& key, const auto&... args) {
      SLIM_FAIL(at(key).str(), ": ", args...);
    };
    if (s.kind == "prune") {
      int ways = 0;
      std::string first;
      for (const char* k : {"ratios", "flops-target", "uniform"})
        if (p.contains(k)) ways++, first = first.empty() ? k : first;
      if (p.contains("loss") && !p.contains("flops-target")) ways++;
      if (ways > 1)
        fail(item, "prune: give one of ratios, loss (with a sensitivity), flops-target or ",
             "uniform");
      if (ways == 0)
        fail(item, "prune: say what to prune: ratios, loss (with a sensitivity), flops-target ",
             "or uniform");
      if (p.contains("sens") && (p.contains("ratios") || p.contains("uniform")))
        fail_at("sens", "prune: sens goes with loss or flops-target, not with ",
                p.contains("ratios") ? "ratios" : "uniform");
      if (p.contains("loss") && p.contains("flops-target"))
        fail_at("loss", "prune: give loss or flops-target, not both");
      if (p.contains("loss") && !p.contains("sens") && sens_stages.empty())
        fail_at("loss", "prune: loss needs a sensitivity stage before it or sens: FILE");
      if (p.contains("sens")) {
        const std::string sens = p["sens"];
        if (sens_stages.count(sens)) {
          s.params["sens_stage"] = sens;
          s.params.erase("sens");
        } else if (!fs::exists(path_of(sens))) {
          fail_at("sens", "prune: sens '", sens,
                  "' is neither an earlier sensitivity stage's name nor an existing file");
        } else {
          s.params["sens"] = path_of(sens);
        }
      }
    }
    if (s.kind == "distill" && !p.contains("teacher"))
      fail(item, "distill: 'teacher' is missing: an ONNX file or an earlier stage's name");
    if (s.kind == "quant" && !p.contains("teacher"))
      for (const char* k : {"loss", "task-weight", "t2-scale"})
        if (p.contains(k)) fail_at(k, "quant qat: ", k, " needs teacher (QAT with distillation)");
    if (p.contains("teacher")) {
      const std::string t = p["teacher"];
      if (names.count(t) && t != s.name) {
        s.params["teacher_stage"] = t;
      } else {
        const std::string file = path_of(t);
        if (!fs::exists(file))
          fail_at("teacher", s.kind, ": teacher '", t,
                  "' is neither an earlier stage's name nor an existing file");
        s.params["teacher"] = file;
      }
    }
    if (s.kind == "auto" && p.contains("flops-targets")) {
      std::set<std::string> seen;
      for (const auto& t : p["flops-targets"]) {
        char name[16];
        std::snprintf(name, sizeof name, "%.2f", t.get<double>());
        if (!seen.insert(name).second)
          fail_at("flops-targets", "auto: flops-targets has ", name,
                  " twice (two decimals name "
                  "the rungs)");
      }
    }
    if (s.kind == "auto" && !p.contains("max-latency-ms") && !p.contains("max-size"))
      fail(item, "auto: give the budget: max-latency-ms and/or max-size (with max-loss, default ",
           "0.01)");
    if (s.kind == "nas") {
      if (!p.contains("space"))
        fail(item, "nas: 'space' is missing (", joined(search_space_names()), ")");
      if (p.contains("input") && p["input"].size() != 3)
        fail_at("input", "nas: input: expected C,H,W (3 numbers)");
      if (p.contains("latency-table") && !fs::exists(p["latency-table"].get<std::string>()))
        fail_at("latency-table", "nas: latency table '", p["latency-table"].get<std::string>(),
                "' does not exist");
    }
    if (s.kind == "model") {
      if (p.contains("file") == p.contains("zoo"))
        fail(item, "model: give exactly one of file: M.onnx or zoo: NAME");
      if (p.contains("file") && !fs::exists(p["file"].get<std::string>()))
        fail_at("file", "model: file '", p["file"].get<std::string>(), "' does not exist");
      if (p.contains("input") && p["input"].size() != 3)
        fail_at("input", "model: input: expected C,H,W (3 numbers)");
    }
    if (s.kind == "train" || s.kind == "distill" || s.kind == "quant") {
      if (p.value("lr-schedule", "") == "piecewise") {
        if (!p.contains("boundaries") || !p.contains("values") ||
            p["values"].size() != p["boundaries"].size() + 1)
          fail_at("lr-schedule", s.kind,
                  ": piecewise needs boundaries and values (one more value than boundaries)");
      }
    }
    if (s.kind == "sensitivity" && p.contains("params") && p.contains("params-regex"))
      fail_at("params-regex", "sensitivity: give params or params-regex, not both");
  }

  std::string path_;
  fs::path base_;
};

}  // namespace

std::string ConfigPos::str() const {
  if (line <= 0) return file;  // not from the file (e.g. a stage slim compress --auto adds)
  return file + ":" + std::to_string(line) + ":" + std::to_string(column);
}

Json PipelineConfig::settings() const {
  return {{"model",
           {{"file", model.file},
            {"zoo", model.zoo},
            {"input", model.input},
            {"classes", model.classes},
            {"scale", model.scale},
            {"seed", model.seed}}},
          {"data", data},
          {"image",
           {{"image-size", image.size},
            {"mean", image.mean},
            {"std", image.std},
            {"channel-order", image.order}}},
          {"threads", threads},
          {"measure",
           {{"eval", measure.eval},
            {"eval-batch", measure.eval_batch},
            {"max-samples", measure.max_samples},
            {"latency-batch", measure.latency_batch},
            {"latency-runs", measure.latency_runs},
            {"latency-warmup", measure.latency_warmup}}}};
}

void pipeline_config_check(const PipelineConfig& c) {
  for (const auto& s : c.stages) {
    if (s.kind != "auto") continue;
    SLIM_CHECK(c.measure.eval, s.pos.str(), ": auto: candidates are compared by top-1: the ",
               "config's measure needs eval: true");
    SLIM_CHECK(!s.params.contains("max-latency-ms") || c.measure.latency_runs > 0, s.pos.str(),
               ": auto: max-latency-ms needs the config's measure to time models ",
               "(latency-runs > 0)");
  }
}

PipelineConfig pipeline_config_parse(const std::string& text, const std::string& path) {
  return Parser(path).parse(text);
}

PipelineConfig pipeline_config_load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  SLIM_CHECK(in.good(), "cannot read config '", path, "'");
  std::stringstream ss;
  ss << in.rdbuf();
  return pipeline_config_parse(ss.str(), path);
}

std::vector<std::string> pipeline_stage_kinds() { return kKinds; }

std::vector<std::string> pipeline_stage_keys(const std::string& kind) {
  std::string base = kind, mode;
  if (const auto sp = kind.find(' '); sp != std::string::npos)
    base = kind.substr(0, sp), mode = kind.substr(sp + 1);
  SLIM_CHECK(std::find(kKinds.begin(), kKinds.end(), base) != kKinds.end(), "unknown stage '", kind,
             "'");
  std::vector<std::string> out{"name", "from"};
  for (const auto& k : keys_of(base))
    if (mode.empty() || has_mode(k.modes, mode)) out.push_back(k.name);
  return out;
}

}  // namespace slim
