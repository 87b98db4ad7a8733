#include "slim/dist/dist.h"

#include <c10/util/Exception.h>
#include <glog/logging.h>
#include <torch/csrc/autograd/custom_function.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include "slim/ir/digest.h"
#include "slim/ir/error.h"
#include "slim/onnx/onnx_io.h"

namespace slim::dist {

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

std::vector<uint8_t> bytes(const std::string& s) { return {s.begin(), s.end()}; }
std::string text(const std::vector<uint8_t>& b) { return {b.begin(), b.end()}; }

std::string seconds(milliseconds t) {
  char s[32];
  std::snprintf(s, sizeof s, "%g s", static_cast<double>(t.count()) / 1000.0);
  return s;
}

bool parse_int(const char* v, long long* out) {
  if (!v || !*v) return false;
  char* end = nullptr;
  errno = 0;
  long long x = std::strtoll(v, &end, 10);
  if (errno != 0 || *end != '\0') return false;
  *out = x;
  return true;
}

bool is_loopback(const std::string& addr) {
  return addr == "localhost" || addr.rfind("127.", 0) == 0 || addr == "::1";
}

std::string host_name() {
  char h[256] = {0};
  ::gethostname(h, sizeof h - 1);
  return h;
}

c10::intrusive_ptr<c10d::Store> connect_store(const Env& env, bool server, uint16_t port) {
  c10d::TCPStoreOptions so;
  so.port = port;
  so.isServer = server;
  so.waitWorkers = false;
  so.timeout = env.timeout;
  return c10::make_intrusive<c10d::TCPStore>(env.master_addr, so);
}

std::string run_prefix(const Env& env) { return "slim/" + std::to_string(env.restart_count) + "/"; }

}  // namespace

Env env_from(const std::function<const char*(const char*)>& get_fn) {
  auto get = [&](const char* name) -> const char* {
    const char* v = get_fn ? get_fn(name) : std::getenv(name);
    return v && *v ? v : nullptr;
  };
  auto integer = [&](const char* name, long long def, long long lo, long long hi) -> int {
    const char* v = get(name);
    if (!v) return static_cast<int>(def);
    long long x = 0;
    SLIM_CHECK(parse_int(v, &x) && x >= lo && x <= hi, "environment variable ", name, "='", v,
               "' is not an integer in [", lo, ", ", hi, "]");
    return static_cast<int>(x);
  };
  Env e;
  const char* rank = get("RANK");
  const char* world = get("WORLD_SIZE");
  if (!rank && !world) return e;
  SLIM_CHECK(world, "environment variable RANK='", rank,
             "' is set but WORLD_SIZE is not: set both (slim launch and torchrun do), or neither "
             "for one process");
  SLIM_CHECK(rank, "environment variable WORLD_SIZE='", world,
             "' is set but RANK is not: set both (slim launch and torchrun do), or neither for "
             "one process");
  e.world_size = integer("WORLD_SIZE", 1, 1, 1 << 20);
  e.rank = integer("RANK", 0, 0, 1 << 20);
  SLIM_CHECK(e.rank < e.world_size, "environment variable RANK='", rank,
             "' must be below WORLD_SIZE='", world, "'");
  e.local_world_size = integer("LOCAL_WORLD_SIZE", 1, 1, e.world_size);
  e.local_rank = integer("LOCAL_RANK", 0, 0, e.world_size - 1);
  SLIM_CHECK(e.local_rank < e.local_world_size || !get("LOCAL_WORLD_SIZE"),
             "environment variable LOCAL_RANK='", get("LOCAL_RANK"),
             "' must be below LOCAL_WORLD_SIZE='", get("LOCAL_WORLD_SIZE"), "'");
  if (const char* t = get("SLIM_DIST_TIMEOUT")) {
    char* end = nullptr;
    double s = std::strtod(t, &end);
    SLIM_CHECK(*end == '\0' && s > 0 && s < 1e7, "environment variable SLIM_DIST_TIMEOUT='", t,
               "' is not a number of seconds > 0");
    e.timeout = milliseconds(static_cast<int64_t>(s * 1000.0));
  }
  if (const char* a = get("TORCHELASTIC_USE_AGENT_STORE"))
    e.agent_store = std::string(a) == "True" || std::string(a) == "true" || std::string(a) == "1";
  e.restart_count = integer("TORCHELASTIC_RESTART_COUNT", 0, 0, 1 << 20);
  e.active = e.world_size > 1;
  if (!e.active) return e;
  const char* addr = get("MASTER_ADDR");
  SLIM_CHECK(addr, "WORLD_SIZE='", world,
             "' but environment variable MASTER_ADDR is not set: the address of rank 0's host");
  e.master_addr = addr;
  SLIM_CHECK(get("MASTER_PORT"), "WORLD_SIZE='", world,
             "' but environment variable MASTER_PORT is not set: a free TCP port on rank 0's "
             "host (torchrun's default is 29500)");
  e.master_port = integer("MASTER_PORT", 0, 1, 65535);
  return e;
}

