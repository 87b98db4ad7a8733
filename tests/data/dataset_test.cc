#include "slim/data/dataset.h"

#include <gtest/gtest.h>

#include <set>

#include "slim/ir/error.h"
#include "test_util.h"

namespace slim {
namespace {


using test::data_dir;

// Image i is a 1x1x1 tensor holding i, so batches reveal the loader's order. Uses the default
// Dataset::gather.
class CountingDataset : public Dataset {
 public:
  explicit CountingDataset(int64_t n) : n_(n) {}
  int64_t size() const override { return n_; }
  at::Tensor image(int64_t i) const override { return at::full({1, 1, 1}, float(i)); }
  int64_t label(int64_t i) const override { return i % 3; }
  int64_t num_classes() const override { return 3; }
  std::vector<int64_t> image_shape() const override { return {1, 1, 1}; }
  std::string describe() const override { return "counting"; }

 private:
  int64_t n_;
};

// Every sample index of one epoch, in order, and the batch sizes.
std::pair<std::vector<int64_t>, std::vector<int64_t>> epoch(DataLoader& loader, int64_t e) {
  std::vector<int64_t> order, sizes;
  loader.start_epoch(e);
  Batch b;
  while (loader.next(b)) {
    sizes.push_back(b.images.size(0));
    EXPECT_EQ(b.images.dim(), 4);
    EXPECT_EQ(b.labels.scalar_type(), at::kLong);
    for (int64_t k = 0; k < b.images.size(0); ++k) {
      order.push_back(static_cast<int64_t>(b.images[k].item<float>()));
      EXPECT_EQ(b.labels[k].item<int64_t>(), order.back() % 3);
    }
  }
  return {order, sizes};
}

std::shared_ptr<Dataset> counting(int64_t n) { return std::make_shared<CountingDataset>(n); }

TEST(DataLoader, ShuffleDependsOnlyOnSeedAndEpoch) {
  LoaderOptions o;
  o.batch_size = 4;
  o.seed = 7;
  DataLoader a(counting(50), o), b(counting(50), o);
  auto a3 = epoch(a, 3).first;
  epoch(b, 1);  // b's history must not matter
  EXPECT_EQ(epoch(b, 3).first, a3);
  EXPECT_EQ(epoch(a, 3).first, a3);  // repeatable on the same loader
  EXPECT_NE(epoch(a, 4).first, a3);
  o.seed = 8;
  DataLoader c(counting(50), o);
  EXPECT_NE(epoch(c, 3).first, a3);
  // A permutation of every index.
  std::set<int64_t> seen(a3.begin(), a3.end());
  EXPECT_EQ(a3.size(), 50u);
  EXPECT_EQ(seen.size(), 50u);
  EXPECT_EQ(*seen.begin(), 0);
  EXPECT_EQ(*seen.rbegin(), 49);
}

TEST(DataLoader, ShuffleOrderIsPinned) {
  // mt19937_64 and the spelled-out Fisher-Yates make this order the same on every platform;
  // changing it changes every seeded training run.
  LoaderOptions o;
  o.batch_size = 3;
  o.seed = 1;
  DataLoader l(counting(10), o);
  EXPECT_EQ(epoch(l, 0).first, (std::vector<int64_t>{2, 5, 6, 8, 7, 1, 9, 3, 4, 0}));
}

TEST(DatasetSplit, ValidationSplitIsDisjointSeededAndPinned) {
  auto [rest, val] = dataset_split_validation(counting(20), 5, 3);
  ASSERT_EQ(val->size(), 5);
  ASSERT_EQ(rest->size(), 15);
  std::set<int64_t> all;
  std::vector<int64_t> val_ids;
  for (int64_t i = 0; i < val->size(); ++i) {
    val_ids.push_back(static_cast<int64_t>(val->image(i).item<float>()));
    all.insert(val_ids.back());
    EXPECT_EQ(val->label(i), val_ids.back() % 3);
  }
  for (int64_t i = 0; i < rest->size(); ++i)
    all.insert(static_cast<int64_t>(rest->image(i).item<float>()));
  EXPECT_EQ(all.size(), 20u);  // disjoint and complete
  // The same on every platform (portable draws), in the original order.
  EXPECT_EQ(val_ids, (std::vector<int64_t>{1, 4, 11, 15, 16}));
  auto again = dataset_split_validation(counting(20), 5, 3).second;
  EXPECT_TRUE(at::equal(again->gather({0, 1, 2, 3, 4}).first, val->gather({0, 1, 2, 3, 4}).first));
  auto other = dataset_split_validation(counting(20), 5, 4).second;
  EXPECT_FALSE(at::equal(other->gather({0, 1, 2, 3, 4}).first, val->gather({0, 1, 2, 3, 4}).first));
  EXPECT_NE(val->describe().find("validation (5 of counting)"), std::string::npos);
  EXPECT_THROW(dataset_split_validation(counting(20), 20, 3), Error);
  EXPECT_THROW(dataset_split_validation(counting(20), 0, 3), Error);
}

TEST(DataLoader, NoShuffleKeepsDatasetOrder) {
  LoaderOptions o;
  o.batch_size = 4;
  o.shuffle = false;
  DataLoader l(counting(10), o);
  auto [order, sizes] = epoch(l, 5);
  EXPECT_EQ(order, (std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}));
  EXPECT_EQ(sizes, (std::vector<int64_t>{4, 4, 2}));
}

TEST(DataLoader, DropLastAndMaxSamplesCounts) {
  LoaderOptions o;
  o.batch_size = 4;
  DataLoader keep(counting(10), o);
  EXPECT_EQ(keep.num_samples(), 10);
  EXPECT_EQ(keep.num_batches(), 3);
  EXPECT_EQ(epoch(keep, 0).second, (std::vector<int64_t>{4, 4, 2}));

  o.drop_last = true;
  DataLoader drop(counting(10), o);
  EXPECT_EQ(drop.num_batches(), 2);
  EXPECT_EQ(epoch(drop, 0).second, (std::vector<int64_t>{4, 4}));

  // max_samples takes the first N samples, then shuffles them.
  o.drop_last = false;
  o.max_samples = 7;
  DataLoader few(counting(10), o);
  EXPECT_EQ(few.num_samples(), 7);
  EXPECT_EQ(few.num_batches(), 2);
  auto order = epoch(few, 2).first;
  EXPECT_EQ(std::set<int64_t>(order.begin(), order.end()),
            (std::set<int64_t>{0, 1, 2, 3, 4, 5, 6}));

  o.max_samples = 100;  // more than there are
  EXPECT_EQ(DataLoader(counting(10), o).num_samples(), 10);
  o.max_samples = 8;
  o.drop_last = true;
  DataLoader exact(counting(10), o);
  EXPECT_EQ(epoch(exact, 0).second, (std::vector<int64_t>{4, 4}));
}

TEST(DataLoader, BadOptionsAreErrors) {
  LoaderOptions o;
  o.batch_size = 0;
  EXPECT_THROW(DataLoader(counting(3), o), Error);
  o.batch_size = 1;
  o.max_samples = -1;
  EXPECT_THROW(DataLoader(counting(3), o), Error);
  EXPECT_THROW(DataLoader(nullptr, LoaderOptions{}), Error);
}

TEST(DataLoader, MnistEpochCoversEverySample) {
  auto train = open_dataset("mnist:" + data_dir("mnist"), Split::kTrain);
  LoaderOptions o;
  o.batch_size = 128;
  o.seed = 3;
  DataLoader l(train, o);
  EXPECT_EQ(l.num_batches(), 469);
  at::Tensor counts = at::zeros({10}, at::kLong);
  Batch b;
  int64_t batches = 0;
  l.start_epoch(0);
  while (l.next(b)) {
    ++batches;
    ASSERT_EQ(b.images.sizes(), (at::IntArrayRef{b.labels.size(0), 1, 28, 28}));
    counts += at::bincount(b.labels, {}, 10);
  }
  EXPECT_EQ(batches, 469);
  EXPECT_EQ(b.labels.size(0), 60000 - 468 * 128);
  EXPECT_TRUE(at::equal(
      counts, at::tensor({5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949}, at::kLong)));

  // Same seed and epoch, same batches; the next epoch differs.
  DataLoader l2(train, o);
  Batch first, again;
  l.start_epoch(4);
  l2.start_epoch(4);
  ASSERT_TRUE(l.next(first));
  ASSERT_TRUE(l2.next(again));
  EXPECT_TRUE(at::equal(first.images, again.images));
  EXPECT_TRUE(at::equal(first.labels, again.labels));
  l2.start_epoch(5);
  ASSERT_TRUE(l2.next(again));
  EXPECT_FALSE(at::equal(first.images, again.images));

  o.max_samples = 1000;
  o.drop_last = true;
  DataLoader some(train, o);
  EXPECT_EQ(some.num_samples(), 1000);
  EXPECT_EQ(some.num_batches(), 7);
}

TEST(Dataset, DefaultGatherStacksImagesAndLabels) {
  CountingDataset d(5);
  auto [x, y] = d.gather({4, 0, 4});
  EXPECT_EQ(x.sizes(), (at::IntArrayRef{3, 1, 1, 1}));
  EXPECT_TRUE(at::equal(x.flatten(), at::tensor({4.f, 0.f, 4.f})));
  EXPECT_TRUE(at::equal(y, at::tensor({1, 0, 1}, at::kLong)));
  EXPECT_EQ(d.gather({}).first.sizes(), (at::IntArrayRef{0, 1, 1, 1}));
  EXPECT_THROW(d.gather({5}), Error);
}

TEST(Dataset, OpenDatasetParsesSpecs) {
  auto test = open_dataset("fashion:" + data_dir("fashion"), Split::kTest);
  EXPECT_EQ(test->size(), 10000);
  EXPECT_EQ(test->describe(),
            "fashion:" + data_dir("fashion") + " (test, 10000 images 1x28x28, 10 classes)");

  auto expect_error = [](const std::string& spec, const std::string& needle) {
    try {
      open_dataset(spec, Split::kTrain);
      FAIL() << spec;
    } catch (const Error& e) {
      std::string m = e.what();
      EXPECT_NE(m.find(needle), std::string::npos) << m;
      EXPECT_NE(m.find(spec), std::string::npos) << m;
    }
  };
  expect_error("mnist", "must be KIND:DIR");
  expect_error("mnist:", "must be KIND:DIR");
  expect_error("cifar:/tmp", "unknown kind 'cifar'");
  expect_error("mnist:/no/such/dir", "no such directory");
  expect_error("folder:/no/such/dir", "no such directory");
  // A directory without IDX files names the missing file.
  std::string empty = test::temp_dir("open_dataset_empty");
  expect_error("mnist:" + empty, empty + "/train-images-idx3-ubyte");
}

}  // namespace
}  // namespace slim
