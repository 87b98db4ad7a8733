#include "slim/data/npy.h"

#include <gtest/gtest.h>

#include <fstream>

#include "test_util.h"
#include "slim/ir/error.h"
#include "slim/onnx/onnx_io.h"

namespace slim {
namespace {

TEST(Npy, RoundTripsEveryDtype) {
  std::string dir = test::temp_dir("npy");
  at::manual_seed(1);
  std::vector<at::Tensor> ts = {at::randn({2, 3, 4}), at::randn({5}, at::kDouble),
                                at::randint(-100, 100, {3, 2}, at::kLong),
                                at::randint(-100, 100, {7}, at::kInt),
                                at::randint(-100, 100, {2, 2}, at::kChar),
                                at::randint(0, 255, {4}, at::kByte), at::rand({3}) > 0.5,
                                at::scalar_tensor(3.5f), at::zeros({0, 3})};
  for (size_t i = 0; i < ts.size(); ++i) {
    std::string p = dir + "/t" + std::to_string(i) + ".npy";
    npy_save(ts[i], p);
    at::Tensor back = npy_load(p);
    EXPECT_EQ(back.scalar_type(), ts[i].scalar_type()) << i;
    EXPECT_EQ(back.sizes(), ts[i].sizes()) << i;
    EXPECT_TRUE(at::equal(back, ts[i])) << i;
    // The header is padded so the data starts on a 64-byte boundary, as NumPy does.
    EXPECT_EQ((read_file(p).size() - ts[i].nbytes()) % 64, 0u) << i;
  }
}

TEST(Npy, ReadsNumPyWrittenFile) {
  // Bytes of np.save(f, np.arange(6, dtype=np.float32).reshape(2, 3)) from NumPy 1.24.
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
  header.append(118 - header.size() - 1, ' ');
  header += '\n';
  std::string bytes = std::string("\x93NUMPY\x01\x00", 8) + std::string(1, char(118)) + '\0' + header;
  for (int i = 0; i < 6; ++i) {
    float v = static_cast<float>(i);
    bytes.append(reinterpret_cast<const char*>(&v), 4);
  }
  std::string p = test::temp_dir("npy_np") + "/a.npy";
  write_file_atomic(p, bytes);
  EXPECT_TRUE(at::equal(npy_load(p), at::arange(6, at::kFloat).reshape({2, 3})));
}

TEST(Npy, ErrorsNameTheFileAndProblem) {
  std::string dir = test::temp_dir("npy_bad");
  auto expect_error = [](const std::string& p, const std::string& needle) {
    try {
      npy_load(p);
      FAIL() << p;
    } catch (const Error& e) {
      std::string m = e.what();
      EXPECT_NE(m.find(p), std::string::npos) << m;
      EXPECT_NE(m.find(needle), std::string::npos) << m;
    }
  };
  expect_error(dir + "/missing.npy", "cannot open");
  std::ofstream(dir + "/text.npy") << "hello";
  expect_error(dir + "/text.npy", "bad magic");
  npy_save(at::randn({4, 4}), dir + "/full.npy");
  std::string full = read_file(dir + "/full.npy");
  write_file_atomic(dir + "/short.npy", full.substr(0, full.size() - 8));
  expect_error(dir + "/short.npy", "needs 64");
  std::string fortran = full;
  fortran.replace(fortran.find("False"), 5, "True ");
  write_file_atomic(dir + "/fortran.npy", fortran);
  expect_error(dir + "/fortran.npy", "Fortran");
  std::string big_endian = full;
  big_endian.replace(big_endian.find("<f4"), 3, ">f4");
  write_file_atomic(dir + "/be.npy", big_endian);
  expect_error(dir + "/be.npy", "'>f4'");
}

}  // namespace
}  // namespace slim
