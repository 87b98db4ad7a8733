#include "slim/data/idx_dataset.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "slim/ir/error.h"
#include "slim/onnx/onnx_io.h"
#include "test_util.h"

namespace slim {
namespace {

namespace fs = std::filesystem;

using test::data_dir;

std::vector<int64_t> label_counts(const at::Tensor& labels) {
  at::Tensor c = at::bincount(labels, {}, 10);
  return std::vector<int64_t>(c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel());
}

// Min and max over the whole split, in batches (the split as float is 188 MB).
std::pair<float, float> pixel_range(const Dataset& d) {
  float lo = 1e9f, hi = -1e9f;
  for (int64_t begin = 0; begin < d.size(); begin += 10000) {
    std::vector<int64_t> idx;
    for (int64_t i = begin; i < std::min(d.size(), begin + 10000); ++i) idx.push_back(i);
    at::Tensor x = d.gather(idx).first;
    lo = std::min(lo, x.min().item<float>());
    hi = std::max(hi, x.max().item<float>());
  }
  return {lo, hi};
}

at::Tensor all_labels(const Dataset& d) {
  at::Tensor labels = at::empty({d.size()}, at::kLong);
  for (int64_t i = 0; i < d.size(); ++i) labels.data_ptr<int64_t>()[i] = d.label(i);
  return labels;
}

TEST(IdxDataset, MnistHasLeCunsSplitAndLabels) {
  const std::string dir = data_dir("mnist");
  IdxDataset train("mnist", dir, Split::kTrain), test("mnist", dir, Split::kTest);
  EXPECT_EQ(train.size(), 60000);
  EXPECT_EQ(test.size(), 10000);
  EXPECT_EQ(train.image_shape(), (std::vector<int64_t>{1, 28, 28}));
  EXPECT_EQ(train.num_classes(), 10);
  EXPECT_EQ(train.describe(), "mnist:" + dir + " (train, 60000 images 1x28x28, 10 classes)");
  EXPECT_EQ(label_counts(all_labels(train)),
            (std::vector<int64_t>{5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949}));
  EXPECT_EQ(label_counts(all_labels(test)),
            (std::vector<int64_t>{980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009}));
  // The first labels of each file, as LeCun's files hold them.
  EXPECT_EQ(train.label(0), 5);
  EXPECT_EQ(train.label(1), 0);
  EXPECT_EQ(test.label(0), 7);
  EXPECT_EQ(test.label(1), 2);
}

TEST(IdxDataset, MnistPixelsAreScaledToMinusOneOne) {
  const std::string dir = data_dir("mnist");
  IdxDataset train("mnist", dir, Split::kTrain);
  auto [lo, hi] = pixel_range(train);
  EXPECT_EQ(lo, -1.0f);
  EXPECT_EQ(hi, 1.0f);
  // Image 1 against the raw bytes of the file: x / 255 * 2 - 1.
  std::string bytes = read_file(dir + "/train-images-idx3-ubyte");
  at::Tensor raw = at::from_blob(bytes.data() + 16 + 784, {1, 28, 28}, at::kByte);
  at::Tensor want = raw.to(at::kFloat) / 255 * 2 - 1;
  at::Tensor got = train.image(1);
  EXPECT_EQ(got.sizes(), want.sizes());
  EXPECT_TRUE(at::equal(got, want));
  EXPECT_TRUE(at::equal(train.gather({1}).first[0], got));
}

TEST(IdxDataset, FashionHasTheFixedSplit) {
  const std::string dir = data_dir("fashion");
  IdxDataset train("fashion", dir, Split::kTrain), test("fashion", dir, Split::kTest);
  EXPECT_EQ(train.size(), 60000);
  EXPECT_EQ(test.size(), 10000);
  EXPECT_EQ(test.image_shape(), (std::vector<int64_t>{1, 28, 28}));
  EXPECT_EQ(label_counts(all_labels(train)), std::vector<int64_t>(10, 6000));
  EXPECT_EQ(label_counts(all_labels(test)), std::vector<int64_t>(10, 1000));
  // scripts/convert_fashion.py interleaves classes round-robin.
  at::Tensor labels = all_labels(test);
  EXPECT_TRUE(at::equal(labels, at::arange(10000, at::kLong).remainder(10)));
  auto [lo, hi] = pixel_range(test);
  EXPECT_EQ(lo, -1.0f);
  EXPECT_EQ(hi, 1.0f);
}

TEST(IdxDataset, GatherIsOneFastIndexSelect) {
  IdxDataset train("mnist", data_dir("mnist"), Split::kTrain);
  std::vector<int64_t> idx;
  for (int64_t i = 0; i < 60000; i += 7) idx.push_back(i);
  auto [x, y] = train.gather(idx);
  EXPECT_EQ(x.sizes(), (at::IntArrayRef{static_cast<int64_t>(idx.size()), 1, 28, 28}));
  EXPECT_EQ(x.scalar_type(), at::kFloat);
  EXPECT_EQ(y.scalar_type(), at::kLong);
  EXPECT_EQ(y[3].item<int64_t>(), train.label(21));
  EXPECT_TRUE(at::equal(x[3], train.image(21)));
  EXPECT_THROW(train.gather({0, 60000}), Error);
  EXPECT_THROW(train.label(-1), Error);
}

// Small IDX files written byte by byte.
std::string be32(uint32_t v) {
  return {char(v >> 24), char(v >> 16 & 0xff), char(v >> 8 & 0xff), char(v & 0xff)};
}
std::string idx_images(int n, int h, int w) {
  std::string s = std::string("\0\0\x08\x03", 4) + be32(n) + be32(h) + be32(w);
  for (int i = 0; i < n * h * w; ++i) s += char(i * 37 % 256);
  return s;
}
std::string idx_labels(const std::vector<int>& labels) {
  std::string s = std::string("\0\0\x08\x01", 4) + be32(labels.size());
  for (int l : labels) s += char(l);
  return s;
}

void write_split(const std::string& dir, const std::string& images, const std::string& labels) {
  write_file_atomic(dir + "/train-images-idx3-ubyte", images);
  write_file_atomic(dir + "/train-labels-idx1-ubyte", labels);
}

void expect_error(const std::string& dir, const std::string& needle1, const std::string& needle2) {
  try {
    IdxDataset d("mnist", dir, Split::kTrain);
    FAIL() << "no error for " << needle1 << " " << needle2;
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find(needle1), std::string::npos) << m;
    EXPECT_NE(m.find(needle2), std::string::npos) << m;
  }
}

TEST(IdxDataset, ReadsSmallFilesExactly) {
  std::string dir = test::temp_dir("idx_small");
  write_split(dir, idx_images(3, 2, 4), idx_labels({2, 0, 9}));
  IdxDataset d("mnist", dir, Split::kTrain);
  EXPECT_EQ(d.size(), 3);
  EXPECT_EQ(d.image_shape(), (std::vector<int64_t>{1, 2, 4}));
  EXPECT_EQ(d.label(2), 9);
  at::Tensor raw = idx_load(dir + "/train-images-idx3-ubyte", 3);
  EXPECT_EQ(raw.sizes(), (at::IntArrayRef{3, 2, 4}));
  EXPECT_EQ(raw[1][0][1].item<int>(), 9 * 37 % 256);
  EXPECT_TRUE(at::equal(d.image(1), raw[1].unsqueeze(0).to(at::kFloat) / 255 * 2 - 1));
}

TEST(IdxDataset, CorruptFilesAreErrorsNamingFileAndProblem) {
  std::string dir = test::temp_dir("idx_bad");
  const std::string images = dir + "/train-images-idx3-ubyte";
  const std::string labels = dir + "/train-labels-idx1-ubyte";
  const std::string good_images = idx_images(3, 2, 2), good_labels = idx_labels({1, 2, 3});

  expect_error(dir, images, "missing");
  write_split(dir, "\x12\x34\x56\x78" + good_images.substr(4), good_labels);
  expect_error(dir, images, "bad magic number 0x12345678");
  write_split(dir, std::string("\0\0\x08\x01", 4) + good_images.substr(4), good_labels);
  expect_error(dir, images, "has 1 dims, expected 3");
  write_split(dir, std::string("\0\0\x0d\x03", 4) + good_images.substr(4), good_labels);
  expect_error(dir, images, "element type 0xd");
  write_split(dir, good_images.substr(0, good_images.size() - 1), good_labels);
  expect_error(dir, images, "truncated IDX file: 27 bytes, but its header's dims 3x2x2 need 28");
  write_split(dir, good_images.substr(0, 10), good_labels);
  expect_error(dir, images, "truncated IDX header");
  write_split(dir, "", good_labels);
  expect_error(dir, images, "truncated IDX file (0 bytes");
  write_split(dir, good_images + "xy", good_labels);
  expect_error(dir, images, "2 bytes after the 3x2x2 data");
  write_split(dir, std::string("\x1f\x8b\x08\x03", 4) + good_images.substr(4), good_labels);
  expect_error(dir, images, "gzip-compressed");
  write_split(dir, good_images, idx_labels({1, 2}));
  expect_error(dir, labels, "has 2 labels but");
  write_split(dir, good_images, idx_labels({1, 10, 3}));
  expect_error(dir, labels, "label 10 at index 1 is not in [0, 10)");

  fs::remove(labels);
  write_file_atomic(labels + ".gz", "\x1f\x8b");
  expect_error(dir, labels, "must be uncompressed");
  expect_error(dir + "/nope", dir + "/nope", "no such directory");
}

}  // namespace
}  // namespace slim
