#include "slim/exec/executor.h"

#include "batch_norm_inference.h"

#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>
#include <malloc.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <mutex>
#include <thread>

namespace slim {

void set_num_threads(int n) {
  if (n <= 0) {
    // All cores, shared by the ranks on this machine (SLIM_THREADS from slim launch, or
    // torchrun's LOCAL_WORLD_SIZE).
    const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    const char* t = std::getenv("SLIM_THREADS");
    const char* lws = std::getenv("LOCAL_WORLD_SIZE");
    n = t && std::atoi(t) > 0       ? std::atoi(t)
        : lws && std::atoi(lws) > 0 ? std::max(1, cores / std::atoi(lws))
                                    : cores;
  }
  at::set_num_threads(n);
}

int num_threads() { return at::get_num_threads(); }

namespace {
/// Every kernel file's registration table.
std::vector<const std::vector<KernelEntry>*> kernel_tables() {
  return {&nn_kernels(),          &tensor_kernels(), &math_kernels(),
          &elementwise_kernels(), &reduce_kernels(), &resize_kernels()};
}
}  // namespace

KernelFn find_kernel(const std::string& op_type) {
  static const std::map<std::string, KernelFn> table = [] {
    std::map<std::string, KernelFn> t;
    for (const auto* list : kernel_tables())
      for (const auto& e : *list) {
        SLIM_ASSERT(!t.count(e.op_type), "two kernels registered for ", e.op_type);
        t[e.op_type] = e.fn;
      }
    return t;
  }();
  auto it = table.find(op_type);
  return it == table.end() ? nullptr : it->second;
}

bool has_kernel(const std::string& op_type) { return find_kernel(op_type) != nullptr; }

std::vector<std::string> supported_ops() {
  std::vector<std::string> ops;
  for (const auto* list : kernel_tables())
    for (const auto& e : *list) ops.push_back(e.op_type);
  std::sort(ops.begin(), ops.end());
  return ops;
}

namespace {
/// glibc hands large blocks (activations) back to the kernel on free and page-faults them in
/// again on the next run: measured here, a third of MNIST evaluation time went to page faults.
/// Keeping freed memory in the heap (as long-running tensor programs want) removes that; the
/// resident size stays at the peak of one run.
void tune_malloc_once() {
  static std::once_flag once;
  std::call_once(once, [] {
    mallopt(M_MMAP_THRESHOLD, 32 << 20);  // glibc's maximum on 64-bit
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
    mallopt(M_TOP_PAD, 64 << 20);
  });
}
}  // namespace

Executor::Executor(Graph& graph) : graph_(&graph) {
  tune_malloc_once();
  compile();
}

void Executor::set_training(bool training) {
  training_ = training;
  for (auto& [name, t] : graph_->initializers) {
    bool want = training && graph_->trainable.count(name) > 0;
    if (t.requires_grad() != want) t.requires_grad_(want);
  }
}

void Executor::set_int8(bool on) {
  if (on == int8_) return;
  int8_ = on;
  compile();
}

void Executor::set_profiling(bool on) {
  profiling_ = on;
  profile_.clear();
  if (!on) return;
  profile_.resize(steps_.size());
  for (size_t k = 0; k < steps_.size(); ++k) {
    const Node& n = *steps_[k].node;
    profile_[k].node = n.name.empty() ? n.label() : n.name;
    profile_[k].op_type = n.op_type;
  }
}

std::vector<NodeTime> Executor::profile() const {
  std::vector<NodeTime> out;
  for (const auto& t : profile_)
    if (t.runs > 0) out.push_back(t);
  return out;
}

std::vector<PlannedStep> Executor::plan() const {
  std::vector<bool> kept(num_slots_, false);
  for (int s : output_slots_) kept[s] = true;
  std::vector<bool> absorbed(steps_.size(), false);
  std::vector<PlannedStep> out;
  std::vector<int> index(steps_.size(), -1);
  // The same decisions as execute(): int8 steps whose inner values are not fetched, the
  // DequantizeLinear steps all of whose readers run int8, activations fused into oneDNN convs.
  std::vector<bool> int8_on(steps_.size(), false);
  for (size_t k = 0; k < steps_.size(); ++k) {
    const Step& st = steps_[k];
    int8_on[k] =
        int8_ && st.int8 &&
        std::none_of(st.int8_inner.begin(), st.int8_inner.end(), [&](int s) { return kept[s]; });
  }
  for (size_t k = 0; k < steps_.size(); ++k) {
    const Step& st = steps_[k];
    if (!st.int8_readers.empty() && !kept[st.out[0]] &&
        std::all_of(st.int8_readers.begin(), st.int8_readers.end(),
                    [&](int r) { return int8_on[r]; }))
      absorbed[k] = true;
    if (int8_on[k])
      for (int a : st.int8_after) absorbed[a] = true;
    if (!int8_on[k] && (st.onednn || st.bn) && !st.post.empty() &&
        std::none_of(st.post_inner.begin(), st.post_inner.end(), [&](int s) { return kept[s]; }))
      for (int a : st.post_steps) absorbed[a] = true;
    if (st.bn && st.bn_concat >= 0) absorbed[st.bn_concat] = true;
  }
  for (size_t k = 0; k < steps_.size(); ++k) {
    const Step& st = steps_[k];
    if (absorbed[k]) continue;
    PlannedStep p;
    p.node = st.node;
    if (int8_on[k]) {
      p.engine = "int8";
      for (int b : st.int8_before)
        if (absorbed[b]) p.fused.push_back(steps_[b].node);
      for (int a : st.int8_after) p.fused.push_back(steps_[a].node);
    } else if (st.onednn || st.onednn_gemm || st.bn) {
      p.engine = st.bn ? "slim" : "onednn";
      if (st.bn && st.bn_concat >= 0) p.fused.push_back(steps_[st.bn_concat].node);
      for (int a : st.post_steps)
        if (absorbed[a]) p.fused.push_back(steps_[a].node);
    } else {
      p.engine = "aten";
    }
    out.push_back(std::move(p));
  }
  return out;
}

void Executor::set_onednn(bool on) {
  if (on == onednn_) return;
  onednn_ = on;
  compile();
}

void Executor::compile() {
  slot_of_.clear();
  steps_.clear();
  init_slots_.clear();
  input_slots_.clear();
  output_slots_.clear();
  int next = 0;
  auto slot = [&](const std::string& v) {
    auto it = slot_of_.find(v);
    if (it != slot_of_.end()) return it->second;
    slot_of_[v] = next;
    return next++;
  };
  for (const auto& i : graph_->inputs) input_slots_.push_back(slot(i.name));
  for (const auto& [name, t] : graph_->initializers) init_slots_.push_back({slot(name), name});
  for (const auto& n : graph_->nodes) {
    Step s;
    s.node = &n;
    s.frozen = graph_->frozen_nodes.count(n.name) > 0;
    SLIM_CHECK(n.domain.empty() || n.domain == "ai.onnx", n.label(), ": domain '", n.domain,
               "' is not supported");
    s.kernel = find_kernel(n.op_type);
    SLIM_CHECK(s.kernel != nullptr, n.label(), ": op type '", n.op_type,
               "' is not supported by the executor");
    for (const auto& in : n.inputs) {
      if (in.empty()) {
        s.in.push_back(-1);
        continue;
      }
      auto it = slot_of_.find(in);
      SLIM_CHECK(it != slot_of_.end(), n.label(), " reads undefined value '", in, "'");
      s.in.push_back(it->second);
    }
    for (const auto& o : n.outputs) s.out.push_back(o.empty() ? -1 : slot(o));
    steps_.push_back(std::move(s));
  }
  for (const auto& o : graph_->outputs) {
    auto it = slot_of_.find(o.name);
    SLIM_CHECK(it != slot_of_.end(), "graph output '", o.name, "' is never produced");
    output_slots_.push_back(it->second);
  }
  num_slots_ = next;
  set_profiling(profiling_);
  std::vector<bool> pinned(num_slots_, false);
  for (int s : output_slots_) pinned[s] = true;
  for (const auto& [s, name] : init_slots_) pinned[s] = true;
  std::vector<int> producer_step(num_slots_, -1);
  for (size_t k = 0; k < steps_.size(); ++k)
    for (int s : steps_[k].out)
      if (s >= 0) producer_step[s] = static_cast<int>(k);
  if (int8_ && onednn_ && onednn_conv_available()) compile_int8(pinned, producer_step);
  if (onednn_ && onednn_conv_available()) {
    // DenseNet's Concat -> BatchNormalization: the BN pass writes the concatenation itself.
    std::vector<int> reads(num_slots_, 0);
    for (const Step& st : steps_)
      for (int s : st.in)
        if (s >= 0) ++reads[s];
    for (size_t k = 0; k < steps_.size(); ++k) {
      Step& st = steps_[k];
      if (st.node->op_type != "BatchNormalization" || st.out.size() != 1 || st.in.size() < 5 ||
          st.in[0] < 0 || producer_step[st.in[0]] < 0)
        continue;
      const int c = producer_step[st.in[0]];
      Step& cat = steps_[c];
      const int64_t axis = cat.node->i("axis", 0);
      if (cat.node->op_type != "Concat" || cat.out.size() != 1 || pinned[cat.out[0]] ||
          reads[cat.out[0]] != 1 || cat.frozen != st.frozen || (axis != 1 && axis != -3) ||
          cat.in.empty() || std::count(cat.in.begin(), cat.in.end(), -1) > 0)
        continue;
      st.bn_concat = c;
      cat.concat_into_bn = static_cast<int>(k);
    }
  }
  // Free each intermediate after its last reader so peak memory stays near the live set. A fused
  // int8 step reads the quantized values behind its DequantizeLinear inputs itself, a
  // BatchNormalization the inputs of the Concat it does.
  std::vector<int> last_use(num_slots_, -1);
  for (size_t k = 0; k < steps_.size(); ++k) {
    for (int s : steps_[k].in)
      if (s >= 0) last_use[s] = static_cast<int>(k);
    for (int s : steps_[k].int8_in)
      if (s >= 0) last_use[s] = std::max(last_use[s], static_cast<int>(k));
    if (steps_[k].bn_concat >= 0)
      for (int s : steps_[steps_[k].bn_concat].in)
        last_use[s] = std::max(last_use[s], static_cast<int>(k));
  }
  for (int s = 0; s < num_slots_; ++s)
    if (last_use[s] >= 0 && !pinned[s]) steps_[last_use[s]].free_after.push_back(s);
  // Hand the last reference of a dying value to its last reader so element-wise kernels can
  // reuse its memory. In training only outputs of ops whose backward does not read their own
  // output (Conv, BatchNormalization, Add, Gemm) may be overwritten, as with PyTorch's inplace
  // ReLU.
  for (size_t k = 0; k < steps_.size(); ++k) {
    Step& st = steps_[k];
    st.hand_over.assign(st.in.size(), false);
    for (size_t i = 0; i < st.in.size(); ++i) {
      int s = st.in[i];
      if (s < 0 || pinned[s] || last_use[s] != static_cast<int>(k)) continue;
      if (std::count(st.in.begin(), st.in.end(), s) != 1) continue;
      st.hand_over[i] = true;
    }
    int s0 = st.in.empty() ? -1 : st.in[0];
    if (s0 >= 0 && producer_step[s0] >= 0) {
      const std::string& op = steps_[producer_step[s0]].node->op_type;
      st.inplace_in_training =
          op == "Conv" || op == "BatchNormalization" || op == "Add" || op == "Gemm";
    }
  }
  if (!onednn_ || !onednn_conv_available()) return;
  // Inference: Conv on oneDNN, doing the element-wise work of the steps after it when each
  // value in between has no other reader and is not a graph output (execute() also checks none
  // is fetched): activations, one residual Add (first, so the residual is the output buffer),
  // Sigmoid + Mul (SiLU). Frozen convs run it while the rest trains; their chain stays frozen.
  std::vector<std::vector<int>> readers(num_slots_);  // each slot's reading steps, in order
  for (size_t k = 0; k < steps_.size(); ++k)
    for (int s : steps_[k].in)
      if (s >= 0 && (readers[s].empty() || readers[s].back() != static_cast<int>(k)))
        readers[s].push_back(static_cast<int>(k));
  constexpr size_t kMaxPostOps = 4;
  for (size_t k = 0; k < steps_.size(); ++k) {
    Step& st = steps_[k];
    if (st.out.empty() || st.out[0] < 0) continue;
    if (st.node->op_type == "Gemm" && st.out.size() == 1)
      st.onednn_gemm = std::make_shared<OneDnnGemm>(*st.node);
    const bool conv = st.node->op_type == "Conv" && st.out.size() == 1;
    if (st.node->op_type == "BatchNormalization" && st.out.size() == 1)
      st.bn = std::make_shared<BatchNormInference>();
    else if (conv)
      st.onednn = std::make_shared<OneDnnConv>(*st.node);
    else
      continue;
    // A step that may join the chain, reading `s` once.
    auto joinable = [&](int r, int s) {
      const Step& n = steps_[r];
      return n.frozen == st.frozen && !n.int8 && n.out.size() == 1 && n.out[0] >= 0 &&
             std::count(n.in.begin(), n.in.end(), s) == 1;
    };
    int cur = st.out[0];
    while (st.post.size() < kMaxPostOps && !pinned[cur]) {
      const std::vector<int>& rs = readers[cur];
      if (rs.size() == 1 && joinable(rs[0], cur)) {
        const Step& r = steps_[rs[0]];
        std::optional<PostOp> op;
        if (r.in[0] == cur) op = elementwise_post_op(*graph_, *r.node);
        if (op && !conv && !BatchNormInference::supports(*op)) break;
        if (!op && conv && r.node->op_type == "Add" && st.post.empty() && r.in.size() == 2) {
          // The residual must exist when the conv runs; its buffer is reused when the Add is
          // its last reader and nothing reads it in between.
          const int other = r.in[0] == cur ? r.in[1] : r.in[0];
          if (other < 0 || producer_step[other] >= static_cast<int>(k)) break;
          st.post_sum = other;
          st.post_sum_owned = !pinned[other] && readers[other].back() == rs[0] &&
                              std::none_of(readers[other].begin(), readers[other].end(), [&](int q) {
                                return q > static_cast<int>(k) && q < rs[0];
                              });
          op = PostOp{PostOp::Kind::kSum};
        }
        if (!op) break;
        st.post.push_back(*op);
        st.post_steps.push_back(rs[0]);
        st.post_inner.push_back(cur);
        cur = r.out[0];
        continue;
      }
      if (rs.size() == 2 && conv) {
        // SiLU: Sigmoid(cur) read only by Mul(cur, sigmoid), in either order.
        int a = rs[0], m = rs[1];
        if (steps_[a].node->op_type != "Sigmoid") std::swap(a, m);
        if (steps_[a].node->op_type != "Sigmoid" || steps_[m].node->op_type != "Mul" ||
            !joinable(a, cur) || !joinable(m, cur) || steps_[a].in[0] != cur)
          break;
        const int sig = steps_[a].out[0];
        if (pinned[sig] || readers[sig] != std::vector<int>{m} || steps_[m].in.size() != 2 ||
            (steps_[m].in[0] != sig && steps_[m].in[1] != sig) ||
            !elementwise_post_op(*graph_, *steps_[a].node))
          break;
        st.post.push_back(PostOp{PostOp::Kind::kSwish});
        st.post_steps.insert(st.post_steps.end(), {a, m});
        st.post_inner.insert(st.post_inner.end(), {cur, sig});
        cur = steps_[m].out[0];
        continue;
      }
      break;
    }
    st.post_out = cur;
  }
}

void Executor::compile_int8(const std::vector<bool>& pinned,
                            const std::vector<int>& producer_step) {
  std::vector<std::vector<int>> reader_steps(num_slots_);
  for (size_t k = 0; k < steps_.size(); ++k)
    for (int s : steps_[k].in)
      if (s >= 0 && (reader_steps[s].empty() || reader_steps[s].back() != static_cast<int>(k)))
        reader_steps[s].push_back(static_cast<int>(k));
  auto producer = [&](const std::string& v) -> const Node* {
    auto it = slot_of_.find(v);
    if (it == slot_of_.end() || producer_step[it->second] < 0) return nullptr;
    const Step& p = steps_[producer_step[it->second]];
    return p.frozen ? nullptr : p.node;
  };
  // The step that alone reads slot `s` (not a graph output), as its first input; -1 otherwise.
  auto sole_reader = [&](int s) {
    if (pinned[s] || reader_steps[s].size() != 1) return -1;
    int r = reader_steps[s][0];
    const Step& n = steps_[r];
    if (n.frozen || n.in.empty() || n.in[0] != s || n.out.size() != 1 || n.out[0] < 0 ||
        std::count(n.in.begin(), n.in.end(), s) != 1)
      return -1;
    return r;
  };
  // The output side of an int8 step at `st`: an activation (Relu alone with `relu_only`), then a
  // QuantizeLinear, each the sole reader of what precedes it.
  struct OutputSide {
    FusedActivation act;
    std::vector<int> after, inner;  ///< for Step::int8_after and Step::int8_inner
    int out = -1;                   ///< the slot the step writes
    int quantize = -1;              ///< the QuantizeLinear step, or -1
  };
  auto output_side = [&](const Step& st, bool relu_only) {
    OutputSide o;
    o.out = st.out[0];
    int r = sole_reader(o.out);
    if (r >= 0) {
      FusedActivation act = fusable_activation(*graph_, *steps_[r].node);
      if (act.active() && (!relu_only || act.kind == FusedActivation::Kind::kRelu)) {
        o.act = act;
        o.after.push_back(r);
        o.inner.push_back(o.out);
        o.out = steps_[r].out[0];
        r = sole_reader(o.out);
      }
    }
    if (r >= 0 && int8_output_quantize(*graph_, *steps_[r].node)) {
      o.quantize = r;
      o.after.push_back(r);
      o.inner.push_back(o.out);
      o.out = steps_[r].out[0];
    }
    return o;
  };
  // Makes `st` the int8 step `step` reading `names` (its first `dequantized` inputs read past
  // their DequantizeLinear steps) and doing the work of `o`.
  auto install = [&](Step& st, std::shared_ptr<Int8Step> step,
                     const std::vector<std::string>& names, size_t dequantized, OutputSide o) {
    st.int8_after = std::move(o.after);
    st.int8_inner = std::move(o.inner);
    st.int8_out = o.out;
    for (const auto& name : names) st.int8_in.push_back(name.empty() ? -1 : slot_of_.at(name));
    for (size_t i = 0; i < dequantized && i < st.in.size(); ++i) {
      int s = st.in[i];
      if (s >= 0 && producer_step[s] >= 0 &&
          steps_[producer_step[s]].node->op_type == "DequantizeLinear")
        st.int8_before.push_back(producer_step[s]);
    }
    st.int8 = std::move(step);
  };
  // A float value computed from 8-bit levels: x_q -> DequantizeLinear -> [fx], fx one
  // element-wise node or SiLU's Sigmoid and Mul (a squeeze-excitation block's input).
  struct LevelsChain {
    Int8PoolOperands x;      ///< the levels (y_* empty)
    std::vector<int> steps;  ///< the DequantizeLinear step, then fx's steps, in order
    std::vector<PostOp> fx;
  };
  auto single = [&](int k) {
    const Step& s = steps_[k];
    return !s.frozen && s.out.size() == 1 && s.out[0] >= 0;
  };
  auto dq_levels = [&](int slot, LevelsChain& c) {
    const int d = slot >= 0 ? producer_step[slot] : -1;
    if (d < 0 || !single(d)) return false;
    std::optional<Int8PoolOperands> x = int8_activation_levels(*graph_, steps_[d].node);
    if (!x) return false;
    c.x = *x;
    c.steps.insert(c.steps.begin(), d);
    return true;
  };
  auto levels_chain = [&](int v) -> std::optional<LevelsChain> {
    const int p = v >= 0 ? producer_step[v] : -1;
    if (p < 0 || !single(p)) return std::nullopt;
    LevelsChain c;
    const Step& ps = steps_[p];
    if (ps.node->op_type == "DequantizeLinear") {
      if (dq_levels(v, c)) return c;
      return std::nullopt;
    }
    if (std::optional<PostOp> f = elementwise_post_op(*graph_, *ps.node)) {
      c.steps = {p};
      c.fx = {*f};
      if (!ps.in.empty() && dq_levels(ps.in[0], c)) return c;
      return std::nullopt;
    }
    if (ps.node->op_type == "Mul" && ps.in.size() == 2) {
      // SiLU: Mul(a, Sigmoid(a)), in either order.
      for (int i = 0; i < 2; ++i) {
        const int a = ps.in[i], sg = ps.in[1 - i];
        const int q = sg >= 0 ? producer_step[sg] : -1;
        if (q < 0 || !single(q) || steps_[q].node->op_type != "Sigmoid" || steps_[q].in.empty() ||
            steps_[q].in[0] != a || !elementwise_post_op(*graph_, *steps_[q].node))
          continue;
        c.steps = {q, p};
        c.fx = {PostOp{PostOp::Kind::kSwish}};
        if (dq_levels(a, c)) return c;
        return std::nullopt;
      }
    }
    return std::nullopt;
  };
  // Makes step k an int8 step reading past a levels chain (and the steps in `before`), doing the
  // work of `after`, its last one a QuantizeLinear whose output it writes.
  auto install_chain = [&](size_t k, std::shared_ptr<Int8Step> step,
                           const std::vector<std::string>& names, std::vector<int> before,
                           const LevelsChain& c, std::vector<int> after) {
    Step& st = steps_[k];
    for (int b : c.steps) before.push_back(b);
    // The chain's values past the DequantizeLinear, this step's own and those of the steps it does
    // the work of: fetching one of them disables it (they are not computed).
    for (size_t i = 1; i < c.steps.size(); ++i) st.int8_inner.push_back(steps_[c.steps[i]].out[0]);
    st.int8_inner.push_back(st.out[0]);
    for (size_t i = 0; i + 1 < after.size(); ++i) st.int8_inner.push_back(steps_[after[i]].out[0]);
    st.int8_out = steps_[after.back()].out[0];
    st.int8_before = std::move(before);
    st.int8_after = std::move(after);
    for (const auto& name : names) st.int8_in.push_back(name.empty() ? -1 : slot_of_.at(name));
    st.int8 = std::move(step);
  };
  // A squeeze-excitation Mul at gate step k: gate(DequantizeLinear(s_q)) read only by a Mul whose
  // other input is a levels chain, the Mul read only by a QuantizeLinear.
  auto match_channel_scale = [&](size_t k, const PostOp& gate) {
    const Step& st = steps_[k];
    LevelsChain sc;
    if (st.in.empty() || !dq_levels(st.in[0], sc) || pinned[st.out[0]] ||
        reader_steps[st.out[0]].size() != 1)
      return false;
    const int m = reader_steps[st.out[0]][0];
    const Step& mul = steps_[m];
    if (mul.node->op_type != "Mul" || !single(m) || mul.in.size() != 2 || pinned[mul.out[0]] ||
        (mul.in[0] == st.out[0]) == (mul.in[1] == st.out[0]))
      return false;
    std::optional<LevelsChain> c = levels_chain(mul.in[0] == st.out[0] ? mul.in[1] : mul.in[0]);
    if (!c || c->steps.back() >= static_cast<int>(k)) return false;
    const int q = reader_steps[mul.out[0]].size() == 1 ? reader_steps[mul.out[0]][0] : -1;
    if (q < 0 || !single(q) || steps_[q].in[0] != mul.out[0] ||
        !int8_output_quantize(*graph_, *steps_[q].node))
      return false;
    Int8ScaleOperands ops{
        c->x.x,       c->x.x_scale,      c->x.x_zero_point,        sc.x.x,
        sc.x.x_scale, sc.x.x_zero_point, steps_[q].node->input(1), steps_[q].node->input(2)};
    install_chain(k, std::make_shared<Int8ChannelScale>(ops, c->fx, std::vector<PostOp>{gate}),
                  ops.names(), sc.steps, *c, {m, q});
    return true;
  };
  for (size_t k = 0; k < steps_.size(); ++k) {
    Step& st = steps_[k];
    if (st.frozen || st.out.size() != 1 || st.out[0] < 0) continue;
    if (st.node->op_type == "GlobalAveragePool") {
      // [x_q -> DequantizeLinear -> fx] -> GlobalAveragePool -> QuantizeLinear.
      std::optional<LevelsChain> c = st.in.size() == 1 ? levels_chain(st.in[0]) : std::nullopt;
      const int q = c ? sole_reader(st.out[0]) : -1;
      if (q < 0 || !int8_output_quantize(*graph_, *steps_[q].node)) continue;
      Int8PoolOperands ops = c->x;
      ops.y_scale = steps_[q].node->input(1);
      ops.y_zero_point = steps_[q].node->input(2);
      install_chain(k, std::make_shared<Int8GlobalAvgPool>(ops, c->fx), ops.names(), {}, *c, {q});
      continue;
    }
    if (st.node->op_type == "Add") {
      // A residual Add between int8 steps: [Relu] and a QuantizeLinear must follow.
      std::optional<Int8AddOperands> ops = match_int8_add(*graph_, *st.node, producer);
      if (!ops) continue;
      OutputSide o = output_side(st, /*relu_only=*/true);
      if (o.quantize < 0) continue;
      ops->y_scale = steps_[o.quantize].node->input(1);
      ops->y_zero_point = steps_[o.quantize].node->input(2);
      const bool relu = o.act.active();
      install(st, std::make_shared<Int8Add>(*ops, relu), ops->names(), 2, std::move(o));
      continue;
    }
    if (st.node->op_type == "MaxPool") {
      // DequantizeLinear -> MaxPool -> QuantizeLinear, nothing between.
      std::optional<Int8PoolOperands> ops = match_int8_maxpool(*graph_, *st.node, producer);
      if (!ops) continue;
      OutputSide o = output_side(st, /*relu_only=*/true);
      if (o.quantize < 0 || o.act.active()) continue;
      ops->y_scale = steps_[o.quantize].node->input(1);
      ops->y_zero_point = steps_[o.quantize].node->input(2);
      install(st, std::make_shared<Int8MaxPool>(*st.node, *ops), ops->names(), 1, std::move(o));
      continue;
    }
    if (std::optional<PostOp> f = elementwise_post_op(*graph_, *st.node)) {
      // DequantizeLinear -> f -> QuantizeLinear as a table of levels: one element-wise node, or
      // SiLU's Sigmoid and the Mul of the dequantized value by it.
      std::optional<Int8TableOperands> ops = match_int8_table(*graph_, *st.node, producer);
      if (!ops) continue;
      OutputSide o;
      std::vector<PostOp> fs{*f};
      int last = static_cast<int>(k);
      const std::vector<int>& xr = reader_steps[st.in[0]];
      if (f->kind == PostOp::Kind::kSigmoid && xr.size() == 2) {
        const int m = xr[0] == static_cast<int>(k) ? xr[1] : xr[0];
        const Step& mul = steps_[m];
        if (mul.node->op_type == "Mul" && !mul.frozen && mul.out.size() == 1 && mul.out[0] >= 0 &&
            m > static_cast<int>(k) && !pinned[st.out[0]] &&
            reader_steps[st.out[0]] == std::vector<int>{m} && mul.in.size() == 2 &&
            ((mul.in[0] == st.in[0] && mul.in[1] == st.out[0]) ||
             (mul.in[1] == st.in[0] && mul.in[0] == st.out[0]))) {
          fs = {PostOp{PostOp::Kind::kSwish}};
          o.after.push_back(m);
          o.inner.push_back(st.out[0]);
          last = m;
        }
      }
      const int q = sole_reader(steps_[last].out[0]);
      if (q < 0 || !int8_output_quantize(*graph_, *steps_[q].node)) {
        if (last == static_cast<int>(k)) match_channel_scale(k, *f);
        continue;
      }
      ops->y_scale = steps_[q].node->input(1);
      ops->y_zero_point = steps_[q].node->input(2);
      o.after.push_back(q);
      o.inner.push_back(steps_[last].out[0]);
      o.out = steps_[q].out[0];
      o.quantize = q;
      install(st, std::make_shared<Int8Table>(*ops, fs), ops->names(), 1, std::move(o));
      continue;
    }
    if (st.node->op_type != "Conv" && st.node->op_type != "Gemm") continue;
    std::optional<Int8Operands> ops = match_int8_operands(*graph_, *st.node, producer);
    if (!ops) continue;
    OutputSide o = output_side(st, /*relu_only=*/false);
    if (o.quantize >= 0) {
      ops->y_scale = steps_[o.quantize].node->input(1);
      ops->y_zero_point = steps_[o.quantize].node->input(2);
    }
    const FusedActivation act = o.act;
    install(st, std::make_shared<OneDnnInt8>(*st.node, *ops, act), ops->names(), 3, std::move(o));
  }
  // A step an int8 step reads past (a DequantizeLinear, or the activation between it and a
  // squeeze-excitation block) may be skipped when every reader of its output is an int8 step that
  // reads past it, a step whose work one of those does, or another such skippable step read past
  // by no other int8 steps. Later steps first: a chain's activation is decided before its
  // DequantizeLinear.
  std::vector<std::vector<int>> past(steps_.size());
  for (size_t r = 0; r < steps_.size(); ++r)
    if (steps_[r].int8)
      for (int b : steps_[r].int8_before) past[b].push_back(static_cast<int>(r));
  for (size_t k = steps_.size(); k-- > 0;) {
    Step& st = steps_[k];
    if (past[k].empty() || st.out.size() != 1 || st.out[0] < 0) continue;
    const int s = st.out[0];
    if (pinned[s] || reader_steps[s].empty()) continue;
    auto in_past = [&](int r) {
      return std::find(past[k].begin(), past[k].end(), r) != past[k].end();
    };
    bool all = true;
    for (int r : reader_steps[s]) {
      if (in_past(r)) continue;
      const bool done_by_past = std::any_of(past[k].begin(), past[k].end(), [&](int p) {
        const auto& after = steps_[p].int8_after;
        return std::find(after.begin(), after.end(), r) != after.end();
      });
      const auto& rr = steps_[r].int8_readers;
      const bool skipped_with = !rr.empty() && std::all_of(rr.begin(), rr.end(), in_past);
      all = all && (done_by_past || skipped_with);
    }
    if (all) st.int8_readers = past[k];
  }
}

void Executor::release_packed_weights(size_t k, std::vector<at::Tensor>& slots) {
  const int operand = steps_[k].int8->packed_operand();
  if (operand < 0) return;
  const int w = steps_[k].int8_in[operand];
  if (w < 0 || (!released_.empty() && released_[w])) return;
  auto init = std::find_if(init_slots_.begin(), init_slots_.end(),
                           [&](const auto& e) { return e.first == w; });
  if (init == init_slots_.end() || graph_->is_output(init->second)) return;
  // Every step reading the weights must be a DequantizeLinear read past only by int8 steps that
  // have packed them.
  std::vector<Int8Step*> packers;
  for (const Step& st : steps_) {
    if (std::find(st.in.begin(), st.in.end(), w) == st.in.end()) continue;
    if (st.node->op_type != "DequantizeLinear" || st.int8_readers.empty() ||
        std::find(output_slots_.begin(), output_slots_.end(), st.out[0]) != output_slots_.end())
      return;
    for (const Step& other : steps_)
      if (&other != &st &&
          std::find(other.in.begin(), other.in.end(), st.out[0]) != other.in.end() &&
          std::find(st.int8_readers.begin(), st.int8_readers.end(), &other - steps_.data()) ==
              st.int8_readers.end())
        return;  // a step that is not one of its int8 readers (SiLU's Mul and the like)
    for (int r : st.int8_readers) {
      const Step& reader = steps_[r];
      const int p = reader.int8->packed_operand();
      if (p < 0 || reader.int8_in[p] != w) return;
      packers.push_back(reader.int8.get());
    }
  }
  if (packers.empty()) return;
  for (Int8Step* p : packers) p->release_packed();
  if (released_.empty()) released_.assign(num_slots_, false);
  released_[w] = true;
  slots[w].reset();
  graph_->initializers[init->second] = at::Tensor();
}

void Executor::check_input(const ValueInfo& info, const at::Tensor& t) const {
  SLIM_CHECK(t.defined(), "input '", info.name, "' was not given");
  SLIM_CHECK(t.scalar_type() == info.dtype, "input '", info.name, "' expects ",
             dtype_name(info.dtype), ", got ", dtype_name(t.scalar_type()));
  if (!info.has_shape) return;
  std::string want = info.shape_str();
  SLIM_CHECK(t.dim() == static_cast<int64_t>(info.shape.size()), "input '", info.name,
             "' expects rank ", info.shape.size(), " (shape ", want, "), got rank ", t.dim(),
             " (shape ", shape_to_string(t.sizes().vec()), ")");
  for (int64_t d = 0; d < t.dim(); ++d)
    SLIM_CHECK(info.shape[d] == kDynamicDim || info.shape[d] == t.size(d), "input '", info.name,
               "' expects shape ", want, ", got ", shape_to_string(t.sizes().vec()), " (dim ", d,
               " must be ", info.shape[d], ")");
}

std::vector<at::Tensor> Executor::execute(std::vector<at::Tensor> slots,
                                          const std::vector<int>& keep) {
  for (const auto& [s, name] : init_slots_) slots[s] = graph_->initializers.at(name);
  // `kept`: values that must be computed as written (nothing fused past them); `held`: values
  // the caller fetches, never released. Recording shapes, every value is computed as written.
  std::vector<bool> held(num_slots_, false);
  for (int s : keep) held[s] = true;
  std::vector<bool> kept = shapes_ ? std::vector<bool>(num_slots_, true) : held;
  // Steps whose work a conv's post-ops already did.
  std::vector<bool> done_by_conv(steps_.size(), false);
  // Steps not run (yet): DequantizeLinear read past by int8 steps, and the activation and
  // QuantizeLinear steps whose work an int8 step did.
  std::vector<bool> skip(steps_.size(), false), pending(steps_.size(), false);
  // Concat steps a BatchNormalization step will do (Step::bn_concat), not run yet.
  std::vector<bool> concat_pending(steps_.size(), false);
  // Int8 steps this run may use: not in training, none of the values they skip fetched.
  std::vector<bool> int8_on(steps_.size(), false);
  if (!training_) {
    for (size_t k = 0; k < steps_.size(); ++k) {
      const Step& st = steps_[k];
      if (!st.int8) continue;
      int8_on[k] =
          std::none_of(st.int8_inner.begin(), st.int8_inner.end(), [&](int s) { return kept[s]; });
    }
    for (size_t k = 0; k < steps_.size(); ++k) {
      const Step& st = steps_[k];
      skip[k] = !st.int8_readers.empty() && !kept[st.out[0]] &&
                std::all_of(st.int8_readers.begin(), st.int8_readers.end(),
                            [&](int r) { return int8_on[r]; });
    }
  }
  onednn_runs_ = 0;
  int8_runs_ = 0;
  auto release = [&](const Step& step) {
    for (int s : step.free_after)
      if (!held[s]) slots[s].reset();
  };
  const char* engine = "aten";  // how the current step ran, for the profile
  // Operand vectors reused from step to step: at batch 1 two allocations a step were a few
  // percent of a run.
  std::vector<at::Tensor> in_buf, out_buf;
  auto run_step = [&](size_t k) {
    Step& step = steps_[k];
    const bool training = training_ && !step.frozen;
    KernelContext ctx{*step.node, std::move(in_buf), std::move(out_buf), training, graph_->opset};
    ctx.inplace_in_training = step.inplace_in_training;
    ctx.in.reserve(step.in.size());
    for (size_t i = 0; i < step.in.size(); ++i) {
      int s = step.in[i];
      SLIM_CHECK(s < 0 || released_.empty() || !released_[s], step.node->label(), " reads '",
                 step.node->inputs[i], "', freed after an int8 step packed it (a run with ",
                 "another input shape or type, or fetching intermediate values, after the ",
                 "weights were released)");
      if (s < 0)
        ctx.in.emplace_back();
      else if (step.hand_over[i] && !held[s])
        ctx.in.push_back(std::move(slots[s]));
      else
        ctx.in.push_back(slots[s]);
    }
    ctx.out.resize(step.out.size());
    int first_out = step.out.empty() ? -1 : step.out[0];  // the post-ops' slot when they ran
    try {
      if ((step.onednn || step.bn) && !training) {
        const bool fuse = !step.post.empty() && std::none_of(step.post_inner.begin(),
                                                             step.post_inner.end(),
                                                             [&](int s) { return kept[s]; });
        static const std::vector<PostOp> kNone;
        const std::vector<PostOp>& post = fuse ? step.post : kNone;
        at::Tensor sum;
        if (fuse && step.post_sum >= 0)
          sum = step.post_sum_owned && !kept[step.post_sum] ? std::move(slots[step.post_sum])
                                                             : slots[step.post_sum];
        bool done = false;
        if (step.bn && step.bn_concat >= 0 && concat_pending[step.bn_concat]) {
          // The Concat was skipped: its inputs are still in their slots.
          const Step& cat = steps_[step.bn_concat];
          concat_pending[step.bn_concat] = false;
          std::vector<at::Tensor> parts;
          for (int s : cat.in) parts.push_back(slots[s]);
          done = step.bn->run_concat(ctx, parts, post);
          if (!done) {
            KernelContext cc{*cat.node, std::move(parts), {at::Tensor()}, false, graph_->opset};
            cat.kernel(cc);
            ctx.in[0] = std::move(cc.out[0]);
          }
        }
        if (done) {
          engine = "slim";
        } else if (step.bn) {
          if (step.bn->run(ctx, post)) {
            engine = "slim";
          } else {
            step.kernel(ctx);
            ctx.out[0] = apply_post_ops(ctx.out[0], post, sum);
          }
        } else if (step.onednn->run(ctx, post, sum)) {
          ++onednn_runs_;
          engine = "onednn";
        } else {
          step.kernel(ctx);
          ctx.out[0] = apply_post_ops(ctx.out[0], post, sum);
        }
        if (fuse) {
          for (int a : step.post_steps) done_by_conv[a] = true;
          first_out = step.post_out;
        }
      } else if (step.onednn_gemm && !training && step.onednn_gemm->run(ctx)) {
        engine = "onednn";
      } else {
        step.kernel(ctx);
      }
    } catch (const Error&) {
      throw;
    } catch (const std::exception& e) {
      // ATen errors carry long backtraces; keep the first line and name the node.
      const std::string msg = error_brief(e);
      std::string shapes;
      for (size_t k = 0; k < ctx.in.size(); ++k)
        shapes += (k ? ", " : "") + (ctx.in[k].defined() ? shape_to_string(ctx.in[k].sizes().vec())
                                                         : std::string("_"));
      SLIM_FAIL(step.node->label(), " failed on inputs (", shapes, "): ", msg);
    }
    for (size_t k = 0; k < step.out.size(); ++k) {
      const int slot = k == 0 ? first_out : step.out[k];
      if (slot < 0) continue;
      SLIM_ASSERT(ctx.out[k].defined() || step.node->outputs[k].empty(), step.node->label(),
                  " did not produce output #", k);
      if (shapes_ && ctx.out[k].defined())
        (*shapes_)[step.node->outputs[k]] = {ctx.out[k].sizes().vec(), ctx.out[k].scalar_type()};
      slots[slot] = std::move(ctx.out[k]);
    }
    release(step);
    ctx.in.clear();
    ctx.out.clear();
    in_buf = std::move(ctx.in);
    out_buf = std::move(ctx.out);
  };
  std::vector<at::Tensor> int8_buf;  // an int8 step's operands, reused likewise
  for (size_t k = 0; k < steps_.size(); ++k) {
    Step& step = steps_[k];
    if (skip[k]) {
      pending[k] = !step.int8_readers.empty();
      release(step);
      continue;
    }
    if (done_by_conv[k]) {
      release(step);
      continue;
    }
    if (step.concat_into_bn >= 0 && !training_ && !kept[step.out[0]]) {
      concat_pending[k] = true;
      release(step);
      continue;
    }
    const auto t0 =
        profiling_ ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point();
    engine = "aten";
    auto record = [&] {
      if (!profiling_) return;
      NodeTime& t = profile_[k];
      t.total_ms +=
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      ++t.runs;
      t.engine = engine;
    };
    if (int8_on[k]) {
      std::vector<at::Tensor>& in = int8_buf;
      in.assign(step.int8_in.size(), at::Tensor());
      for (size_t i = 0; i < in.size(); ++i)
        if (step.int8_in[i] >= 0) in[i] = slots[step.int8_in[i]];
      at::Tensor y;
      bool done;
      try {
        done = step.int8->run(in, y);
      } catch (const Error&) {
        throw;
      } catch (const std::exception& e) {
        SLIM_FAIL(step.node->label(), " failed in its int8 kernel: ", error_brief(e));
      }
      in.clear();  // no references held past the step (in-place kernels, freed weights)
      if (done) {
        ++int8_runs_;
        slots[step.int8_out] = std::move(y);
        if (release_weights_) release_packed_weights(k, slots);
        for (int a : step.int8_after) skip[a] = true;
        release(step);
        engine = "int8";
        record();
        continue;
      }
      // Falls back to the original nodes: the DequantizeLinear steps it skipped run now.
      for (int p : step.int8_before)
        if (pending[p]) {
          pending[p] = false;
          run_step(p);
        }
    }
    run_step(k);
    record();
  }
  // Values computed in NHWC (oneDNN convs) go out in the default layout.
  std::vector<at::Tensor> result;
  for (int s : keep) {
    const at::Tensor& t = slots[s];
    bool nhwc = t.defined() && t.dim() == 4 && !t.is_contiguous() &&
                t.is_contiguous(at::MemoryFormat::ChannelsLast);
    result.push_back(nhwc ? t.contiguous() : t);
  }
  return result;
}

std::vector<at::Tensor> Executor::run(const std::vector<at::Tensor>& inputs) {
  if (inputs.size() != graph_->inputs.size()) {
    std::string want;
    for (const auto& i : graph_->inputs)
      want += (want.empty() ? "'" : ", '") + i.name + "' " + dtype_name(i.dtype) + "[" +
              i.shape_str() + "]";
    SLIM_FAIL("graph '", graph_->name, "' takes ", graph_->inputs.size(), " input(s) (", want,
              "), got ", inputs.size());
  }
  std::vector<at::Tensor> slots(num_slots_);
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (check_inputs_) check_input(graph_->inputs[i], inputs[i]);
    slots[input_slots_[i]] = inputs[i];
  }
  // Inference mode skips autograd bookkeeping (version counters, view tracking) entirely.
  c10::InferenceMode inference(!training_);
  at::AutoGradMode grad_mode(training_);
  return execute(std::move(slots), output_slots_);
}

