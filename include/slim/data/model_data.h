#pragma once
/// Data for a given model: how folder images are sized, normalised and ordered for it, and the
/// check that the data's classes fit its output. Every command and pipeline stage that reads
/// images goes through here (the CLI's --image-size, --mean, --std, --channel-order; the
/// pipeline config's image keys).
#include <memory>
#include <string>

#include "slim/data/dataset.h"
#include "slim/ir/graph.h"

namespace slim {

struct ImageOptions {
  std::string size;           ///< "H,W" or "S" (default: the model's input size, else 224x224)
  std::string mean;           ///< "imagenet", one value, or one per channel (default: by channels)
  std::string std;            ///< like mean
  std::string order = "rgb";  ///< "rgb" or "bgr"
  /// The model's input size and channel count where it fixes them (else 224x224 RGB), with
  /// these options applied. Errors name the option (as its flag, e.g. --mean) and the value.
  FolderOptions for_model(const Graph& g) const;
};

/// open_dataset(spec, split, image.for_model(g)); with `labels` (training, evaluation), an error
/// if the model's [N, K] output does not have one column per class of the data. Calibration
/// reads images only: any class count.
std::shared_ptr<Dataset> open_data(const std::string& spec, Split split, const Graph& g,
                                   const ImageOptions& image, bool labels = true);

/// For work that feeds batches: a model whose inputs fix the batch at 1 gets a symbolic batch
/// (relax_batch, checked at batch 2), saying so in one line on stderr naming `path`. Returns
/// false, after saying so, when that cannot be done safely: the caller then runs in batches of
/// 1.
bool allow_batches(Graph& g, const std::string& path);

}  // namespace slim
