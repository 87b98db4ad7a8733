#include "slim/data/idx_dataset.h"

#include <filesystem>
#include <fstream>
#include <iomanip>

#include "slim/ir/error.h"

namespace slim {

namespace {

namespace fs = std::filesystem;

constexpr int64_t kNumClasses = 10;

std::string shape_str(const std::vector<int64_t>& dims) {
  std::string s;
  for (size_t i = 0; i < dims.size(); ++i) s += (i ? "x" : "") + std::to_string(dims[i]);
  return s;
}

// Checks that DIR/name exists, pointing at the most likely mistake when it does not.
std::string idx_path(const std::string& dir, const std::string& name) {
  const std::string path = dir + "/" + name;
  if (fs::is_regular_file(path)) return path;
  SLIM_CHECK(!fs::exists(path + ".gz"), "missing ", path, " (found ", path,
             ".gz: IDX files must be uncompressed, run gunzip on it)");
  SLIM_FAIL("missing ", path, " (expects train-images-idx3-ubyte, train-labels-idx1-ubyte, ",
            "t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte; scripts/fetch_data.sh fetches ",
            "MNIST and Fashion-MNIST into data/)");
}

}  // namespace

at::Tensor idx_load(const std::string& path, int64_t ndim) {
  std::ifstream f(path, std::ios::binary);
  SLIM_CHECK(f, "cannot open IDX file ", path);
  std::error_code ec;
  const auto file_size = static_cast<int64_t>(fs::file_size(path, ec));
  SLIM_CHECK(!ec, "cannot read the size of IDX file ", path, ": ", ec.message());

  unsigned char magic[4] = {0, 0, 0, 0};
  f.read(reinterpret_cast<char*>(magic), 4);
  SLIM_CHECK(f.gcount() == 4, path, ": truncated IDX file (", file_size,
             " bytes, shorter than the 4-byte magic number)");
  SLIM_CHECK(!(magic[0] == 0x1f && magic[1] == 0x8b), path,
             ": is gzip-compressed; IDX files must be uncompressed (gunzip it)");
  const uint32_t magic_number = uint32_t{magic[0]} << 24 | uint32_t{magic[1]} << 16 |
                                uint32_t{magic[2]} << 8 | uint32_t{magic[3]};
  SLIM_CHECK(magic[0] == 0 && magic[1] == 0, path, ": not an IDX file (bad magic number 0x",
             std::hex, std::setfill('0'), std::setw(8), magic_number, std::dec,
             ", expected 0x0000080", ndim, ")");
  SLIM_CHECK(magic[2] == 0x08, path, ": IDX element type 0x", std::hex, int(magic[2]), std::dec,
             " is not supported (only unsigned bytes, 0x08)");
  SLIM_CHECK(magic[3] == ndim, path, ": IDX file has ", int(magic[3]), " dims, expected ", ndim,
             ndim == 3 ? " (an idx3 images file)" : " (an idx1 labels file)");

  std::vector<int64_t> dims(ndim);
  for (auto& d : dims) {
    unsigned char b[4];
    f.read(reinterpret_cast<char*>(b), 4);
    SLIM_CHECK(f.gcount() == 4, path, ": truncated IDX header (", file_size, " bytes)");
    d = int64_t(b[0]) << 24 | int64_t(b[1]) << 16 | int64_t(b[2]) << 8 | int64_t(b[3]);
  }
  const int64_t header = 4 + 4 * ndim;
  int64_t numel = 1;
  for (auto d : dims) numel *= d;
  SLIM_CHECK(file_size >= header + numel, path, ": truncated IDX file: ", file_size,
             " bytes, but its header's dims ", shape_str(dims), " need ", header + numel);
  SLIM_CHECK(file_size == header + numel, path, ": IDX file has ", file_size - header - numel,
             " bytes after the ", shape_str(dims), " data its header declares");

  at::Tensor t = at::empty(dims, at::kByte);
  f.read(static_cast<char*>(t.data_ptr()), numel);
  SLIM_CHECK(f.gcount() == numel, path, ": read error after ", header + f.gcount(), " bytes");
  return t;
}

IdxDataset::IdxDataset(const std::string& name, const std::string& dir, Split split)
    : name_(name), dir_(dir), split_(split) {
  SLIM_CHECK(fs::is_directory(dir), dir, ": no such directory");
  const std::string prefix = split == Split::kTrain ? "train" : "t10k";
  const std::string images_path = idx_path(dir, prefix + "-images-idx3-ubyte");
  const std::string labels_path = idx_path(dir, prefix + "-labels-idx1-ubyte");
  at::Tensor images = idx_load(images_path, 3);
  at::Tensor labels = idx_load(labels_path, 1);
  SLIM_CHECK(images.size(0) > 0, images_path, ": has no images");
  SLIM_CHECK(images.size(1) > 0 && images.size(2) > 0, images_path, ": images of size ",
             images.size(1), "x", images.size(2));
  SLIM_CHECK(labels.size(0) == images.size(0), labels_path, ": has ", labels.size(0),
             " labels but ", images_path, " has ", images.size(0), " images");
  const int64_t max_label = labels.max().item<int64_t>();
  if (max_label >= kNumClasses) {
    const int64_t at = labels.argmax().item<int64_t>();
    SLIM_FAIL(labels_path, ": label ", max_label, " at index ", at, " is not in [0, ", kNumClasses,
              ")");
  }
  images_ = images.unsqueeze(1);
  labels_ = labels.to(at::kLong);
}

at::Tensor IdxDataset::image(int64_t i) const { return gather({i}).first[0]; }

int64_t IdxDataset::label(int64_t i) const {
  SLIM_CHECK(i >= 0 && i < size(), describe(), ": index ", i, " out of range");
  return labels_.data_ptr<int64_t>()[i];
}

std::vector<int64_t> IdxDataset::image_shape() const {
  return {images_.size(1), images_.size(2), images_.size(3)};
}

std::pair<at::Tensor, at::Tensor> IdxDataset::gather(const std::vector<int64_t>& idx) const {
  for (auto i : idx) SLIM_CHECK(i >= 0 && i < size(), describe(), ": index ", i, " out of range");
  at::Tensor sel = at::tensor(idx, at::kLong);
  // Same arithmetic order as PaddleSlim's reader, so 0 -> -1 and 255 -> 1 exactly.
  at::Tensor x = images_.index_select(0, sel).to(at::kFloat).div_(255).mul_(2).sub_(1);
  return {x, labels_.index_select(0, sel)};
}

std::string IdxDataset::describe() const {
  return detail::str_cat(name_, ":", dir_, " (", split_ == Split::kTrain ? "train" : "test", ", ",
                         size(), " images ", shape_str(image_shape()), ", ", kNumClasses,
                         " classes)");
}

}  // namespace slim