// ---------------------------------------------------------------------------------------------
// Identity

std::string Identity::to_text() const {
  nlohmann::json j;
  j["args"] = args;
  nlohmann::json f = nlohmann::json::array();
  for (const auto& [path, d] : files) f.push_back({path, d});
  j["files"] = f;
  return j.dump();
}

Identity Identity::from_text(const std::string& t) {
  Identity id;
  auto j = nlohmann::json::parse(t);
  id.args = j.at("args").get<std::vector<std::string>>();
  for (const auto& f : j.at("files")) id.files.emplace_back(f[0], f[1]);
  return id;
}

std::string Identity::differs(const Identity& o, int my_rank, int other_rank) const {
  auto quote = [](const std::vector<std::string>& a) {
    std::string s;
    for (const auto& x : a) s += (s.empty() ? "" : " ") + x;
    return s;
  };
  if (args != o.args) {
    size_t i = 0;
    while (i < args.size() && i < o.args.size() && args[i] == o.args[i]) ++i;
    std::string mine = i < args.size() ? "'" + args[i] + "'" : "nothing";
    std::string theirs = i < o.args.size() ? "'" + o.args[i] + "'" : "nothing";
    return "rank " + std::to_string(other_rank) + " runs a different command from rank " +
           std::to_string(my_rank) + ": argument " + std::to_string(i + 1) + " is " + theirs +
           " there and " + mine + " here (rank " + std::to_string(other_rank) + ": '" +
           quote(o.args) + "')";
  }
  std::map<std::string, std::string> theirs(o.files.begin(), o.files.end());
  for (const auto& [path, d] : files) {
    auto it = theirs.find(path);
    if (it != theirs.end() && it->second != d)
      return "rank " + std::to_string(other_rank) + "'s '" + path +
             "' is not the same file as rank " + std::to_string(my_rank) + "'s (size:digest " +
             it->second + " vs " + d + ")";
  }
  return "";
}

Identity identity_of(const std::vector<std::string>& args) {
  Identity id;
  id.args = args;
  for (const auto& a : args) {
    std::string path = a;
    if (a.size() > 1 && a[0] == '-' && a.find('=') != std::string::npos)
      path = a.substr(a.find('=') + 1);
    std::error_code ec;
    if (path.empty() || !std::filesystem::is_regular_file(path, ec)) continue;
    std::string content;
    try {
      content = read_file(path);
    } catch (const Error&) {
      continue;  // unreadable here: the command reports it with its own message
    }
    id.files.emplace_back(path, std::to_string(content.size()) + ":" + digest_hex(content));
  }
  return id;
}

std::pair<int64_t, int64_t> split_range(int64_t n, int rank, int world) {
  const int64_t base = n / world, extra = n % world;
  const int64_t begin = rank * base + std::min<int64_t>(rank, extra);
  return {begin, begin + base + (rank < extra ? 1 : 0)};
}

// ---------------------------------------------------------------------------------------------
// Group

struct Group::Impl {
  c10::intrusive_ptr<c10d::Store> store;     // this run's keys
  c10::intrusive_ptr<c10d::Store> hb_store;  // the heartbeat thread's own connection
  c10::intrusive_ptr<c10d::ProcessGroupGloo> pg;
  std::string store_where;  // "the store at A:P (hosted by rank 0)"
  bool hosting = false;
  std::vector<std::string> who;  // "pid 123 on host" per rank
  std::thread heartbeat;
  std::mutex m;
  std::condition_variable cv;
  bool stop = false;
  std::atomic<bool> failing{false};
  std::vector<int64_t> seen_beat;
  std::vector<Clock::time_point> seen_at;
  std::mutex store_mutex;  // the main connection is used from the caller's thread only, but
                           // report_failure may come from any
};

