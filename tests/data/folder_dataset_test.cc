#include "slim/data/folder_dataset.h"

#include <gtest/gtest.h>
#include <stb/stb_image_write.h>

#include <filesystem>

#include "slim/ir/error.h"
#include "slim/onnx/onnx_io.h"
#include "test_util.h"

namespace slim {
namespace {

namespace fs = std::filesystem;

// A w x h image of one RGB colour.
std::vector<unsigned char> solid(int w, int h, unsigned char r, unsigned char g, unsigned char b) {
  std::vector<unsigned char> px;
  for (int i = 0; i < w * h; ++i) px.insert(px.end(), {r, g, b});
  return px;
}

void write_png(const std::string& path, int w, int h, int comp,
               const std::vector<unsigned char>& px) {
  fs::create_directories(fs::path(path).parent_path());
  ASSERT_TRUE(stbi_write_png(path.c_str(), w, h, comp, px.data(), w * comp)) << path;
}

void write_bmp(const std::string& path, int w, int h, const std::vector<unsigned char>& px) {
  fs::create_directories(fs::path(path).parent_path());
  ASSERT_TRUE(stbi_write_bmp(path.c_str(), w, h, 3, px.data())) << path;
}

FolderOptions no_resize(int64_t h, int64_t w, int64_t c) {
  FolderOptions o;
  o.height = h;
  o.width = w;
  o.channels = c;
  o.mean.assign(c, 0.f);
  o.std.assign(c, 1.f);
  return o;
}

template <typename F>
void expect_error(F&& f, const std::string& needle1, const std::string& needle2) {
  try {
    f();
    FAIL() << "no error for " << needle1 << " " << needle2;
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find(needle1), std::string::npos) << m;
    EXPECT_NE(m.find(needle2), std::string::npos) << m;
  }
}

TEST(FolderDataset, ReadsLabelsSizesAndNormalizedValues) {
  std::string dir = test::temp_dir("folder_flat");
  // Classes sort by name: a_cat = 0, b_dog = 1, whatever the creation order.
  write_png(dir + "/b_dog/x.png", 2, 2, 3, solid(2, 2, 255, 0, 51));
  write_png(dir + "/a_cat/2.PNG", 2, 2, 3, solid(2, 2, 0, 255, 102));
  write_bmp(dir + "/a_cat/1.bmp", 2, 2, solid(2, 2, 51, 102, 204));
  write_png(dir + "/a_cat/deeper/3.png", 2, 2, 3, solid(2, 2, 255, 255, 255));
  write_file_atomic(dir + "/a_cat/notes.txt", "not an image");
  write_png(dir + "/.hidden/y.png", 2, 2, 3, solid(2, 2, 1, 2, 3));

  FolderOptions o = no_resize(2, 2, 3);
  o.mean = {0.5f, 0.5f, 0.5f};
  o.std = {0.5f, 0.25f, 1.f};
  FolderDataset d(dir, Split::kTrain, o);
  EXPECT_EQ(d.size(), 4);
  EXPECT_EQ(d.num_classes(), 2);
  EXPECT_EQ(d.class_names(), (std::vector<std::string>{"a_cat", "b_dog"}));
  EXPECT_EQ(d.image_shape(), (std::vector<int64_t>{3, 2, 2}));
  EXPECT_EQ(d.describe(), "folder:" + dir + " (train, 4 images 3x2x2, 2 classes)");
  // Files sorted by path within a class.
  EXPECT_EQ(d.file(0), dir + "/a_cat/1.bmp");
  EXPECT_EQ(d.file(1), dir + "/a_cat/2.PNG");
  EXPECT_EQ(d.file(2), dir + "/a_cat/deeper/3.png");
  EXPECT_EQ(d.file(3), dir + "/b_dog/x.png");
  EXPECT_EQ(d.label(0), 0);
  EXPECT_EQ(d.label(2), 0);
  EXPECT_EQ(d.label(3), 1);

  auto [x, y] = d.gather({3, 0, 1});
  EXPECT_EQ(x.sizes(), (at::IntArrayRef{3, 3, 2, 2}));
  EXPECT_TRUE(at::equal(y, at::tensor({1, 0, 0}, at::kLong)));
  auto expect_pixels = [&](const at::Tensor& img, float r, float g, float b) {
    const float want[3] = {(r / 255 - 0.5f) / 0.5f, (g / 255 - 0.5f) / 0.25f, (b / 255 - 0.5f)};
    for (int c = 0; c < 3; ++c)
      EXPECT_TRUE(at::allclose(img[c], at::full({2, 2}, want[c]), 0, 1e-6)) << c << " " << img;
  };
  expect_pixels(x[0], 255, 0, 51);
  expect_pixels(x[1], 51, 102, 204);  // BMP
  expect_pixels(x[2], 0, 255, 102);
  EXPECT_TRUE(at::equal(d.image(3), x[0]));
}

TEST(FolderDataset, ResizesBilinearAndConvertsToGray) {
  std::string dir = test::temp_dir("folder_resize");
  // One row [0, 255] widened to 4: half-pixel centres sample at -0.25, 0.25, 0.75, 1.25 (edges
  // clamp), giving 0, 1/4, 3/4, 1.
  write_png(dir + "/a/row.png", 2, 1, 1, {0, 255});
  // A flat 8x8 stays flat when shrunk to 2x2; RGB grey becomes the same grey.
  write_png(dir + "/b/flat.png", 8, 8, 3, solid(8, 8, 102, 102, 102));
  FolderDataset d(dir, Split::kTest, no_resize(1, 4, 1));
  at::Tensor row = d.image(0);
  EXPECT_EQ(row.sizes(), (at::IntArrayRef{1, 1, 4}));
  EXPECT_TRUE(at::allclose(row.flatten(), at::tensor({0.f, 0.25f, 0.75f, 1.f}), 0, 1e-6)) << row;

  FolderDataset flat(dir, Split::kTrain, no_resize(2, 2, 1));
  at::Tensor f = flat.image(1);
  EXPECT_EQ(f.sizes(), (at::IntArrayRef{1, 2, 2}));
  EXPECT_TRUE(at::allclose(f, at::full({1, 2, 2}, 0.4f), 0, 1e-6)) << f;
  // The grey PNG read as RGB: three equal channels.
  FolderDataset rgb(dir, Split::kTrain, no_resize(3, 3, 3));
  EXPECT_TRUE(at::allclose(rgb.image(1), at::full({3, 3, 3}, 0.4f), 0, 1e-6));
  EXPECT_EQ(rgb.image(0).sizes(), (at::IntArrayRef{3, 3, 3}));
}

TEST(FolderDataset, SplitLayoutSharesTrainClasses) {
  std::string dir = test::temp_dir("folder_split");
  write_png(dir + "/train/ant/1.png", 2, 2, 3, solid(2, 2, 1, 1, 1));
  write_png(dir + "/train/bee/1.png", 2, 2, 3, solid(2, 2, 2, 2, 2));
  write_png(dir + "/train/bee/2.png", 2, 2, 3, solid(2, 2, 3, 3, 3));
  write_png(dir + "/test/bee/9.png", 2, 2, 3, solid(2, 2, 4, 4, 4));
  FolderDataset train(dir, Split::kTrain, no_resize(2, 2, 3));
  FolderDataset test(dir, Split::kTest, no_resize(2, 2, 3));
  EXPECT_EQ(train.size(), 3);
  EXPECT_EQ(test.size(), 1);
  EXPECT_EQ(test.num_classes(), 2);  // test/ lacks ant; bee keeps label 1
  EXPECT_EQ(test.label(0), 1);

  auto ds = open_dataset("folder:" + dir, Split::kTest, no_resize(2, 2, 3));
  EXPECT_EQ(ds->size(), 1);

  write_png(dir + "/test/cow/1.png", 2, 2, 3, solid(2, 2, 4, 4, 4));
  expect_error([&] { FolderDataset(dir, Split::kTest, no_resize(2, 2, 3)); }, dir + "/test/cow",
               "no counterpart in " + dir + "/train");
}

TEST(FolderDataset, BadFoldersFilesAndOptionsAreErrors) {
  std::string dir = test::temp_dir("folder_bad");
  const FolderOptions o = no_resize(2, 2, 3);
  expect_error([&] { open_dataset("folder:" + dir, Split::kTrain, o); }, "folder:" + dir,
               "no class sub-folders in " + dir);
  fs::create_directories(dir + "/empty");
  write_file_atomic(dir + "/empty/readme.txt", "x");
  expect_error([&] { FolderDataset(dir, Split::kTrain, o); }, dir + "/empty",
               "no .png/.jpg/.jpeg/.bmp images in class folder");

  std::string bad = test::temp_dir("folder_corrupt");
  write_png(bad + "/a/good.png", 2, 2, 3, solid(2, 2, 9, 9, 9));
  write_file_atomic(bad + "/a/broken.png", "\x89PNG not really");
  FolderDataset d(bad, Split::kTrain, o);  // files are only listed here
  ASSERT_EQ(d.size(), 2);
  expect_error([&] { d.gather({1, 0}); }, bad + "/a/broken.png", "cannot decode image");

  FolderOptions wrong = o;
  wrong.mean = {0.5f};
  expect_error([&] { FolderDataset(bad, Split::kTrain, wrong); }, "mean has 1",
               "one per channel (3)");
  wrong = o;
  wrong.channels = 4;
  expect_error([&] { FolderDataset(bad, Split::kTrain, wrong); }, "FolderOptions: channels 4",
               "1 (grayscale) or 3 (RGB)");
  wrong = o;
  wrong.std = {1.f, 0.f, 1.f};
  expect_error([&] { FolderDataset(bad, Split::kTrain, wrong); }, "std 0", "positive");
}

}  // namespace
}  // namespace slim
