#pragma once
/// The readable artefact between calibration and quantization (ncnn's table, PaddleSlim's scale
/// dict): one threshold per quantized activation, saved as JSON so it can be checked or edited
/// before it is applied.
#include <map>
#include <string>
#include <vector>

namespace slim {

struct ActivationScale {
  double threshold = 0;  ///< the clip value s: levels cover [-s, s] (or [0, s] unsigned)
  double abs_max = 0;    ///< max |x| seen in calibration (informative)
  bool is_unsigned = false;  ///< >= 0 by construction: exported as uint8 with 255 levels
  std::vector<std::string> consumers;  ///< quantized nodes reading it (informative)
};

struct ScaleTable {
  std::string model;  ///< the model file calibrated (informative)
  std::string algo;   ///< calibration algorithm, or "qat"
  int act_bits = 8;
  int weight_bits = 8;
  int64_t samples = 0;  ///< calibration images
  int64_t batches = 0;
  std::map<std::string, ActivationScale> activations;  ///< by value name
};

/// Writes the table as indented JSON, atomically.
void scale_table_save(const ScaleTable& t, const std::string& path);
/// Reads a table; errors name the file and the key or entry that is wrong (missing threshold,
/// threshold <= 0 or not finite, unknown key).
ScaleTable scale_table_load(const std::string& path);

}  // namespace slim