void quiet_c10d_logging() {
  // c10d logs its own view of a failure (socket timeouts, Gloo errors) through glog; Slim's
  // error names the rank and the cause in one line instead.
  fLI::FLAGS_minloglevel = std::max<int32_t>(fLI::FLAGS_minloglevel, google::GLOG_FATAL);
}

std::shared_ptr<Group> Group::join(const Env& env, const Identity& id) {
  SLIM_CHECK(env.active, "not a distributed run (WORLD_SIZE is 1 or unset)");
  quiet_c10d_logging();
  std::shared_ptr<Group> g(new Group());
  g->env_ = env;
  g->impl_ = std::make_unique<Impl>();
  Impl& im = *g->impl_;
  const std::string where = env.master_addr + ":" + std::to_string(env.master_port);
  im.hosting = env.rank == 0 && !env.agent_store;
  im.store_where = "the store at MASTER_ADDR:MASTER_PORT=" + where +
                   (env.agent_store ? " (hosted by the launcher)" : " (hosted by rank 0)");
  const std::string me = "rank " + std::to_string(env.rank);
  c10::intrusive_ptr<c10d::Store> raw;
  try {
    raw = connect_store(env, im.hosting, static_cast<uint16_t>(env.master_port));
    im.hb_store = c10::make_intrusive<c10d::PrefixStore>(
        run_prefix(env), connect_store(env, false, static_cast<uint16_t>(env.master_port)));
  } catch (const std::exception& e) {
    if (im.hosting)
      SLIM_FAIL(me, " cannot host the store on MASTER_ADDR:MASTER_PORT=", where, ": ",
                error_brief(e));
    SLIM_FAIL(me, " cannot reach the master at MASTER_ADDR:MASTER_PORT=", where, " within ",
              seconds(env.timeout), " (", error_brief(e),
              "); is rank 0 (or slim launch) running there, and are the address and port right?");
  }
  im.store = c10::make_intrusive<c10d::PrefixStore>(run_prefix(env), raw);

  // Rendezvous: every rank posts who it is and what it runs, then checks all the others.
  nlohmann::json mine;
  mine["world_size"] = env.world_size;
  mine["who"] = "pid " + std::to_string(::getpid()) + " on " + host_name();
  mine["identity"] = id.to_text();
  try {
    int64_t n = im.store->add("joined/" + std::to_string(env.rank), 1);
    SLIM_CHECK(n == 1, "two processes started as RANK=", env.rank, " (WORLD_SIZE=", env.world_size,
               "); give each process its own rank");
    im.store->set("id/" + std::to_string(env.rank), bytes(mine.dump()));
    std::vector<nlohmann::json> ids(env.world_size);
    std::vector<bool> have(env.world_size, false);
    const auto deadline = Clock::now() + env.timeout;
    // Rank 0 first: a different WORLD_SIZE is then named before waiting for ranks that will
    // never come.
    for (int pass = 0;; ++pass) {
      bool all = true;
      for (int r = 0; r < env.world_size; ++r) {
        if (have[r]) continue;
        if (!im.store->check({"id/" + std::to_string(r)})) {
          all = false;
          if (r == 0) break;
          continue;
        }
        ids[r] = nlohmann::json::parse(text(im.store->get("id/" + std::to_string(r))));
        have[r] = true;
        const int w = ids[r]["world_size"].get<int>();
        SLIM_CHECK(w == env.world_size, "rank ", r, " (", ids[r]["who"].get<std::string>(),
                   ") has WORLD_SIZE=", w, " but ", me, " has WORLD_SIZE=", env.world_size,
                   "; start every rank with the same WORLD_SIZE");
      }
      if (all) break;
      if (Clock::now() > deadline) {
        std::string missing, joined;
        for (int r = 0; r < env.world_size; ++r)
          (have[r] ? joined : missing) +=
              (have[r] ? joined : missing).empty() ? std::to_string(r) : ", " + std::to_string(r);
        SLIM_FAIL(me, " waited ", seconds(env.timeout), " for rank(s) ", missing,
                  " to start (WORLD_SIZE=", env.world_size, "; started: ", joined,
                  "); start every rank, or raise --timeout");
      }
      std::this_thread::sleep_for(milliseconds(pass < 20 ? 10 : 50));
    }
    // Everyone compares everyone with rank 0, so every rank names the same odd one out.
    const Identity first = Identity::from_text(ids[0]["identity"].get<std::string>());
    for (int r = 1; r < env.world_size; ++r) {
      std::string why =
          first.differs(Identity::from_text(ids[r]["identity"].get<std::string>()), 0, r);
      SLIM_CHECK(why.empty(), why, " (", ids[r]["who"].get<std::string>(),
                 "); start every rank with the same command and files");
    }
    for (const auto& j : ids) im.who.push_back(j["who"].get<std::string>());
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    SLIM_FAIL(me, " lost ", im.store_where, " while the ranks were starting: ", error_brief(e));
  }

  // Heartbeat, and the watchdog: once any rank (or the launcher) records a failure, a rank that
  // is computing rather than communicating stops too, within a few seconds, naming it.
  im.heartbeat = std::thread([gp = g.get()] {
    Impl& im = *gp->impl_;
    const std::string key = "hb/" + std::to_string(gp->rank());
    Clock::time_point abort_seen{};
    std::unique_lock<std::mutex> lock(im.m);
    while (!im.stop) {
      lock.unlock();
      try {
        im.hb_store->add(key, 1);
        if (abort_seen == Clock::time_point{} && im.hb_store->check({"abort"}))
          abort_seen = Clock::now();
      } catch (const std::exception&) {
        // The store is gone; the main thread finds out at its next collective.
      }
      if (abort_seen != Clock::time_point{} && !im.failing &&
          Clock::now() - abort_seen > std::chrono::seconds(3)) {
        std::string msg;
        try {
          msg = text(im.hb_store->get("abort"));
        } catch (const std::exception&) {
          msg = "another rank failed";
        }
        std::fprintf(stderr, "slim: error: rank %d stops: %s\n", gp->rank(), msg.c_str());
        std::fflush(stderr);
        std::_Exit(1);
      }
      lock.lock();
      im.cv.wait_for(lock, std::chrono::seconds(1), [&] { return im.stop; });
    }
  });

  try {
    auto opts = c10d::ProcessGroupGloo::Options::create(env.timeout);
    if (const char* ifname = std::getenv("GLOO_SOCKET_IFNAME"))
      opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
    else if (is_loopback(env.master_addr))
      opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
    else
      opts->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
    opts->threads = 2;
    im.pg = c10::make_intrusive<c10d::ProcessGroupGloo>(
        c10::make_intrusive<c10d::PrefixStore>("gloo/", im.store), env.rank, env.world_size, opts);
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    g->fail("connecting the ranks", e);
  }
  return g;
}

