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
#include "slim/exec/onednn_int8.h"
#include "slim/ir/graph.h"

namespace slim {

class BatchNormInference;

/// Sets LibTorch's intra-op thread count (its default on this machine is 1). n <= 0 -> all
/// cores, divided among the ranks on this machine in a distributed run (SLIM_THREADS, else
/// LOCAL_WORLD_SIZE).
void set_num_threads(int n);
/// Threads LibTorch uses now.
int num_threads();

/// Time one node took over the runs an Executor profiled (see Executor::set_profiling).
struct NodeTime {
  std::string node;     ///< node name (or label when unnamed)
  std::string op_type;  ///< ONNX op type
  /// How it ran: "int8" (fused int8 step, including the activation and QuantizeLinear it did the
  /// work of), "onednn" (float conv or Gemm on oneDNN, with the element-wise work fused into it),
  /// "slim" (BatchNormalization in one pass, with its activations), or "aten".
  std::string engine;
  double total_ms = 0;
  int64_t runs = 0;
};

/// A step as the executor runs it in inference when only the graph outputs are fetched: its
/// node, the nodes whose work it does too (activations, a residual Add or SiLU fused into a
/// oneDNN conv, activations into a BatchNormalization; the DequantizeLinear inputs, activation
/// and QuantizeLinear of an int8 step), and the engine it is planned on ("int8", "onednn",
/// "slim" or "aten"; a step can still fall back at run time, e.g. a oneDNN conv on an input it
/// cannot take).
struct PlannedStep {
  const Node* node = nullptr;
  std::vector<const Node*> fused;
  std::string engine;
};

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
  /// The shape and element type of a value a run computed.
  struct ValueShape {
    std::vector<int64_t> sizes;
    at::ScalarType dtype;
  };
  /// While set, each run runs every node as written (nothing fused or skipped, as when every
  /// value is fetched) and records into `*shapes` the shape and type of every value a node
  /// computes, releasing each value after its last reader as usual: shape inference at the
  /// memory of one run, not of every value at once. nullptr switches it off.
  void set_shape_recorder(std::map<std::string, ValueShape>* shapes) { shapes_ = shapes; }

  /// Inference convolutions on oneDNN with prepacked weights, cached primitives, NHWC
  /// activations and Relu/LeakyRelu/Clip fused into the conv (default on). Off: every Conv runs
  /// ATen's at::convolution, as in training, and int8 execution is off too. Results agree to
  /// float rounding either way.
  void set_onednn(bool on);
  bool onednn() const { return onednn_; }
  /// Float convs the last run executed on oneDNN (the rest ran ATen's kernel).
  int onednn_convs_last_run() const { return onednn_runs_; }

  /// Real int8 execution of QDQ graphs in inference (default on, needs set_onednn(true)): a
  /// Conv or Gemm whose input and weights come from DequantizeLinear (zero points 0), with its
  /// bias, following activation and QuantizeLinear, runs as one oneDNN int8 primitive on the
  /// quantized tensors (see slim/exec/onednn_int8.h); so do a residual Add and a MaxPool between
  /// DequantizeLinear and QuantizeLinear nodes. Off: every node runs its own kernel, which
  /// simulates int8 in float. Quantized outputs agree with the simulation up to 1 step where
  /// float rounding differs; anything that does not qualify runs the original nodes. Never used
  /// in training mode or for Graph::frozen_nodes.
  void set_int8(bool on);
  bool int8() const { return int8_; }
  /// Fused int8 Conv/Gemm, Add and MaxPool steps the last run executed in int8.
  int int8_ops_last_run() const { return int8_runs_; }

  /// For one-shot inference (`slim run`): an int8 step's weights, once packed into oneDNN's
  /// layout, are freed from the graph (Graph::initializers then holds an undefined tensor under
  /// their name) as soon as no other step reads them, so the model is in memory once, not twice.
  /// A promise that the graph is not changed, trained or run by another executor afterwards, and
  /// that inputs keep the type and shape of the first run: a later run that would need a freed
  /// weight fails naming it. Off by default.
  void set_release_weights(bool on) { release_weights_ = on; }
  /// Per-node wall time of every following run (off by default; costs two clock reads a node).
  /// Steps whose work a fused step did (skipped DequantizeLinear, fused activations and
  /// QuantizeLinear) do not appear.
  void set_profiling(bool on);
  /// Times since profiling was switched on, in graph order.
  std::vector<NodeTime> profile() const;
  /// The inference steps, in order, as a run fetching only the graph outputs executes them:
  /// fused and skipped nodes appear only in the `fused` list of the step that does their work.
  std::vector<PlannedStep> plan() const;

