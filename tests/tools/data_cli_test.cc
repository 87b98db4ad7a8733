// The data options every command shares (tools/data_flags.cc): folder images follow the model's
// input size and channels, --mean/--std/--channel-order are applied, and bad values or a class
// count the model cannot hold are clear errors. The model reads its input's per-channel means
// (GlobalAveragePool -> Flatten), so `slim eval`'s loss on one-colour images is a closed form.
#include <gtest/gtest.h>
#include <stb/stb_image_write.h>

#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "slim/onnx/onnx_io.h"
#include "test_util.h"

namespace slim {
namespace {

namespace fs = std::filesystem;

// Class a is red, b green, c blue, in both splits; 64x48 pixels.
const std::vector<std::array<unsigned char, 3>> kColours = {{255, 0, 0}, {0, 255, 0}, {0, 0, 255}};

class DataCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(test::temp_dir("data_cli"));
    const char* names[] = {"a", "b", "c"};
    for (const char* split : {"train", "test"}) {
      for (size_t k = 0; k < kColours.size(); ++k) {
        const std::string d = *dir_ + "/images/" + split + "/" + names[k];
        fs::create_directories(d);
        std::vector<unsigned char> px;
        for (int i = 0; i < 64 * 48; ++i)
          px.insert(px.end(), kColours[k].begin(), kColours[k].end());
        ASSERT_TRUE(stbi_write_png((d + "/1.png").c_str(), 64, 48, 3, px.data(), 64 * 3));
      }
    }
    save_means_model("rgb.onnx", 3, 3);
    save_means_model("gray.onnx", 1, 3);
    save_means_model("four_classes.onnx", 3, 4);
    save_means_model("rgb_batch1.onnx", 3, 3, 1);
    {
      // An ImageNet-style head: 1000 classes from a Gemm.
      test::GraphBuilder b;
      std::string x = b.input("x", {kDynamicDim, 3, 32, 32});
      std::string y = b.node("Flatten", {b.node("GlobalAveragePool", {x})});
      std::string w = b.init("fc_w", at::randn({1000, 3}));
      b.output(b.node("Gemm", {y, w, b.init("fc_b", at::zeros({1000}))}, {{"transB", int64_t{1}}},
                      "fc"));
      onnx_save(b.build(), path("head1000.onnx"));
    }
    {
      // Batch 1 baked in where relaxing cannot help: the means go through a Transpose before a
      // Reshape back to [1, 3], which at batch 2 would mix the samples.
      test::GraphBuilder b;
      std::string x = b.input("x", {1, 3, 32, 32});
      std::string y = b.node("Flatten", {b.node("GlobalAveragePool", {x})});
      y = b.node("Transpose", {y}, {{"perm", std::vector<int64_t>{1, 0}}});
      b.output(b.node("Reshape", {y, b.init("target", at::tensor({int64_t{1}, int64_t{-1}}))}));
      onnx_save(b.build(), path("rgb_batch1_mixing.onnx"));
    }
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  /// [N, C, 32, 32] -> per-channel means [N, C], then MatMul with ones [C, K] when K != C.
  static void save_means_model(const std::string& file, int64_t c, int64_t k,
                               int64_t batch = kDynamicDim) {
    test::GraphBuilder b;
    std::string x = b.input("x", {batch, c, 32, 32});
    std::string y = b.node("Flatten", {b.node("GlobalAveragePool", {x})});
    if (k != c) y = b.node("MatMul", {y, b.init("ones", at::ones({c, k}))});
    b.output(y);
    onnx_save(b.build(), path(file));
  }
  static std::string path(const std::string& f) { return *dir_ + "/" + f; }
  static test::CmdResult eval(const std::string& model, const std::string& flags = "") {
    return test::run_cmd(test::slim_bin() + " eval " + path(model) + " --data folder:" +
                         path("images") + " --threads 1 --json " + flags);
  }
  /// Mean cross-entropy of logits (p_c - mean_c) / std_c over the three one-colour images,
  /// channels read in `order` (indices into R, G, B).
  static double expected_loss(const std::vector<double>& mean, const std::vector<double>& std,
                              const std::vector<int>& order) {
    double sum = 0;
    for (size_t label = 0; label < kColours.size(); ++label) {
      std::vector<double> z;
      for (size_t c = 0; c < 3; ++c)
        z.push_back((kColours[label][order[c]] / 255.0 - mean[c]) / std[c]);
      double lse = 0;
      for (double v : z) lse += std::exp(v);
      sum += std::log(lse) - z[label];
    }
    return sum / 3;
  }
  static std::string* dir_;
};
std::string* DataCli::dir_ = nullptr;

TEST_F(DataCli, FolderImagesFollowTheModelsInputSizeWithImagenetNormalisation) {
  // 64x48 images, a model reading 32x32: resized to the model (they used to be read at 224).
  auto r = eval("rgb.onnx");
  ASSERT_EQ(r.code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["samples"], 3);
  EXPECT_NEAR(j["loss"].get<double>(),
              expected_loss({0.485, 0.456, 0.406}, {0.229, 0.224, 0.225}, {0, 1, 2}), 1e-5);
  // Naming the preset gives the same.
  auto named = eval("rgb.onnx", "--mean imagenet --std imagenet");
  ASSERT_EQ(named.code, 0) << named.err;
  EXPECT_EQ(nlohmann::json::parse(named.out)["loss"], j["loss"]);
}

TEST_F(DataCli, AModelWithItsBatchFixedAtOneGetsASymbolicBatch) {
  // PyTorch's plain export fixes the batch at 1; eval's default batch is 256.
  auto r = eval("rgb_batch1.onnx", "--batch 2");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("rgb_batch1.onnx: batch fixed at 1 made symbolic"), std::string::npos)
      << r.err;
  EXPECT_NEAR(nlohmann::json::parse(r.out)["loss"].get<double>(),
              expected_loss({0.485, 0.456, 0.406}, {0.229, 0.224, 0.225}, {0, 1, 2}), 1e-5);
}