Group::~Group() {
  if (!impl_) return;
  {
    std::lock_guard<std::mutex> lock(impl_->m);
    impl_->stop = true;
  }
  impl_->cv.notify_all();
  if (impl_->heartbeat.joinable()) impl_->heartbeat.join();
  if (!impl_->store) return;  // never joined
  // Rank 0 hosts the store: it stays until every rank has left (or failed), so that no rank
  // loses the store it still needs, and a failure's message stays readable.
  try {
    impl_->store->set("left/" + std::to_string(rank()), bytes("1"));
    impl_->store->add("left", 1);
    if (impl_->hosting) {
      const auto start = Clock::now();
      while (Clock::now() < start + std::min(env_.timeout, milliseconds(30000))) {
        int64_t done = impl_->store->add("left", 0);
        if (done >= env_.world_size) break;
        // After a failure the others need the store only to read why: a few seconds.
        if (Clock::now() > start + milliseconds(5000) && impl_->store->check({"abort"})) break;
        std::this_thread::sleep_for(milliseconds(20));
      }
    }
  } catch (const std::exception&) {
  }
  impl_->pg.reset();
}

c10::intrusive_ptr<c10d::ProcessGroup> Group::process_group() const { return impl_->pg; }

void Group::set(const std::string& key, const std::string& value) {
  try {
    impl_->store->set("user/" + key, bytes(value));
  } catch (const std::exception& e) {
    fail("storing '" + key + "'", e);
  }
}

std::string Group::get(const std::string& key) {
  try {
    return text(impl_->store->get("user/" + key));
  } catch (const std::exception& e) {
    fail("reading '" + key + "'", e);
  }
}

bool Group::check(const std::string& key) {
  try {
    return impl_->store->check({"user/" + key});
  } catch (const std::exception& e) {
    fail("reading '" + key + "'", e);
  }
}

int64_t Group::add(const std::string& key, int64_t delta) {
  try {
    return impl_->store->add("user/" + key, delta);
  } catch (const std::exception& e) {
    fail("counting '" + key + "'", e);
  }
}

