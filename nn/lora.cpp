#include "nn/lora.h"

#include <algorithm>
#include <cmath>

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

int64_t apply_lora(Module& model, const LoRAConfig& c) {
  model.freeze("*");
  Generator gen(c.seed + 303);
  int64_t n = 0;
  for (auto& [name, m] : model.named_modules()) {
    auto* lin = dynamic_cast<Linear*>(m);
    if (!lin) continue;
    bool match = false;
    for (auto& pattern : c.targets) match = match || name_matches(name, pattern);
    if (!match) continue;
    lin->add_adapter(c.rank, c.alpha, &gen);
    ++n;
  }
  if (n == 0) fail<ValueError>("apply_lora: no Linear layer matches the target patterns");
  return n;
}

void merge_lora(Module& model) {
  // Gather the layers first: merging removes (frees) each adapter module, which the list of
  // named_modules() also holds; looking at it after its merge was a use after free (found by ASan).
  std::vector<Linear*> layers;
  for (auto& [name, m] : model.named_modules())
    if (auto* lin = dynamic_cast<Linear*>(m)) layers.push_back(lin);
  for (Linear* lin : layers) lin->merge_adapter();
  model.unfreeze("*");
}

StateDict lora_state_dict(const Module& model) {
  StateDict r;
  for (auto& [n, t] : model.state_dict())
    if (name_matches(n, "*.lora.A") || name_matches(n, "*.lora.B")) r.emplace_back(n, t);
  return r;
}

}  // namespace ag::nn
