#include "slim/exec/infer_shapes.h"

#include <gtest/gtest.h>

#include "test_util.h"

namespace slim {
namespace {

using Ints = std::vector<int64_t>;

Graph small_cnn() {
  test::GraphBuilder b;
  auto x = b.input("x", {kDynamicDim, 3, 9, 9});
  auto c = b.node("Conv", {x, b.init("w", at::randn({6, 3, 3, 3}))},
                  {{"strides", Ints{2, 2}}, {"pads", Ints{1, 1, 1, 1}}}, "conv");
  auto p = b.node("MaxPool", {c}, {{"kernel_shape", Ints{2, 2}}, {"strides", Ints{2, 2}}}, "pool");
  auto f = b.node("Flatten", {p}, {}, "flat");
  b.output(f);
  return b.build();
}

TEST(InferShapes, KeepsBatchSymbolic) {
  Graph g = small_cnn();
  infer_shapes(g);
  EXPECT_EQ(*g.shape_of("conv_out"), (Ints{kDynamicDim, 6, 5, 5}));
  EXPECT_EQ(*g.shape_of("pool_out"), (Ints{kDynamicDim, 6, 2, 2}));
  EXPECT_EQ(g.outputs[0].shape, (Ints{kDynamicDim, 24}));
  EXPECT_EQ(g.outputs[0].dtype, at::kFloat);
  EXPECT_NE(g.dump().find("%conv_out[Nx6x5x5]"), std::string::npos) << g.dump();
}

TEST(InferShapes, FixedBatchStaysFixed) {
  Graph g = small_cnn();
  set_input_shapes(g, {{2, 3, 17, 17}});
  infer_shapes(g);
  EXPECT_EQ(*g.shape_of("conv_out"), (Ints{2, 6, 9, 9}));
}

TEST(InferShapes, PerSampleShapeGetsADynamicBatch) {
  Graph g = small_cnn();
  set_input_shapes(g, parse_input_shapes("3,32,32"));
  EXPECT_EQ(g.inputs[0].shape, (Ints{kDynamicDim, 3, 32, 32}));
  infer_shapes(g);
  EXPECT_EQ(g.outputs[0].shape, (Ints{kDynamicDim, 6 * 8 * 8}));
}

TEST(InferShapes, ParseErrorsNameTheText) {
  EXPECT_EQ(parse_input_shapes("1,28,28;3,4"), (std::vector<Ints>{{1, 28, 28}, {3, 4}}));
  for (const char* bad : {"", "1,,2", "1,-2", "a", "1.5"}) {
    try {
      parse_input_shapes(bad);
      ADD_FAILURE() << bad;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(std::string("'") + bad + "'"), std::string::npos)
          << e.what();
    }
  }
}

TEST(InferShapes, MissingInputShapeIsAnError) {
  Graph g = small_cnn();
  g.inputs[0].has_shape = false;
  EXPECT_THROW(infer_shapes(g), Error);
}

}  // namespace
}  // namespace slim
