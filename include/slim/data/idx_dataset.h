#pragma once
/// MNIST-format datasets: the four uncompressed IDX files that MNIST and Fashion-MNIST ship
/// (DIR/train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte,
/// t10k-labels-idx1-ubyte). scripts/fetch_data.sh puts both in data/.
#include <string>

#include "slim/data/dataset.h"

namespace slim {

/// Reads one uncompressed IDX file of unsigned bytes (element type 0x08) into a uint8 tensor
/// with the dims of its header. Checks the magic number, element type, number of dims (must be
/// `ndim`) and that the file holds exactly header + product(dims) bytes; errors name the file
/// and the problem (gzip-compressed, bad magic, truncated, trailing bytes).
at::Tensor idx_load(const std::string& path, int64_t ndim);

/// A whole MNIST-style split held in memory as uint8 [N, 1, H, W]; pixels become float only in
/// gather(), as x / 255 * 2 - 1 (PaddleSlim's MNIST reader), so 60,000 images take 47 MB.
class IdxDataset : public Dataset {
 public:
  /// `name` ("mnist", "fashion") appears in describe(). Labels must lie in [0, 10).
  IdxDataset(const std::string& name, const std::string& dir, Split split);

  int64_t size() const override { return images_.size(0); }
  at::Tensor image(int64_t i) const override;
  int64_t label(int64_t i) const override;
  int64_t num_classes() const override { return 10; }
  std::vector<int64_t> image_shape() const override;
  /// One index_select over the uint8 images, then the conversion to [-1, 1].
  std::pair<at::Tensor, at::Tensor> gather(const std::vector<int64_t>& idx) const override;
  std::string describe() const override;

 private:
  std::string name_, dir_;
  Split split_;
  at::Tensor images_;  ///< uint8 [N, 1, H, W]
  at::Tensor labels_;  ///< int64 [N]
};

}  // namespace slim
