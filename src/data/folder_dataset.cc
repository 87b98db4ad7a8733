#include "slim/data/folder_dataset.h"

#include <ATen/Parallel.h>
#include <stb/stb_image.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <memory>

#include "slim/ir/error.h"

namespace slim {

namespace {

namespace fs = std::filesystem;

bool is_image_file(const fs::path& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return ext == ".png" || ext == ".jpg" || ext == ".jpeg" || ext == ".bmp";
}

std::vector<std::string> sub_folders(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) {
    std::string name = e.path().filename().string();
    // Hidden folders (.ipynb_checkpoints, .git) are tool droppings, not classes.
    if (e.is_directory() && name[0] != '.') names.push_back(name);
  }
  std::sort(names.begin(), names.end());
  return names;
}

std::vector<std::string> image_files(const std::string& dir) {
  std::vector<std::string> files;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file() && is_image_file(e.path())) files.push_back(e.path().string());
  std::sort(files.begin(), files.end());
  return files;
}

// Decodes one file to float [C, H, W] in [0, 1] at its own size.
at::Tensor decode(const std::string& path, int64_t channels) {
  int w = 0, h = 0, n = 0;
  std::unique_ptr<unsigned char, void (*)(void*)> px(
      stbi_load(path.c_str(), &w, &h, &n, static_cast<int>(channels)), stbi_image_free);
  SLIM_CHECK(px != nullptr, path, ": cannot decode image (", stbi_failure_reason(), ")");
  at::Tensor hwc = at::from_blob(px.get(), {h, w, channels}, at::kByte);
  return hwc.permute({2, 0, 1}).to(at::kFloat).div_(255);
}

}  // namespace

FolderDataset::FolderDataset(const std::string& dir, Split split, const FolderOptions& options)
    : dir_(dir), split_(split), opts_(options) {
  SLIM_CHECK(opts_.height > 0 && opts_.width > 0, "FolderOptions: image size ", opts_.height, "x",
             opts_.width, " must be positive");
  SLIM_CHECK(opts_.channels == 1 || opts_.channels == 3, "FolderOptions: channels ", opts_.channels,
             " must be 1 (grayscale) or 3 (RGB)");
  SLIM_CHECK(static_cast<int64_t>(opts_.mean.size()) == opts_.channels &&
                 static_cast<int64_t>(opts_.std.size()) == opts_.channels,
             "FolderOptions: mean has ", opts_.mean.size(), " and std ", opts_.std.size(),
             " values, expected one per channel (", opts_.channels, ")");
  for (float s : opts_.std) SLIM_CHECK(s > 0, "FolderOptions: std ", s, " must be positive");
  SLIM_CHECK(fs::is_directory(dir), dir, ": no such directory");

  const bool split_layout = fs::is_directory(dir + "/train") || fs::is_directory(dir + "/test");
  const std::string train_dir = split_layout ? dir + "/train" : dir;
  const std::string split_dir =
      split_layout ? dir + (split == Split::kTrain ? "/train" : "/test") : dir;
  SLIM_CHECK(fs::is_directory(train_dir), dir, ": has test/ but no train/ (",
             "expects DIR/train/<class>/ and DIR/test/<class>/, or DIR/<class>/)");
  SLIM_CHECK(fs::is_directory(split_dir), dir, ": has train/ but no test/ (",
             "expects DIR/train/<class>/ and DIR/test/<class>/, or DIR/<class>/)");

  classes_ = sub_folders(train_dir);
  SLIM_CHECK(!classes_.empty(), "no class sub-folders in ", train_dir,
             " (expects one sub-folder of images per class)");
  for (const auto& c : sub_folders(split_dir)) {
    SLIM_CHECK(std::binary_search(classes_.begin(), classes_.end(), c), "class folder ", split_dir,
               "/", c, " has no counterpart in ", train_dir);
  }
  for (size_t label = 0; label < classes_.size(); ++label) {
    const std::string class_dir = split_dir + "/" + classes_[label];
    if (!fs::is_directory(class_dir)) continue;  // a test split may lack a class
    std::vector<std::string> files = image_files(class_dir);
    SLIM_CHECK(!files.empty() || split_dir != train_dir,
               "no .png/.jpg/.jpeg/.bmp images in class folder ", class_dir);
    for (auto& f : files) {
      files_.push_back(std::move(f));
      labels_.push_back(static_cast<int64_t>(label));
    }
  }
  SLIM_CHECK(!files_.empty(), "no .png/.jpg/.jpeg/.bmp images in ", split_dir);
}

const std::string& FolderDataset::file(int64_t i) const {
  SLIM_CHECK(i >= 0 && i < size(), describe(), ": index ", i, " out of range");
  return files_[i];
}

at::Tensor FolderDataset::image(int64_t i) const {
  at::Tensor x = decode(file(i), opts_.channels);
  if (opts_.bgr && opts_.channels == 3) x = x.flip(0).contiguous();
  if (x.size(1) != opts_.height || x.size(2) != opts_.width) {
    // Antialiased bilinear, as torchvision's Resize (and PIL) shrink images; plain bilinear
    // with half-pixel centres when enlarging.
    x = at::_upsample_bilinear2d_aa(x.unsqueeze(0), {opts_.height, opts_.width},
                                    /*align_corners=*/false)
            .squeeze(0);
  }
  at::Tensor mean = at::tensor(opts_.mean).view({-1, 1, 1});
  at::Tensor std = at::tensor(opts_.std).view({-1, 1, 1});
  return x.sub_(mean).div_(std);
}

int64_t FolderDataset::label(int64_t i) const {
  SLIM_CHECK(i >= 0 && i < size(), describe(), ": index ", i, " out of range");
  return labels_[i];
}

std::vector<int64_t> FolderDataset::image_shape() const {
  return {opts_.channels, opts_.height, opts_.width};
}

std::pair<at::Tensor, at::Tensor> FolderDataset::gather(const std::vector<int64_t>& idx) const {
  const int64_t b = static_cast<int64_t>(idx.size());
  for (auto i : idx) SLIM_CHECK(i >= 0 && i < size(), describe(), ": index ", i, " out of range");
  at::Tensor images = at::empty({b, opts_.channels, opts_.height, opts_.width}, at::kFloat);
  at::Tensor labels = at::empty({b}, at::kLong);
  // Decoding dominates; images are independent. parallel_for rethrows a worker's Error.
  at::parallel_for(0, b, 1, [&](int64_t begin, int64_t end) {
    for (int64_t k = begin; k < end; ++k) {
      images[k].copy_(image(idx[k]));
      labels.data_ptr<int64_t>()[k] = labels_[idx[k]];
    }
  });
  return {images, labels};
}

std::string FolderDataset::describe() const {
  return detail::str_cat("folder:", dir_, " (", split_ == Split::kTrain ? "train" : "test", ", ",
                         size(), " images ", opts_.channels, "x", opts_.height, "x", opts_.width,
                         ", ", num_classes(), " classes)");
}

}  // namespace slim
