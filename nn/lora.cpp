#include "nn/lora.h"

#include <algorithm>
#include <cmath>
#include <map>

#include "nn/init.h"
#include "nn/linear.h"

namespace ag::nn {

LoRAAdapter::LoRAAdapter(int64_t in, int64_t out, int64_t rank, double alpha, Generator* gen)
    : rank(rank), scale(alpha / static_cast<double>(rank)) {
  if (rank <= 0 || rank > std::min(in, out))
    fail<ValueError>("LoRA: rank {} must be in [1, {}] for a {} -> {} layer", rank,
                     std::min(in, out), in, out);
  A = register_parameter("A", Tensor::empty({rank, in}));
  init::kaiming_uniform_(A, std::sqrt(5.0), "fan_in", "leaky_relu", gen);
  B = register_parameter("B", zeros({out, rank}));
}

Tensor LoRAAdapter::forward(const Tensor& x) { return mul(linear(linear(x, A), B), scale); }

Tensor LoRAAdapter::delta_weight() const { return mul(matmul(B, A), scale); }

Tensor LoRAAdapter::rows(const Tensor& indices) const {
  return mul(matmul(embedding(B, indices), A), scale);
}

void LoRAHost::add_adapter(int64_t rank, double alpha, Generator* gen) {
  if (adapter) fail<ValueError>("{}: already has a LoRA adapter", type_name());
  const Tensor& w = adapted_weight();
  adapter = register_module("lora",
                            std::make_shared<LoRAAdapter>(w.size(1), w.size(0), rank, alpha, gen));
  adapter->to(w.dtype());
}

void LoRAHost::merge_adapter() {
  if (!adapter) return;
  {
    NoGradGuard ng;
    Tensor& w = adapted_weight();
    w.add_(adapter->delta_weight().to(w.dtype()));
  }
  remove_module("lora");
  adapter.reset();
}

int64_t apply_lora(Module& model, const LoRAConfig& c) {
  model.freeze("*");
  Generator gen(c.seed + 303);
  int64_t n = 0;
  for (auto& [name, m] : model.named_modules()) {
    auto* host = dynamic_cast<LoRAHost*>(m);
    if (!host) continue;
    bool match = false;
    for (auto& pattern : c.targets) match = match || name_matches(name, pattern);
    if (!match) continue;
    host->add_adapter(c.rank, c.alpha, &gen);
    ++n;
  }
  if (n == 0)
    fail<ValueError>("apply_lora: no Linear or Embedding layer matches the target patterns");
  return n;
}

void merge_lora(Module& model) {
  // Gather the layers first: merging removes (frees) each adapter module, which the list of
  // named_modules() also holds; looking at it after its merge was a use after free (found by ASan).
  std::vector<LoRAHost*> layers;
  for (auto& [name, m] : model.named_modules())
    if (auto* host = dynamic_cast<LoRAHost*>(m)) layers.push_back(host);
  for (LoRAHost* host : layers) host->merge_adapter();
  model.unfreeze("*");
}

StateDict lora_state_dict(const Module& model) {
  StateDict r;
  for (auto& [n, t] : model.state_dict())
    if (name_matches(n, "*.lora.A") || name_matches(n, "*.lora.B")) r.emplace_back(n, t);
  return r;
}

namespace {

// One adapter to load: the module and its A and B.
struct SavedAdapter {
  LoRAHost* host;
  Tensor A, B;
};

// Pairs each "<module>.lora.A" with its ".lora.B" and finds the module; checks shapes.
std::vector<SavedAdapter> match_adapters(Module& model, const StateDict& adapters) {
  std::map<std::string, Module*> modules;
  for (auto& [name, m] : model.named_modules()) modules[name] = m;
  std::map<std::string, SavedAdapter> found;
  for (auto& [name, t] : adapters) {
    const bool is_a = name_matches(name, "*.lora.A"), is_b = name_matches(name, "*.lora.B");
    if (!is_a && !is_b)
      fail<ValueError>("load_lora: '{}' is not a LoRA tensor (<module>.lora.A or .lora.B)", name);
    const std::string owner = name.substr(0, name.size() - 7);
    auto it = modules.find(owner);
    auto* host = it == modules.end() ? nullptr : dynamic_cast<LoRAHost*>(it->second);
    if (!host)
      fail<ValueError>("load_lora: '{}': the model has no Linear or Embedding named '{}'", name,
                       owner);
    if (host->has_adapter()) fail<ValueError>("load_lora: '{}' already has an adapter", owner);
    SavedAdapter& a = found[owner];
    a.host = host;
    (is_a ? a.A : a.B) = t;
  }
  std::vector<SavedAdapter> r;
  for (auto& [owner, a] : found) {
    if (!a.A.defined() || !a.B.defined())
      fail<ValueError>("load_lora: '{}.lora.{}' is missing", owner, a.A.defined() ? "B" : "A");
    r.push_back(a);
  }
  return r;
}

}  // namespace

int64_t load_lora(Module& model, const StateDict& adapters, double alpha) {
  std::vector<SavedAdapter> todo = match_adapters(model, adapters);
  for (const SavedAdapter& a : todo) {  // all checked before anything changes
    const Shape w = a.host->weight_shape();
    const int64_t r = a.A.dim() == 2 ? a.A.size(0) : 0;
    if (a.A.shape() != Shape{r, w[1]} || a.B.shape() != Shape{w[0], r} || r < 1 ||
        r > std::min(w[0], w[1]))
      fail<ValueError>(
          "load_lora: adapter A {} and B {} do not fit a {} weight {} (A [r, {}], B [{}, r], r in "
          "[1, {}])",
          a.A.shape(), a.B.shape(), a.host->type_name(), w, w[1], w[0], std::min(w[0], w[1]));
  }
  model.freeze("*");
  Generator unused(0);  // the adapters' random start is overwritten; the default stays untouched
  NoGradGuard ng;
  for (const SavedAdapter& a : todo) {
    a.host->add_adapter(a.A.size(0), alpha, &unused);
    a.host->adapter->A.copy_(a.A);
    a.host->adapter->B.copy_(a.B);
  }
  return static_cast<int64_t>(todo.size());
}

}  // namespace ag::nn
