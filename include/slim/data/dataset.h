#pragma once
/// Datasets for training and evaluation: MNIST / Fashion-MNIST in IDX files, and image folders
/// (one sub-folder per class). A DataLoader shuffles with a seed and yields batches.
#include <ATen/ATen.h>

#include <memory>
#include <string>
#include <vector>

namespace slim {

enum class Split { kTrain, kTest };

/// A labelled image dataset held in memory (MNIST-sized) or read on demand (folders).
class Dataset {
 public:
  virtual ~Dataset() = default;
  virtual int64_t size() const = 0;
  /// Image i as float32 [C, H, W], normalized; label in [0, num_classes).
  virtual at::Tensor image(int64_t i) const = 0;
  virtual int64_t label(int64_t i) const = 0;
  virtual int64_t num_classes() const = 0;
  /// [C, H, W] of every image.
  virtual std::vector<int64_t> image_shape() const = 0;
  /// Stacks images idx into [B, C, H, W] float32 and labels into [B] int64. Subclasses holding
  /// everything in one tensor override it with a single index_select.
  virtual std::pair<at::Tensor, at::Tensor> gather(const std::vector<int64_t>& idx) const;
  /// "mnist:DIR (train, 60000 images 1x28x28, 10 classes)"-style description.
  virtual std::string describe() const = 0;
};

/// Options for image folders (users' own images).
struct FolderOptions {
  int64_t height = 224, width = 224;                ///< resized to this (bilinear)
  int64_t channels = 3;                             ///< 1 = grayscale, 3 = RGB
  std::vector<float> mean{0.485f, 0.456f, 0.406f};  ///< per channel, on [0,1] pixels
  std::vector<float> std{0.229f, 0.224f, 0.225f};
  bool bgr = false;  ///< 3 channels in B, G, R order (mean and std in that order too)
};

/// Opens a dataset from a spec: "mnist:DIR", "fashion:DIR" (IDX files as MNIST ships them:
/// DIR/train-images-idx3-ubyte etc.) or "folder:DIR" (`DIR/train/<class>/*.png|jpg` and
/// `DIR/test/<class>/...`, or `DIR/<class>/...` for both splits). MNIST-style pixels are scaled as
/// PaddleSlim's reader does: x / 255 * 2 - 1. Errors name the spec, file and problem.
std::shared_ptr<Dataset> open_dataset(const std::string& spec, Split split,
                                      const FolderOptions& folder = {});

/// The samples `idx` of `data`, in that order, described as `name` (e.g. "validation").
std::shared_ptr<Dataset> dataset_subset(std::shared_ptr<Dataset> data, std::vector<int64_t> idx,
                                        const std::string& name);

/// Carves a validation split of `val_samples` samples, drawn without replacement by `seed`
/// (the same on any platform), out of `data`: {the rest, the validation split}, each in the
/// original order. Errors when val_samples is not in [1, size).
std::pair<std::shared_ptr<Dataset>, std::shared_ptr<Dataset>> dataset_split_validation(
    std::shared_ptr<Dataset> data, int64_t val_samples, uint64_t seed);

struct LoaderOptions {
  int64_t batch_size = 128;
  bool shuffle = true;
  uint64_t seed = 0;  ///< shuffling order depends only on (seed, epoch), on any platform
  bool drop_last = false;
  int64_t max_samples = 0;  ///< > 0: use only the first N samples (before shuffling)
  /// Data parallel: each global batch (the same batches as one process) is split into `parts`
  /// contiguous slices (the first global % parts one sample larger) and this loader reads
  /// slice `part` only. Batch::global_size is the whole batch's size.
  int part = 0, parts = 1;
};

struct Batch {
  at::Tensor images;        ///< [B, C, H, W] float32
  at::Tensor labels;        ///< [B] int64
  int64_t global_size = 0;  ///< samples in the global batch (LoaderOptions::parts > 1)
};

/// Iterates a dataset in batches. Call start_epoch(e) before each epoch (the constructor starts
/// epoch 0). Shuffling is a Fisher-Yates pass driven by std::mt19937_64 seeded with
/// seed * 1000003 + epoch.
class DataLoader {
 public:
  /// Errors (slim::Error) on a null dataset, batch_size <= 0 or max_samples < 0.
  DataLoader(std::shared_ptr<Dataset> data, LoaderOptions opts);
  /// Rewinds and, with shuffle, reorders the samples for this epoch.
  void start_epoch(int64_t epoch);
  /// Fills the next batch; false at the end of the epoch. The last batch is smaller unless
  /// drop_last, which skips it.
  bool next(Batch& batch);
  /// Batches per epoch: ceil(num_samples / batch_size), or floor with drop_last.
  int64_t num_batches() const;
  /// Samples an epoch draws from: min(max_samples, dataset size), or the size when
  /// max_samples is 0 (drop_last may leave up to batch_size - 1 of them out).
  int64_t num_samples() const;
  const Dataset& dataset() const { return *data_; }

 private:
  std::shared_ptr<Dataset> data_;
  LoaderOptions opts_;
  std::vector<int64_t> order_;
  int64_t pos_ = 0;
};

}  // namespace slim
