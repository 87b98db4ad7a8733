#pragma once
/// Image folders (users' own images), as torchvision's ImageFolder lays them out: one
/// sub-folder per class, classes sorted by name, label = index in that order.
#include <string>
#include <vector>

#include "slim/data/dataset.h"

namespace slim {

/// Images listed at construction, decoded on demand (JPEG, PNG, BMP via stb_image), resized
/// to options.height x options.width (bilinear, antialiased when shrinking, as torchvision's
/// Resize) and normalized per channel: (x / 255 - mean) / std.
///
/// Layout: `DIR/train/<class>/...` and `DIR/test/<class>/...` when DIR has a train/ or test/
/// sub-folder, else `DIR/<class>/...` serves both splits. Classes are always those of the
/// training folder (DIR/train or DIR), so labels mean the same in both splits; a test folder
/// may lack a class but may not add one. Hidden sub-folders (.name) are not classes. Within a
/// class, files with the extensions .png .jpg .jpeg .bmp (any case) are taken recursively,
/// sorted by path; other files are ignored.
class FolderDataset : public Dataset {
 public:
  FolderDataset(const std::string& dir, Split split, const FolderOptions& options);

  int64_t size() const override { return static_cast<int64_t>(files_.size()); }
  at::Tensor image(int64_t i) const override;
  int64_t label(int64_t i) const override;
  int64_t num_classes() const override { return static_cast<int64_t>(classes_.size()); }
  std::vector<int64_t> image_shape() const override;
  /// Decodes the batch's images in parallel (at::parallel_for).
  std::pair<at::Tensor, at::Tensor> gather(const std::vector<int64_t>& idx) const override;
  std::string describe() const override;

  /// Class names (sub-folder names) in label order.
  const std::vector<std::string>& class_names() const { return classes_; }
  /// Path of image i.
  const std::string& file(int64_t i) const;

 private:
  std::string dir_;
  Split split_;
  FolderOptions opts_;
  std::vector<std::string> classes_;
  std::vector<std::string> files_;
  std::vector<int64_t> labels_;
};

}  // namespace slim
