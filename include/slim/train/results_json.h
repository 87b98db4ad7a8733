#pragma once
/// Training and evaluation results as JSON, the same keys wherever Slim prints or stores them
/// (the CLI's --json output, a pipeline stage's metrics.json).
#include <nlohmann/json.hpp>
#include <vector>

#include "slim/train/trainer.h"

namespace slim {

/// {"top1", "top5", "loss", "samples", "seconds"}.
nlohmann::json eval_json(const EvalResult& r);
/// [{"epoch", "train_loss", "train_top1", "samples", "seconds"}, ...], one per epoch.
nlohmann::json epochs_json(const std::vector<EpochStats>& stats);

}  // namespace slim
