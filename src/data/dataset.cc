#include "slim/data/dataset.h"

#include <algorithm>
#include <numeric>
#include <random>

#include "slim/data/folder_dataset.h"
#include "slim/data/idx_dataset.h"
#include "slim/ir/error.h"

namespace slim {

std::pair<at::Tensor, at::Tensor> Dataset::gather(const std::vector<int64_t>& idx) const {
  std::vector<int64_t> shape = image_shape();
  shape.insert(shape.begin(), static_cast<int64_t>(idx.size()));
  at::Tensor images = at::empty(shape, at::kFloat);
  at::Tensor labels = at::empty({static_cast<int64_t>(idx.size())}, at::kLong);
  for (size_t k = 0; k < idx.size(); ++k) {
    SLIM_CHECK(idx[k] >= 0 && idx[k] < size(), describe(), ": index ", idx[k], " out of range");
    images[k].copy_(image(idx[k]));
    labels.data_ptr<int64_t>()[k] = label(idx[k]);
  }
  return {images, labels};
}

std::shared_ptr<Dataset> open_dataset(const std::string& spec, Split split,
                                      const FolderOptions& folder) {
  const size_t colon = spec.find(':');
  SLIM_CHECK(colon != std::string::npos && colon + 1 < spec.size(), "dataset spec '", spec,
             "' must be KIND:DIR with KIND one of mnist, fashion, folder");
  const std::string kind = spec.substr(0, colon);
  const std::string dir = spec.substr(colon + 1);
  try {
    if (kind == "mnist" || kind == "fashion") return std::make_shared<IdxDataset>(kind, dir, split);
    if (kind == "folder") return std::make_shared<FolderDataset>(dir, split, folder);
  } catch (const Error& e) {
    // The spec tells which command-line or config value led here.
    throw Error("dataset '" + spec + "': " + e.what());
  }
  SLIM_FAIL("dataset spec '", spec, "': unknown kind '", kind,
            "' (expected mnist, fashion or folder)");
}

DataLoader::DataLoader(std::shared_ptr<Dataset> data, LoaderOptions opts)
    : data_(std::move(data)), opts_(opts) {
  SLIM_CHECK(data_ != nullptr, "DataLoader: no dataset");
  SLIM_CHECK(opts_.batch_size > 0, "DataLoader over ", data_->describe(), ": batch_size ",
             opts_.batch_size, " must be positive");
  SLIM_CHECK(opts_.max_samples >= 0, "DataLoader over ", data_->describe(), ": max_samples ",
             opts_.max_samples, " must be >= 0 (0 = all)");
  SLIM_CHECK(opts_.parts >= 1 && opts_.part >= 0 && opts_.part < opts_.parts, "DataLoader over ",
             data_->describe(), ": part ", opts_.part, " of ", opts_.parts,
             " is not 0 <= part < parts");
  start_epoch(0);
}

int64_t DataLoader::num_samples() const {
  const int64_t n = data_->size();
  return opts_.max_samples > 0 ? std::min(opts_.max_samples, n) : n;
}

int64_t DataLoader::num_batches() const {
  const int64_t n = num_samples();
  return opts_.drop_last ? n / opts_.batch_size : (n + opts_.batch_size - 1) / opts_.batch_size;
}

void DataLoader::start_epoch(int64_t epoch) {
  order_.resize(num_samples());
  std::iota(order_.begin(), order_.end(), int64_t{0});
  pos_ = 0;
  if (!opts_.shuffle) return;
  // mt19937_64's output is fixed by the standard, but std::shuffle's use of it is not (libstdc++
  // and libc++ differ), so Fisher-Yates is spelled out: the order depends only on (seed, epoch).
  // The modulo's bias is below n / 2^64.
  std::mt19937_64 rng(opts_.seed * 1000003ULL + static_cast<uint64_t>(epoch));
  for (size_t i = order_.size(); i > 1; --i) std::swap(order_[i - 1], order_[rng() % i]);
}

bool DataLoader::next(Batch& batch) {
  const int64_t n = static_cast<int64_t>(order_.size());
  const int64_t b = std::min(opts_.batch_size, n - pos_);
  if (b <= 0 || (opts_.drop_last && b < opts_.batch_size)) return false;
  // The slice rule is dist::split_range's (the data library does not depend on dist).
  const int64_t base = b / opts_.parts, extra = b % opts_.parts;
  const int64_t lo = opts_.part * base + std::min<int64_t>(opts_.part, extra);
  const int64_t hi = lo + base + (opts_.part < extra ? 1 : 0);
  std::vector<int64_t> idx(order_.begin() + pos_ + lo, order_.begin() + pos_ + hi);
  pos_ += b;
  batch.global_size = b;
  std::tie(batch.images, batch.labels) = data_->gather(idx);
  return true;
}

namespace {

class SubsetDataset : public Dataset {
 public:
  SubsetDataset(std::shared_ptr<Dataset> data, std::vector<int64_t> idx, std::string name)
      : data_(std::move(data)), idx_(std::move(idx)), name_(std::move(name)) {}
  int64_t size() const override { return static_cast<int64_t>(idx_.size()); }
  at::Tensor image(int64_t i) const override { return data_->image(idx_.at(i)); }
  int64_t label(int64_t i) const override { return data_->label(idx_.at(i)); }
  int64_t num_classes() const override { return data_->num_classes(); }
  std::vector<int64_t> image_shape() const override { return data_->image_shape(); }
  std::pair<at::Tensor, at::Tensor> gather(const std::vector<int64_t>& idx) const override {
    std::vector<int64_t> mapped(idx.size());
    for (size_t k = 0; k < idx.size(); ++k) mapped[k] = idx_.at(idx[k]);
    return data_->gather(mapped);
  }
  std::string describe() const override {
    return name_ + " (" + std::to_string(idx_.size()) + " of " + data_->describe() + ")";
  }

