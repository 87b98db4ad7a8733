#pragma once
// ONNX's own test data (Debian libonnx-testdata): a test directory holds model.onnx and
// test_data_set_N/{input,output}_K.pb. Shared by the node conformance tests and the model tests.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include "slim/exec/executor.h"
#include "slim/onnx/onnx_io.h"

namespace slim::test {

/// The root of libonnx-testdata's data (node/, pytorch-converted/, ...); SLIM_ONNX_TEST_DATA
/// points elsewhere, e.g. at a newer ONNX's test data.
inline std::string onnx_test_data_root() {
  const char* env = std::getenv("SLIM_ONNX_TEST_DATA");
  return env && *env ? env : "/usr/share/libonnx-testdata/data";
}

/// Files `prefix_0.pb`, `prefix_1.pb`, ... in `dir`, in index order.
inline std::vector<std::filesystem::path> numbered_files(const std::filesystem::path& dir,
                                                         const std::string& prefix) {
  std::vector<std::filesystem::path> files;
  for (int k = 0;; ++k) {
    std::filesystem::path p = dir / (prefix + "_" + std::to_string(k) + ".pb");
    if (!std::filesystem::exists(p)) break;
    files.push_back(p);
  }
  return files;
}

/// The test_data_set_* directories of a test, sorted.
inline std::vector<std::filesystem::path> test_data_sets(const std::filesystem::path& dir) {
  std::vector<std::filesystem::path> sets;
  for (const auto& e : std::filesystem::directory_iterator(dir))
    if (e.is_directory() && e.path().filename().string().rfind("test_data_set_", 0) == 0)
      sets.push_back(e.path());
  std::sort(sets.begin(), sets.end());
  return sets;
}

/// Compares like onnx's backend runner (onnx/backend/test/runner: rtol 1e-3, atol 1e-7): same
/// dtype and shape, exact for integers and bools, |got - want| <= atol + rtol * |want| for floats
/// with NaNs equal.
inline ::testing::AssertionResult outputs_match(const at::Tensor& want, const at::Tensor& got,
                                                double rtol = 1e-3, double atol = 1e-7) {
  if (got.scalar_type() != want.scalar_type())
    return ::testing::AssertionFailure() << "dtype " << dtype_name(got.scalar_type())
                                         << ", expected " << dtype_name(want.scalar_type());
  if (got.sizes() != want.sizes())
    return ::testing::AssertionFailure() << "shape " << shape_to_string(got.sizes().vec())
                                         << ", expected " << shape_to_string(want.sizes().vec());
  if (want.numel() == 0) return ::testing::AssertionSuccess();
  if (!at::isFloatingType(want.scalar_type())) {
    if (at::equal(got.contiguous(), want.contiguous())) return ::testing::AssertionSuccess();
    at::Tensor diff = at::ne(got, want).reshape({-1}).nonzero();
    int64_t i = diff[0].item<int64_t>();
    return ::testing::AssertionFailure()
           << diff.size(0) << " of " << want.numel() << " elements differ; first at flat index "
           << i << ": got " << got.reshape({-1})[i].item<double>() << ", expected "
           << want.reshape({-1})[i].item<double>();
  }
  at::Tensor g = got.to(at::kDouble).reshape({-1});
  at::Tensor w = want.to(at::kDouble).reshape({-1});
  at::Tensor both_nan = at::isnan(g) & at::isnan(w);
  at::Tensor same = at::eq(g, w);  // also equal infinities
  at::Tensor close = at::abs(g - w) <= atol + rtol * at::abs(w);
  at::Tensor ok = both_nan | same | close;
  if (ok.all().item<bool>()) return ::testing::AssertionSuccess();
  at::Tensor bad = (~ok).nonzero();
  int64_t i = bad[0].item<int64_t>();
  return ::testing::AssertionFailure()
         << bad.size(0) << " of " << want.numel() << " elements are not within rtol " << rtol
         << ", atol " << atol << "; first at flat index " << i << ": got " << g[i].item<double>()
         << ", expected " << w[i].item<double>();
}

/// Runs `g` (loaded from `dir`/model.onnx) on every test_data_set of `dir` and checks each output
/// against the expected one: a test failure per mismatch.
inline void expect_matches_test_data(Graph& g, const std::filesystem::path& dir) {
  Executor ex(g);
  const auto sets = test_data_sets(dir);
  ASSERT_FALSE(sets.empty()) << dir << " has no test_data_set_*";
  for (const auto& set : sets) {
    SCOPED_TRACE(set.filename().string());
    std::vector<at::Tensor> inputs;
    for (const auto& f : numbered_files(set, "input")) inputs.push_back(onnx_load_tensor(f));
    std::vector<at::Tensor> want;
    for (const auto& f : numbered_files(set, "output")) want.push_back(onnx_load_tensor(f));
    std::vector<at::Tensor> got = ex.run(inputs);
    ASSERT_EQ(got.size(), want.size()) << "number of outputs";
    for (size_t k = 0; k < want.size(); ++k)
      EXPECT_TRUE(outputs_match(want[k], got[k]))
          << "output #" << k << " '" << g.outputs[k].name << "'";
  }
}

}  // namespace slim::test