TEST_F(DataCli, AFixedBatchThatCannotBeRelaxedRunsInBatchesOfOneAndSaysSo) {
  auto r = eval("rgb_batch1_mixing.onnx", "--batch 2");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("rgb_batch1_mixing.onnx: batch fixed at 1 and not safely relaxed ("),
            std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("running in batches of 1"), std::string::npos) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["samples"], 3);
  EXPECT_NEAR(j["loss"].get<double>(),
              expected_loss({0.485, 0.456, 0.406}, {0.229, 0.224, 0.225}, {0, 1, 2}), 1e-5);
}

TEST_F(DataCli, TrainWithResetHeadFitsTheModelToTheFoldersClasses) {
  const std::string train = test::slim_bin() + " train " + path("head1000.onnx") +
                            " --data folder:" + path("images") + " --threads 1 --batch 3 -o " +
                            path("head3.onnx");
  auto r = test::run_cmd(train);
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.err.find("3 classes but the model's output"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("--reset-head"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(path("head3.onnx")));
  r = test::run_cmd(train + " --reset-head --json");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("final layer 'fc' replaced for 3 classes"), std::string::npos) << r.err;
  Graph g = onnx_load(path("head3.onnx"));
  EXPECT_EQ(g.outputs[0].shape, (std::vector<int64_t>{kDynamicDim, 3}));
  EXPECT_EQ(nlohmann::json::parse(r.out)["eval"]["samples"], 3);
}

TEST_F(DataCli, MeanStdAndChannelOrderAreApplied) {
  auto r = eval("rgb.onnx", "--mean 0.5 --std 0.25,0.5,1");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NEAR(nlohmann::json::parse(r.out)["loss"].get<double>(),
              expected_loss({0.5, 0.5, 0.5}, {0.25, 0.5, 1}, {0, 1, 2}), 1e-5);
  r = eval("rgb.onnx", "--mean 0.5 --std 0.25,0.5,1 --channel-order bgr");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NEAR(nlohmann::json::parse(r.out)["loss"].get<double>(),
              expected_loss({0.5, 0.5, 0.5}, {0.25, 0.5, 1}, {2, 1, 0}), 1e-5);
}

TEST_F(DataCli, RgbImagesFeedAGrayscaleModel) {
  // stb's luminance (77 R + 150 G + 29 B) >> 8 of each colour, normalised with 0.5 / 0.5; every
  // class's logit is that one value, so the loss is log 3 whatever the colour.
  auto r = eval("gray.onnx");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NEAR(nlohmann::json::parse(r.out)["loss"].get<double>(), std::log(3.0), 1e-6);
  auto bad = eval("gray.onnx", "--channel-order bgr");
  EXPECT_NE(bad.code, 0);
  EXPECT_NE(bad.err.find("--channel-order bgr: the model reads 1 channel(s), not 3"),
            std::string::npos)
      << bad.err;
}

TEST_F(DataCli, BadValuesAndAClassCountTheModelCannotHoldAreClearErrors) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"--image-size 12x", "--image-size '12x': expected H,W"},
      {"--image-size 0,32", "--image-size '0,32': expected H,W"},
      {"--mean 1,2", "--mean '1,2' has 2 values; the model reads 3 channel(s)"},
      {"--mean red", "--mean 'red': expected imagenet or numbers"},
      {"--std 0", "--std '0': every value must be positive"},
      {"--channel-order rbg", "--channel-order"},
      // The model fixes 32x32: another size is refused by the model's own input check.
      {"--image-size 16,16", "16x16"},
  };
  for (const auto& [flags, want] : cases) {
    auto r = eval("rgb.onnx", flags);
    EXPECT_NE(r.code, 0) << flags;
    EXPECT_NE(r.err.find(want), std::string::npos) << flags << ": " << r.err;
  }
  auto r = eval("four_classes.onnx");
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.err.find("3 classes but the model's output"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("has 4"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace slim