void Group::erase(const std::string& key) {
  try {
    impl_->store->deleteKey("user/" + key);
  } catch (const std::exception& e) {
    fail("erasing '" + key + "'", e);
  }
}

std::string Group::wait_for(const std::string& key, const std::string& what) {
  auto last = Clock::now();
  while (!check(key)) {
    std::this_thread::sleep_for(milliseconds(20));
    if (Clock::now() - last > std::chrono::seconds(2)) {
      check_peers(what);
      last = Clock::now();
    }
  }
  return get(key);
}

namespace {

/// Tensors flattened per dtype into one buffer each (Gloo reduces a list of tensors as copies
/// of one tensor on several devices, so a list of different parameters must become one).
template <typename Op>
void flat_apply(std::vector<at::Tensor>& tensors, Op op) {
  std::map<at::ScalarType, std::vector<size_t>> by_type;
  for (size_t i = 0; i < tensors.size(); ++i) by_type[tensors[i].scalar_type()].push_back(i);
  for (auto& [type, idx] : by_type) {
    std::vector<at::Tensor> flat;
    for (size_t i : idx) flat.push_back(tensors[i].detach().reshape({-1}));
    at::Tensor buf = idx.size() == 1 ? flat[0].contiguous().clone() : at::cat(flat);
    op(buf);
    int64_t off = 0;
    for (size_t i : idx) {
      const int64_t n = tensors[i].numel();
      at::NoGradGuard ng;
      tensors[i].copy_(buf.narrow(0, off, n).view(tensors[i].sizes()));
      off += n;
    }
  }
}

}  // namespace

void Group::all_reduce_sum(std::vector<at::Tensor>& tensors, const std::string& what) {
  try {
    flat_apply(tensors, [&](at::Tensor& buf) {
      std::vector<at::Tensor> one{buf};
      impl_->pg->allreduce(one)->wait();
    });
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    fail(what, e);
  }
}

void Group::broadcast(std::vector<at::Tensor>& tensors, int root, const std::string& what) {
  try {
    flat_apply(tensors, [&](at::Tensor& buf) {
      std::vector<at::Tensor> one{buf};
      c10d::BroadcastOptions o;
      o.rootRank = root;
      impl_->pg->broadcast(one, o)->wait();
    });
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    fail(what, e);
  }
}

void Group::barrier(const std::string& what) {
  try {
    impl_->pg->barrier()->wait();
  } catch (const std::exception& e) {
    fail(what, e);
  }
}

void Group::check_peers(const std::string& what) {
  Impl& im = *impl_;
  const auto now = Clock::now();
  if (im.seen_beat.empty()) {
    im.seen_beat.assign(size(), -1);
    im.seen_at.assign(size(), now);
  }
  try {
    for (int r = 0; r < size(); ++r) {
      if (r == rank()) continue;
      const int64_t b = im.store->add("hb/" + std::to_string(r), 0);
      if (b != im.seen_beat[r]) {
        im.seen_beat[r] = b;
        im.seen_at[r] = now;
      } else if (now - im.seen_at[r] > std::chrono::seconds(10) &&
                 !im.store->check({"left/" + std::to_string(r)})) {
        throw std::runtime_error("no heartbeat from rank " + std::to_string(r) + " for 10 s");
      }
    }
  } catch (const std::exception& e) {
    fail(what, e);
  }
}

void Group::report_failure(const std::string& message) noexcept {
  impl_->failing = true;
  try {
    std::string msg = "rank " + std::to_string(rank()) + " (" +
                      (rank() < static_cast<int>(impl_->who.size()) ? impl_->who[rank()] : "") +
                      ") failed: " + message;
    std::lock_guard<std::mutex> lock(impl_->store_mutex);
    impl_->store->set("failed/" + std::to_string(rank()), bytes(msg));
    if (!impl_->store->check({"abort"})) impl_->store->set("abort", bytes(msg));
  } catch (const std::exception&) {
  }
}