 private:
  struct Step {
    const Node* node;
    KernelFn kernel;
    std::vector<int> in;
    std::vector<int> out;
    std::vector<int> free_after;  ///< slots whose last reader is this step
    std::vector<bool> hand_over;  ///< input k's slot is read last here: move it into the kernel
    bool inplace_in_training = false;    ///< see KernelContext::can_overwrite
    bool frozen = false;                 ///< in Graph::frozen_nodes: inference mode always
    std::shared_ptr<OneDnnConv> onednn;  ///< Conv steps in inference
    std::shared_ptr<OneDnnGemm> onednn_gemm;  ///< Gemm steps in inference
    std::shared_ptr<BatchNormInference> bn;   ///< BatchNormalization steps in inference
    /// A BatchNormalization step in inference whose input is a Concat along channels read by
    /// nothing else: that Concat step, skipped while this step reads its inputs itself
    /// (BatchNormInference::run_concat). On the Concat step, the BatchNormalization step.
    int bn_concat = -1, concat_into_bn = -1;
    // A Conv's float oneDNN primitive may also do the element-wise work of the steps after it
    // (activations, a residual Add, SiLU's Sigmoid and Mul), a BatchNormalization's pass the
    // activations after it.
    std::vector<PostOp> post;     ///< that work, in order
    std::vector<int> post_steps;  ///< the steps it stands for (skipped when it is done)
    std::vector<int> post_inner;  ///< values it does not produce: fetching one disables it
    int post_out = -1;            ///< the slot it then writes
    int post_sum = -1;            ///< the slot a kSum adds (the residual), or -1
    bool post_sum_owned = false;  ///< nothing reads the residual after: its buffer may be reused
    // A Conv/Gemm (or a residual Add) step fused with its QDQ neighbours into one int8 step
    // (inference only).
    std::shared_ptr<Int8Step> int8;
    std::vector<int> int8_in;      ///< slots of int8->operands().names(), -1 where absent
    int int8_out = -1;             ///< the slot it writes: the QuantizeLinear's, act's or own
    /// The steps it reads past, in order: DequantizeLinear, and the activation between one and a
    /// squeeze-excitation block. Run late if it falls back and they were skipped.
    std::vector<int> int8_before;
    std::vector<int> int8_after;   ///< the activation and QuantizeLinear steps it does the work of
    std::vector<int> int8_inner;   ///< values it does not produce: fetching one disables it
    /// The int8 steps that read past this step (int8_before), when they alone need its output:
    /// skipped when they all run int8, run late by any of them that falls back.
    std::vector<int> int8_readers;
  };
  void compile();
  void compile_int8(const std::vector<bool>& pinned, const std::vector<int>& producer_step);
  std::vector<at::Tensor> execute(std::vector<at::Tensor> slots, const std::vector<int>& keep);
  void check_input(const ValueInfo& info, const at::Tensor& t) const;
  /// Frees the weights int8 step `k` has packed when no step that still reads them remains
  /// (set_release_weights).
  void release_packed_weights(size_t k, std::vector<at::Tensor>& slots);

  Graph* graph_;
  bool training_ = false;
  bool check_inputs_ = true;
  std::map<std::string, ValueShape>* shapes_ = nullptr;
  bool onednn_ = true;
  int onednn_runs_ = 0;
  bool int8_ = true;
  int int8_runs_ = 0;
  bool release_weights_ = false;
  std::vector<bool> released_;  ///< by slot: initializers set_release_weights freed
  bool profiling_ = false;
  std::vector<NodeTime> profile_;  ///< one entry per step while profiling
  std::map<std::string, int> slot_of_;
  std::vector<int> input_slots_;
  std::vector<int> output_slots_;
  std::vector<std::pair<int, std::string>> init_slots_;
  std::vector<Step> steps_;
  int num_slots_ = 0;
};

}  // namespace slim
