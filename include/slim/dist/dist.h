#pragma once
/// Distributed runs on torch c10d with the Gloo backend: torchrun's environment (RANK,
/// WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT), a TCPStore for
/// rendezvous and small messages, ProcessGroupGloo for collectives. A Group checks at start that
/// every rank runs the same command on the same files, keeps a heartbeat per rank in the store
/// and turns a communication failure into one error naming the rank that was lost.
#include <c10/util/intrusive_ptr.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace c10d {
class ProcessGroup;
}  // namespace c10d

namespace slim::dist {

/// torchrun's variables. `active` is false when none of RANK/WORLD_SIZE is set (one process).
struct Env {
  bool active = false;
  int rank = 0, world_size = 1, local_rank = 0, local_world_size = 1;
  std::string master_addr;
  int master_port = 0;
  bool agent_store = false;  ///< TORCHELASTIC_USE_AGENT_STORE: the launcher hosts the store
  int restart_count = 0;     ///< TORCHELASTIC_RESTART_COUNT: keeps each attempt's keys apart
  std::chrono::milliseconds timeout{300000};  ///< SLIM_DIST_TIMEOUT (seconds), default 300
};

/// Reads and checks the variables through `get` (std::getenv by default). Errors name the
/// variable and its value: RANK without WORLD_SIZE, RANK >= WORLD_SIZE, a non-number,
/// WORLD_SIZE > 1 without MASTER_ADDR/MASTER_PORT, LOCAL_RANK >= LOCAL_WORLD_SIZE.
Env env_from(const std::function<const char*(const char*)>& get = nullptr);

/// What every rank must agree on: the command line and a digest of each file it names.
/// Files that exist on only one of two ranks are not compared (outputs of an earlier run).
struct Identity {
  std::vector<std::string> args;
  std::vector<std::pair<std::string, std::string>> files;  ///< (path, size:fnv1a64)
  std::string to_text() const;
  static Identity from_text(const std::string& text);
  /// "" if `other` (rank `other_rank`) agrees with this one, else why not (one line).
  std::string differs(const Identity& other, int my_rank, int other_rank) const;
};
/// The identity of a command line: its arguments, and the digest of each one (or the value
/// after '=' in --opt=value) that names an existing regular file.
Identity identity_of(const std::vector<std::string>& args);

/// One process's membership in a distributed run. Collectives are over every rank; they throw
/// slim::Error naming the lost or failing rank when a peer dies, hangs past the timeout or
/// reports an error.
class Group {
 public:
  /// Joins: connects to (or, on rank 0 without an agent store, hosts) the store at
  /// MASTER_ADDR:MASTER_PORT, waits for every rank within the timeout, checks that all run the
  /// same command (`id`), then builds the Gloo process group.
  static std::shared_ptr<Group> join(const Env& env, const Identity& id);
  ~Group();
  Group(const Group&) = delete;
  Group& operator=(const Group&) = delete;

  int rank() const { return env_.rank; }
  int size() const { return env_.world_size; }
  const Env& env() const { return env_; }
  std::chrono::milliseconds timeout() const { return env_.timeout; }

  /// In-place sum over ranks (float, double or int64 tensors, contiguous). `what` names the
  /// step in errors ("gradients", "evaluation").
  void all_reduce_sum(std::vector<at::Tensor>& tensors, const std::string& what);
  /// Copies rank `root`'s tensors to every rank.
  void broadcast(std::vector<at::Tensor>& tensors, int root, const std::string& what);
  void barrier(const std::string& what);

  /// Small values through the store (keys are prefixed per run).
  void set(const std::string& key, const std::string& value);
  std::string get(const std::string& key);  ///< waits up to the timeout
  bool check(const std::string& key);
  int64_t add(const std::string& key, int64_t delta);
  void erase(const std::string& key);
  /// Polls `key` every 20 ms until it exists (calling check_peers every 2 s): for ranks waiting
  /// on another's work rather than in a collective. No timeout of its own: a lost peer ends it.
  std::string wait_for(const std::string& key, const std::string& what);

  /// For ranks that wait on the store rather than in a collective: fails (naming it) if another
  /// rank's heartbeat has not moved for 10 s and it has not left. Cheap; call it while polling.
  void check_peers(const std::string& what);

  /// Tells the other ranks this one is about to fail with `message` (they name it).
  void report_failure(const std::string& message) noexcept;

  /// The Gloo process group (for c10d::Reducer).
  c10::intrusive_ptr<c10d::ProcessGroup> process_group() const;

  /// Turns an exception from a collective or the store into an Error naming the lost rank:
  /// a rank that reported a failure, else ranks whose heartbeat stopped, else the store's host.
  [[noreturn]] void fail(const std::string& what, const std::exception& e);

 private:
  Group() = default;
  struct Impl;
  Env env_;
  std::unique_ptr<Impl> impl_;
};

/// Keeps LibTorch's c10d from logging its own lines (through glog) for failures Slim reports.
void quiet_c10d_logging();

/// The process's group (nullptr when not distributed); the CLI sets it once.
Group* current();
void set_current(std::shared_ptr<Group> g);

/// Contiguous split of n items over `world` ranks: [begin, end) of `rank` (the first n % world
/// ranks get one more).
std::pair<int64_t, int64_t> split_range(int64_t n, int rank, int world);

}  // namespace slim::dist

namespace slim::dist {

/// The all-reduce buckets of parameters with `numels` float elements each: indices from the last
/// parameter back (the order backward produces gradients), a bucket closed once it holds at least
/// `first_bucket_bytes` (the first) or `bucket_bytes` (the others), as DDP groups them.
std::vector<std::vector<size_t>> gradient_buckets(const std::vector<int64_t>& numels,
                                                  size_t first_bucket_bytes = size_t{1} << 20,
                                                  size_t bucket_bytes = size_t{25} << 20);

/// Averages the gradients of `params` over the ranks, in buckets (the first ~1 MB, then ~25 MB,
/// last parameters first, as backward produces them): each bucket's all-reduce starts from a
/// gradient hook as soon as backward has filled it, overlapping the rest of backward.
class GradientAverager {
 public:
  GradientAverager(Group& group, std::vector<at::Tensor> params,
                   size_t first_bucket_bytes = size_t{1} << 20,
                   size_t bucket_bytes = size_t{25} << 20);
  ~GradientAverager();
  GradientAverager(const GradientAverager&) = delete;
  GradientAverager& operator=(const GradientAverager&) = delete;
  /// Call before each backward.
  void prepare();
  /// Call after backward: reduces what the hooks did not start (parameters without a
  /// gradient count as zero), waits, and sets every parameter's grad to the average.
  void finish();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// Sum over ranks that autograd differentiates: the gradient of each rank's input is the sum of
/// every rank's output gradient (what synchronised BatchNormalization's statistics need).
at::Tensor all_reduce_sum_autograd(Group& group, const at::Tensor& x);

/// While alive, BatchNormalization in executor training mode on this thread takes its batch
/// statistics over every rank's part of the global batch (SyncBatchNorm).
class SyncBatchNormScope {
 public:
  explicit SyncBatchNormScope(Group* group);
  ~SyncBatchNormScope();
  SyncBatchNormScope(const SyncBatchNormScope&) = delete;
  SyncBatchNormScope& operator=(const SyncBatchNormScope&) = delete;
  /// The group of the innermost live scope on this thread, or nullptr.
  static Group* active();

 private:
  Group* previous_;
};

}  // namespace slim::dist