void Group::fail(const std::string& what, const std::exception& e) {
  impl_->failing = true;
  const std::string me = "rank " + std::to_string(rank());
  const std::string cause = error_brief(e);
  const bool timed_out =
      cause.find("imed out") != std::string::npos || cause.find("imeout") != std::string::npos;
  auto who = [&](int r) {
    return "rank " + std::to_string(r) +
           (r < static_cast<int>(impl_->who.size()) ? " (" + impl_->who[r] + ")" : "");
  };
  std::string found;
  try {
    // A rank that failed on its own (or that the launcher saw die) says so in the store; give
    // it a moment to get there, while the heartbeats show who else stopped.
    std::vector<int64_t> beats(size(), 0);
    for (int r = 0; r < size(); ++r) beats[r] = impl_->store->add("hb/" + std::to_string(r), 0);
    const auto until = Clock::now() + milliseconds(3500);
    while (found.empty() && Clock::now() < until) {
      if (impl_->store->check({"abort"})) found = text(impl_->store->get("abort"));
      for (int r = 0; r < size() && found.empty(); ++r)
        if (r != rank() && impl_->store->check({"failed/" + std::to_string(r)}))
          found = text(impl_->store->get("failed/" + std::to_string(r)));
      if (found.empty()) std::this_thread::sleep_for(milliseconds(100));
    }
    if (found.empty()) {
      std::string stopped;
      for (int r = 0; r < size(); ++r)
        if (r != rank() && impl_->store->add("hb/" + std::to_string(r), 0) == beats[r])
          stopped += (stopped.empty() ? "" : ", ") + who(r);
      if (!stopped.empty()) {
        found = "lost " + stopped + ": no heartbeat for 3.5 s (killed, or its host is down)";
        if (!impl_->store->check({"abort"})) impl_->store->set("abort", bytes(found));
      }
    }
  } catch (const std::exception&) {
    found = "lost " + impl_->store_where + (env_.agent_store ? "" : ": rank 0 is gone");
  }
  if (found.empty())
    found = timed_out ? "no rank reported a failure and every rank is alive: one is stuck or "
                        "runs different work (timeout " +
                            seconds(env_.timeout) + ")"
                      : "no rank reported a failure";
  std::string msg = me + ": " + what + " failed: " + found + " [" + cause + "]";
  try {
    std::lock_guard<std::mutex> lock(impl_->store_mutex);
    impl_->store->set("failed/" + std::to_string(rank()), bytes(msg));
  } catch (const std::exception&) {
  }
  throw Error(msg);
}

namespace {
std::shared_ptr<Group>& current_ptr() {
  static std::shared_ptr<Group> g;
  return g;
}
}  // namespace

Group* current() { return current_ptr().get(); }
void set_current(std::shared_ptr<Group> g) { current_ptr() = std::move(g); }

}  // namespace slim::dist

// ---------------------------------------------------------------------------------------------
// Gradient buckets

namespace slim::dist {

struct GradientAverager::Impl {
  Group* group = nullptr;
  std::vector<at::Tensor> params;
  std::vector<unsigned> hooks;
  struct Bucket {
    std::vector<size_t> members;  // parameter indices
    std::vector<int64_t> offsets;
    at::Tensor buf;
    size_t pending = 0;
    c10::intrusive_ptr<c10d::Work> work;
  };
  std::vector<Bucket> buckets;
  std::vector<std::pair<size_t, int64_t>> where;  // param -> (bucket, offset)
  std::vector<bool> got;
  size_t next_launch = 0;
  std::string error;

