#include "slim/quant/scale_table.h"

#include <nlohmann/json.hpp>

#include <cmath>

#include "slim/ir/error.h"
#include "slim/onnx/onnx_io.h"

namespace slim {

namespace {
constexpr const char* kFormat = "slim-scale-table";
}

void scale_table_save(const ScaleTable& t, const std::string& path) {
  nlohmann::ordered_json j;
  j["format"] = kFormat;
  j["version"] = 1;
  j["model"] = t.model;
  j["algo"] = t.algo;
  j["activation_bits"] = t.act_bits;
  j["weight_bits"] = t.weight_bits;
  j["samples"] = t.samples;
  j["batches"] = t.batches;
  nlohmann::ordered_json acts = nlohmann::ordered_json::object();
  for (const auto& [name, a] : t.activations) {
    nlohmann::ordered_json e;
    e["threshold"] = a.threshold;
    e["abs_max"] = a.abs_max;
    e["unsigned"] = a.is_unsigned;
    e["consumers"] = a.consumers;
    acts[name] = e;
  }
  j["activations"] = acts;
  write_file_atomic(path, j.dump(2) + "\n");
}

ScaleTable scale_table_load(const std::string& path) {
  std::string text = read_file(path);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    SLIM_FAIL(path, ": not valid JSON: ", e.what());
  }
  SLIM_CHECK(j.is_object() && j.value("format", "") == kFormat, path,
             ": not a Slim scale table (expected \"format\": \"", kFormat, "\")");
  ScaleTable t;
  try {
    for (const auto& [key, v] : j.items())
      SLIM_CHECK(key == "format" || key == "version" || key == "model" || key == "algo" ||
                     key == "activation_bits" || key == "weight_bits" || key == "samples" ||
                     key == "batches" || key == "activations",
                 path, ": unknown key '", key, "'");
    t.model = j.value("model", "");
    t.algo = j.value("algo", "");
    t.act_bits = j.value("activation_bits", 8);
    t.weight_bits = j.value("weight_bits", 8);
    t.samples = j.value("samples", int64_t{0});
    t.batches = j.value("batches", int64_t{0});
    SLIM_CHECK(j.contains("activations") && j["activations"].is_object(), path,
               ": missing the \"activations\" object");
    for (const auto& [name, e] : j["activations"].items()) {
      SLIM_CHECK(e.is_object() && e.contains("threshold") && e["threshold"].is_number(), path,
                 ": activation '", name, "' has no numeric \"threshold\"");
      for (const auto& [key, v] : e.items())
        SLIM_CHECK(key == "threshold" || key == "abs_max" || key == "unsigned" ||
                       key == "consumers",
                   path, ": activation '", name, "': unknown key '", key, "'");
      ActivationScale a;
      a.threshold = e["threshold"].get<double>();
      SLIM_CHECK(std::isfinite(a.threshold) && a.threshold > 0, path, ": activation '", name,
                 "': threshold must be a finite number > 0, got ", a.threshold);
      a.abs_max = e.value("abs_max", a.threshold);
      a.is_unsigned = e.value("unsigned", false);
      a.consumers = e.value("consumers", std::vector<std::string>{});
      t.activations[name] = a;
    }
  } catch (const nlohmann::json::exception& e) {
    SLIM_FAIL(path, ": ", e.what());
  }
  return t;
}

}  // namespace slim