std::map<std::string, at::Tensor> Executor::run_named(
    const std::map<std::string, at::Tensor>& inputs, const std::vector<std::string>& fetch) {
  std::vector<at::Tensor> slots(num_slots_);
  for (size_t i = 0; i < graph_->inputs.size(); ++i) {
    const auto& info = graph_->inputs[i];
    auto it = inputs.find(info.name);
    SLIM_CHECK(it != inputs.end(), "input '", info.name, "' was not given");
    if (check_inputs_) check_input(info, it->second);
    slots[input_slots_[i]] = it->second;
  }
  for (const auto& [name, t] : inputs)
    SLIM_CHECK(graph_->is_input(name), "'", name, "' is not an input of graph '", graph_->name,
               "'");
  std::vector<std::string> names = fetch;
  if (names.empty())
    for (const auto& o : graph_->outputs) names.push_back(o.name);
  std::vector<int> keep;
  for (const auto& n : names) {
    auto it = slot_of_.find(n);
    SLIM_CHECK(it != slot_of_.end(), "value '", n, "' does not exist in graph '", graph_->name,
               "'");
    keep.push_back(it->second);
  }
  c10::InferenceMode inference(!training_);
  at::AutoGradMode grad_mode(training_);
  auto vals = execute(std::move(slots), keep);
  std::map<std::string, at::Tensor> out;
  for (size_t k = 0; k < names.size(); ++k) out[names[k]] = vals[k];
  return out;
}

}  // namespace slim