  void launch_ready() {
    while (next_launch < buckets.size() && buckets[next_launch].pending == 0) {
      Bucket& b = buckets[next_launch++];
      std::vector<at::Tensor> one{b.buf};
      b.work = group->process_group()->allreduce(one);
    }
  }
};

std::vector<std::vector<size_t>> gradient_buckets(const std::vector<int64_t>& numels,
                                                  size_t first_bucket_bytes, size_t bucket_bytes) {
  std::vector<std::vector<size_t>> buckets;
  size_t limit = first_bucket_bytes, bytes = 0;
  for (size_t k = numels.size(); k-- > 0;) {
    if (buckets.empty() || bytes >= limit) {
      if (!buckets.empty()) limit = bucket_bytes;
      buckets.emplace_back();
      bytes = 0;
    }
    buckets.back().push_back(k);
    bytes += static_cast<size_t>(numels[k]) * sizeof(float);
  }
  return buckets;
}

GradientAverager::GradientAverager(Group& group, std::vector<at::Tensor> params,
                                   size_t first_bucket_bytes, size_t bucket_bytes)
    : impl_(std::make_unique<Impl>()) {
  Impl& im = *impl_;
  im.group = &group;
  im.params = std::move(params);
  im.where.resize(im.params.size());
  std::vector<int64_t> numels;
  for (const auto& p : im.params) {
    SLIM_ASSERT(p.scalar_type() == at::kFloat, "gradient buckets hold float parameters");
    numels.push_back(p.numel());
  }
  for (const auto& members : gradient_buckets(numels, first_bucket_bytes, bucket_bytes)) {
    auto& b = im.buckets.emplace_back();
    int64_t off = 0;
    for (size_t k : members) {
      b.members.push_back(k);
      b.offsets.push_back(off);
      im.where[k] = {im.buckets.size() - 1, off};
      off += numels[k];
    }
  }
  for (auto& b : im.buckets)
    b.buf = at::zeros({b.offsets.back() + im.params[b.members.back()].numel()}, at::kFloat);
  im.got.assign(im.params.size(), false);
  for (size_t k = 0; k < im.params.size(); ++k) {
    Impl* ip = impl_.get();
    im.hooks.push_back(im.params[k].register_hook([ip, k](const at::Tensor& grad) {
      auto [bi, off] = ip->where[k];
      auto& b = ip->buckets[bi];
      at::NoGradGuard ng;
      b.buf.narrow(0, off, grad.numel()).copy_(grad.reshape({-1}));
      if (!ip->got[k]) {
        ip->got[k] = true;
        --b.pending;
      }
      try {
        ip->launch_ready();
      } catch (const std::exception& e) {
        ip->error = e.what();  // reported by finish(), outside autograd
      }
      return grad;
    }));
  }
  prepare();
}

GradientAverager::~GradientAverager() {
  for (size_t k = 0; k < impl_->params.size(); ++k) {
    try {
      impl_->params[k].remove_hook(impl_->hooks[k]);
    } catch (const std::exception&) {
    }
  }
}

void GradientAverager::prepare() {
  Impl& im = *impl_;
  for (auto& b : im.buckets) {
    b.pending = b.members.size();
    b.work.reset();
  }
  std::fill(im.got.begin(), im.got.end(), false);
  im.next_launch = 0;
  im.error.clear();
}

void GradientAverager::finish() {
  Impl& im = *impl_;
  try {
    if (!im.error.empty()) throw std::runtime_error(im.error);
    for (size_t k = 0; k < im.params.size(); ++k)
      if (!im.got[k]) {
        auto [bi, off] = im.where[k];
        im.buckets[bi].buf.narrow(0, off, im.params[k].numel()).zero_();
        im.got[k] = true;
        --im.buckets[bi].pending;
      }
    im.launch_ready();
    for (auto& b : im.buckets) b.work->wait();
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    im.group->fail("the gradient all-reduce", e);
  }
  const double inv = 1.0 / static_cast<double>(im.group->size());
  at::NoGradGuard ng;
  for (size_t k = 0; k < im.params.size(); ++k) {
    auto [bi, off] = im.where[k];
    at::Tensor avg =
        im.buckets[bi].buf.narrow(0, off, im.params[k].numel()).view(im.params[k].sizes()) * inv;
    im.params[k].mutable_grad() = avg;
  }
}

}  // namespace slim::dist

// ---------------------------------------------------------------------------------------------
// Synchronised BatchNormalization

namespace slim::dist {

namespace {

thread_local Group* sync_bn_group = nullptr;

struct AllReduceSum : public torch::autograd::Function<AllReduceSum> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x,
                            Group* group) {
    ctx->saved_data["group"] = reinterpret_cast<int64_t>(group);
    std::vector<at::Tensor> t{x.detach().clone()};
    group->all_reduce_sum(t, "synchronised BatchNormalization");
    return t[0];
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    auto* group = reinterpret_cast<Group*>(ctx->saved_data["group"].toInt());
    std::vector<at::Tensor> t{grads[0].contiguous().clone()};
    group->all_reduce_sum(t, "synchronised BatchNormalization (backward)");
    return {t[0], at::Tensor()};
  }
};

}  // namespace

at::Tensor all_reduce_sum_autograd(Group& group, const at::Tensor& x) {
  return AllReduceSum::apply(x, &group);
}

SyncBatchNormScope::SyncBatchNormScope(Group* group) : previous_(sync_bn_group) {
  sync_bn_group = group;
}
SyncBatchNormScope::~SyncBatchNormScope() { sync_bn_group = previous_; }
Group* SyncBatchNormScope::active() { return sync_bn_group; }

}  // namespace slim::dist
