#include "nn/distributed/distributed.h"

#include <fmt/format.h>
#include <mpi.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <exception>
#include <sstream>

namespace ag::nn::distributed {

// ---- the process group ----

bool initialized() {
  int init = 0, fin = 0;
  MPI_Initialized(&init);
  MPI_Finalized(&fin);
  return init && !fin;
}

int rank() {
  if (!initialized()) return 0;
  int r = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  return r;
}

int world_size() {
  if (!initialized()) return 1;
  int n = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &n);
  return n;
}

void barrier() {
  if (initialized()) MPI_Barrier(MPI_COMM_WORLD);
}

bool launched_by_mpirun() {
  for (const char* var : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_SIZE", "PMI_RANK"})
    if (std::getenv(var)) return true;
  return false;
}

Environment::Environment() { init(nullptr, nullptr); }
Environment::Environment(int& argc, char**& argv) { init(&argc, &argv); }

void Environment::init(int* argc, char*** argv) {
  int done = 0;
  MPI_Initialized(&done);
  if (done) return;
  int fin = 0;
  MPI_Finalized(&fin);
  if (fin) fail<ValueError>("distributed::Environment: MPI was already finalised in this process");
  // Only the thread running backward calls MPI (the kernels' OpenMP threads never do).
  int provided = 0;
  MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
  owns_ = true;
}

Environment::~Environment() {
  // Finalising is collective: during an exception's unwinding, the other ranks may never get
  // there. Leave MPI as it is; run_or_abort (or the exit status) stops the job.
  if (owns_ && std::uncaught_exceptions() == 0 && initialized()) MPI_Finalize();
}

int run_or_abort(const std::string& program, const std::function<int()>& body) {
  try {
    return body();
  } catch (const std::exception& e) {
    int n = world_size();
    if (n > 1)
      fmt::print(stderr, "{}: rank {} of {}: error: {}\n", program, rank(), n, e.what());
    else
      fmt::print(stderr, "{}: error: {}\n", program, e.what());
    std::fflush(stderr);
    if (initialized() && n > 1) MPI_Abort(MPI_COMM_WORLD, 1);
    return 1;
  }
}

// ---- collectives ----

namespace {

MPI_Datatype float_type(const Tensor& t, const char* what) {
  if (t.dtype() == float32) return MPI_FLOAT;
  if (t.dtype() == float64) return MPI_DOUBLE;
  fail<DtypeError>("{}: float32 or float64 tensor expected, got {}", what, dtype_name(t.dtype()));
}

// The first byte of a contiguous tensor's elements.
void* first_byte(const Tensor& t) {
  switch (t.dtype()) {
    case Dtype::float32:
      return t.data<float>();
    case Dtype::float64:
      return t.data<double>();
    case Dtype::int64:
      return t.data<int64_t>();
    case Dtype::boolean:
      return t.data<bool>();
    case Dtype::bfloat16:
      return t.data<bf16>();
  }
  return nullptr;
}

// A contiguous copy of `t` that MPI may write into (the result goes back with copy_, which bumps
// the version counter as any in-place write does).
Tensor buffer_of(const Tensor& t) {
  NoGradGuard ng;
  return t.detach().contiguous().clone();
}

// Broadcasts a contiguous tensor's bytes from `root`, in chunks (MPI counts are int).
void broadcast_bytes(const Tensor& buf, int root) {
  auto bytes = static_cast<int64_t>(buf.numel() * static_cast<int64_t>(itemsize(buf.dtype())));
  auto* p = static_cast<char*>(first_byte(buf));
  for (int64_t done = 0; done < bytes;) {
    int chunk = static_cast<int>(std::min<int64_t>(bytes - done, int64_t{1} << 30));
    MPI_Bcast(p + done, chunk, MPI_BYTE, root, MPI_COMM_WORLD);
    done += chunk;
  }
}

// What every rank must agree on before a broadcast of `t`: dtype and shape.
std::string describe(const Tensor& t) {
  return fmt::format("{} {}", dtype_name(t.dtype()), t.shape());
}

// Broadcasts a string from rank 0.
std::string broadcast_string(std::string s) {
  uint64_t n = s.size();
  MPI_Bcast(&n, 1, MPI_UINT64_T, 0, MPI_COMM_WORLD);
  s.resize(n);
  MPI_Bcast(s.data(), static_cast<int>(n), MPI_CHAR, 0, MPI_COMM_WORLD);
  return s;
}

std::vector<std::string> lines(const std::string& s) {
  std::vector<std::string> r;
  std::istringstream in(s);
  for (std::string l; std::getline(in, l);) r.push_back(l);
  return r;
}

// Throws on every rank if any rank's description differs from rank 0's: the differing ranks list
// the differences, the others say that some rank differs.
void check_same_on_all_ranks(const std::string& mine, const std::string& what) {
  std::string root = broadcast_string(mine);
  std::vector<std::string> a = lines(mine), b = lines(root);
  std::vector<std::string> diffs;
  for (size_t i = 0; i < std::max(a.size(), b.size()); ++i) {
    std::string here = i < a.size() ? a[i] : "(nothing)";
    std::string there = i < b.size() ? b[i] : "(nothing)";
    if (here == there) continue;
    // "name: what" lines with the same name: say the name once.
    size_t colon = here.find(": ");
    if (colon != std::string::npos && there.compare(0, colon + 2, here, 0, colon + 2) == 0)
      diffs.push_back(fmt::format("{} here, {} on rank 0", here, there.substr(colon + 2)));
    else
      diffs.push_back(fmt::format("{} here, {} on rank 0", here, there));
  }
  int bad = diffs.empty() ? 0 : 1, any_bad = 0;
  MPI_Allreduce(&bad, &any_bad, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  if (any_bad == 0) return;
  if (bad) {
    std::string list;
    for (size_t i = 0; i < diffs.size() && i < 5; ++i) list += "\n  " + diffs[i];
    if (diffs.size() > 5) list += fmt::format("\n  ... and {} more", diffs.size() - 5);
    fail<ValueError>("{}: the tensors of rank {} differ from rank 0's ({} of {} entries):{}", what,
                     rank(), diffs.size(), std::max(a.size(), b.size()), list);
  }
  fail<ValueError>(
      "{}: the tensors of {} rank(s) differ from rank 0's (those ranks print which); every rank "
      "must build the same model",
      what, any_bad);
}

}  // namespace

void broadcast(Tensor& t, int root) {
  if (!t.defined()) fail<ValueError>("broadcast: undefined tensor");
  if (!initialized() || world_size() == 1) return;
  if (root < 0 || root >= world_size())
    fail<ValueError>("broadcast: root {} is not a rank of {}", root, world_size());
  check_same_on_all_ranks(describe(t) + "\n", "broadcast");
  Tensor buf = buffer_of(t);
  broadcast_bytes(buf, root);
  NoGradGuard ng;
  t.copy_(buf);
}

void all_reduce_sum_(Tensor& t) {
  if (!t.defined()) fail<ValueError>("all_reduce_sum_: undefined tensor");
  MPI_Datatype type = float_type(t, "all_reduce_sum_");
  if (!initialized() || world_size() == 1) return;
  if (t.numel() > INT32_MAX)
    fail<ValueError>("all_reduce_sum_: {} elements is too many for one call", t.numel());
  Tensor buf = buffer_of(t);
  MPI_Allreduce(MPI_IN_PLACE, first_byte(buf), static_cast<int>(buf.numel()), type, MPI_SUM,
                MPI_COMM_WORLD);
  NoGradGuard ng;
  t.copy_(buf);
}

std::vector<double> all_reduce_sum(std::vector<double> values) {
  if (initialized() && world_size() > 1 && !values.empty())
    MPI_Allreduce(MPI_IN_PLACE, values.data(), static_cast<int>(values.size()), MPI_DOUBLE, MPI_SUM,
                  MPI_COMM_WORLD);
  return values;
}

double all_reduce_sum(double value) { return all_reduce_sum(std::vector<double>{value})[0]; }

double all_reduce_max(double value) {
  if (initialized() && world_size() > 1)
    MPI_Allreduce(MPI_IN_PLACE, &value, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  return value;
}

void broadcast_parameters(Module& model) {
  if (!initialized() || world_size() == 1) return;
  StateDict state = model.state_dict();
  std::string mine;
  for (auto& [name, t] : state)
    mine += fmt::format("{}: {}{}\n", name, describe(t), t.requires_grad() ? "" : " (no grad)");
  check_same_on_all_ranks(mine, "broadcast_parameters");
  for (auto& [name, t] : state) {
    Tensor buf = buffer_of(t);
    broadcast_bytes(buf, 0);
    NoGradGuard ng;
    t.copy_(buf);
  }
}

double max_parameter_difference(const Module& model) {
  double worst = 0;
  for (const Tensor& p : model.parameters()) {
    NoGradGuard ng;
    Tensor mine = buffer_of(p.detach().to(float64));
    Tensor root = mine.clone();
    if (initialized() && world_size() > 1) broadcast_bytes(root, 0);
    std::vector<double> a = mine.to_vector<double>(), b = root.to_vector<double>();
    for (size_t i = 0; i < a.size(); ++i) {
      double d = std::abs(a[i] - b[i]);
      if (std::isnan(d)) d = INFINITY;
      worst = std::max(worst, d);
    }
  }
  return all_reduce_max(worst);
}

// ---- metrics ----

Evaluation all_reduce(const Evaluation& local) {
  auto n = static_cast<double>(local.samples);
  std::vector<double> sums = all_reduce_sum(
      {local.samples > 0 ? local.loss * n : 0.0, local.samples > 0 ? local.accuracy * n : 0.0, n});
  Evaluation r;
  r.samples = static_cast<int64_t>(std::llround(sums[2]));
  if (r.samples > 0) {
    r.loss = sums[0] / sums[2];
    r.accuracy = sums[1] / sums[2];
  }
  return r;
}

double global_mean(double local_sum, double local_count) {
  std::vector<double> s = all_reduce_sum({local_sum, local_count});
  return s[1] > 0 ? s[0] / s[1] : NAN;
}

}  // namespace ag::nn::distributed
