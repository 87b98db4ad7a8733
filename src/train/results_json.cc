#include "slim/train/results_json.h"

namespace slim {

nlohmann::json eval_json(const EvalResult& r) {
  return {{"top1", r.top1},
          {"top5", r.top5},
          {"loss", r.loss},
          {"samples", r.samples},
          {"seconds", r.seconds}};
}

nlohmann::json epochs_json(const std::vector<EpochStats>& stats) {
  nlohmann::json a = nlohmann::json::array();
  for (const auto& s : stats)
    a.push_back({{"epoch", s.epoch},
                 {"train_loss", s.train_loss},
                 {"train_top1", s.train_top1},
                 {"samples", s.samples},
                 {"seconds", s.seconds}});
  return a;
}

}  // namespace slim
