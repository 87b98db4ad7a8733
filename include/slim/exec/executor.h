#pragma once
/// Interprets a Graph with LibTorch ATen ops. Inference and training mode; in training mode
/// BatchNormalization uses batch statistics and updates its running mean/var initializers in
/// place, Dropout is active, and autograd reaches every initializer in `Graph::trainable`.
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "slim/exec/kernel.h"
#include "slim/exec/onednn_conv.h"
#include "slim/ir/graph.h"

namespace slim {

/// Sets LibTorch's intra-op thread count (its default on this machine is 1). n <= 0 -> all cores.
void set_num_threads(int n);
/// Threads LibTorch uses now.
int num_threads();

/// True if the executor implements this default-domain op type.
bool has_kernel(const std::string& op_type);
/// Op types the executor implements, sorted.
std::vector<std::string> supported_ops();

class Executor {
 public:
  /// Binds to `graph` (not copied: initializers are shared, so training updates the graph's
  /// weights). Rebuild the executor after changing the graph's structure.
  explicit Executor(Graph& graph);

  /// Training mode: batch statistics in BN, active Dropout, gradients to trainable initializers.
  void set_training(bool training);
  bool training() const { return training_; }

  /// Runs the graph on inputs given in the order of `graph.inputs`; returns the graph outputs.
  /// Input ranks, fixed dims and dtypes are checked against the graph's declared inputs.
  std::vector<at::Tensor> run(const std::vector<at::Tensor>& inputs);

  /// Runs the graph and returns the requested values (graph outputs when `fetch` is empty),
  /// including intermediates.
  std::map<std::string, at::Tensor> run_named(const std::map<std::string, at::Tensor>& inputs,
                                              const std::vector<std::string>& fetch = {});

  /// Skip input shape checks (used by shape inference, which runs on substitute dims).
  void set_check_inputs(bool check) { check_inputs_ = check; }

  /// Inference convolutions on oneDNN with prepacked weights, cached primitives, NHWC
  /// activations and Relu/LeakyRelu/Clip fused into the conv (default on). Off: every Conv runs
  /// ATen's at::convolution, as in training. Results agree to float rounding either way.
  void set_onednn(bool on);
  bool onednn() const { return onednn_; }
  /// Convs the last run executed on oneDNN (the rest ran ATen's kernel).
  int onednn_convs_last_run() const { return onednn_runs_; }

 private:
  struct Step {
    const Node* node;
    KernelFn kernel;
    std::vector<int> in;
    std::vector<int> out;
    std::vector<int> free_after;  ///< slots whose last reader is this step
    std::vector<bool> hand_over;  ///< input k's slot is read last here: move it into the kernel
    bool inplace_in_training = false;  ///< see KernelContext::can_overwrite
    bool frozen = false;               ///< in Graph::frozen_nodes: inference mode always
    std::shared_ptr<OneDnnConv> onednn;  ///< Conv steps in inference
    int act_step = -1;                   ///< Conv: the activation step that may be fused into it
    FusedActivation act;                 ///< ... and its activation
  };
  void compile();
  std::vector<at::Tensor> execute(std::vector<at::Tensor> slots, const std::vector<int>& keep);
  void check_input(const ValueInfo& info, const at::Tensor& t) const;

  Graph* graph_;
  bool training_ = false;
  bool check_inputs_ = true;
  bool onednn_ = true;
  int onednn_runs_ = 0;
  std::map<std::string, int> slot_of_;
  std::vector<int> input_slots_;
  std::vector<int> output_slots_;
  std::vector<std::pair<int, std::string>> init_slots_;
  std::vector<Step> steps_;
  int num_slots_ = 0;
};

}  // namespace slim