 private:
  std::shared_ptr<Dataset> data_;
  std::vector<int64_t> idx_;
  std::string name_;
};

}  // namespace

std::shared_ptr<Dataset> dataset_subset(std::shared_ptr<Dataset> data, std::vector<int64_t> idx,
                                        const std::string& name) {
  SLIM_CHECK(data != nullptr, "subset of no dataset");
  for (auto i : idx)
    SLIM_CHECK(i >= 0 && i < data->size(), data->describe(), ": subset index ", i, " out of range");
  return std::make_shared<SubsetDataset>(std::move(data), std::move(idx), name);
}

std::pair<std::shared_ptr<Dataset>, std::shared_ptr<Dataset>> dataset_split_validation(
    std::shared_ptr<Dataset> data, int64_t val_samples, uint64_t seed) {
  SLIM_CHECK(data != nullptr, "validation split of no dataset");
  const int64_t n = data->size();
  SLIM_CHECK(val_samples >= 1 && val_samples < n, data->describe(), ": a validation split of ",
             val_samples, " samples needs 1 to ", n - 1);
  // A portable partial Fisher-Yates (as DataLoader's shuffle): the first val_samples of the
  // permutation are the validation samples.
  std::vector<int64_t> perm(n);
  std::iota(perm.begin(), perm.end(), int64_t{0});
  std::mt19937_64 rng(seed * 1000003ULL + 7919ULL);
  for (int64_t i = 0; i < val_samples; ++i)
    std::swap(perm[i], perm[i + static_cast<int64_t>(rng() % static_cast<uint64_t>(n - i))]);
  std::vector<int64_t> val(perm.begin(), perm.begin() + val_samples);
  std::vector<int64_t> rest(perm.begin() + val_samples, perm.end());
  std::sort(val.begin(), val.end());
  std::sort(rest.begin(), rest.end());
  return {dataset_subset(data, std::move(rest), "train minus validation"),
          dataset_subset(data, std::move(val), "validation")};
}

}  // namespace slim
