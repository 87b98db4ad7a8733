#include "slim/data/model_data.h"

#include <cstdio>
#include <sstream>

#include "slim/ir/error.h"
#include "slim/passes/relax_batch.h"

namespace slim {

namespace {

const std::vector<float> kImagenetMean{0.485f, 0.456f, 0.406f};  // torchvision's
const std::vector<float> kImagenetStd{0.229f, 0.224f, 0.225f};

/// "imagenet", one value for every channel, or one per channel.
std::vector<float> parse_values(const std::string& flag, const std::string& text,
                                const std::vector<float>& imagenet, int64_t channels) {
  if (text == "imagenet") {
    SLIM_CHECK(channels == 3, flag, " imagenet: the preset has 3 values, the model reads ",
               channels, " channel(s)");
    return imagenet;
  }
  std::vector<float> v;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    size_t used = 0;
    float x = 0;
    try {
      x = std::stof(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    SLIM_CHECK(used == item.size() && used > 0, flag, " '", text,
               "': expected imagenet or numbers separated by commas");
    v.push_back(x);
  }
  if (v.size() == 1) v.assign(static_cast<size_t>(channels), v[0]);
  SLIM_CHECK(static_cast<int64_t>(v.size()) == channels, flag, " '", text, "' has ", v.size(),
             " values; the model reads ", channels, " channel(s)");
  return v;
}

}  // namespace

FolderOptions ImageOptions::for_model(const Graph& g) const {
  FolderOptions f;
  // Image folders follow the model: its input's channel count and size when it fixes them.
  if (g.inputs.size() == 1 && g.inputs[0].has_shape && g.inputs[0].shape.size() == 4) {
    const auto& s = g.inputs[0].shape;
    if (s[1] == 1 || s[1] == 3) {
      f.channels = s[1];
      if (s[1] == 1) f.mean = {0.5f}, f.std = {0.5f};
    }
    if (s[2] > 0 && s[3] > 0) f.height = s[2], f.width = s[3];
  }
  if (!size.empty()) {
    std::vector<int64_t> hw;
    std::stringstream ss(size);
    std::string item;
    while (std::getline(ss, item, ',')) {
      size_t used = 0;
      long long x = 0;
      try {
        x = std::stoll(item, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      SLIM_CHECK(used == item.size() && used > 0 && x > 0, "--image-size '", size,
                 "': expected H,W (or one size for both), positive integers");
      hw.push_back(x);
    }
    SLIM_CHECK(hw.size() == 1 || hw.size() == 2, "--image-size '", size,
               "': expected H,W (or one size for both), positive integers");
    f.height = hw[0];
    f.width = hw.back();
  }
  if (!mean.empty()) f.mean = parse_values("--mean", mean, kImagenetMean, f.channels);
  if (!std.empty()) {
    f.std = parse_values("--std", std, kImagenetStd, f.channels);
    for (float s : f.std) SLIM_CHECK(s > 0, "--std '", std, "': every value must be positive");
  }
  SLIM_CHECK(order == "rgb" || f.channels == 3, "--channel-order ", order, ": the model reads ",
             f.channels, " channel(s), not 3");
  f.bgr = order == "bgr";
  return f;
}

bool allow_batches(Graph& g, const std::string& path) {
  RelaxBatchReport r = relax_batch(g);
  if (!r.applicable) return true;
  if (r.relaxed) {
    std::fprintf(stderr,
                 "note: %s: batch fixed at 1 made symbolic (%d Reshape target(s) rewritten; "
                 "checked at batch 2 against two batch-1 runs)\n",
                 path.c_str(), r.reshapes);
    return true;
  }
  std::fprintf(stderr,
               "note: %s: batch fixed at 1 and not safely relaxed (%s); running in "
               "batches of 1\n",
               path.c_str(), r.reason.c_str());
  return false;
}

std::shared_ptr<Dataset> open_data(const std::string& spec, Split split, const Graph& g,
                                   const ImageOptions& image, bool labels) {
  auto data = open_dataset(spec, split, image.for_model(g));
  if (!labels) return data;
  // A model whose single output is [N, K] with K fixed must have one output per class.
  if (g.outputs.size() == 1 && g.outputs[0].has_shape && g.outputs[0].shape.size() == 2 &&
      g.outputs[0].shape[1] > 0) {
    const int64_t k = g.outputs[0].shape[1];
    SLIM_CHECK(k == data->num_classes(), data->describe(), " has ", data->num_classes(),
               " classes but the model's output '", g.outputs[0].name, "' has ", k,
               " (its shape is ", g.outputs[0].shape_str(),
               "); `slim train --reset-head` gives it a new final layer for the data's classes");
  }
  return data;
}

}  // namespace slim
