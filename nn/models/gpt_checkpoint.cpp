#include "nn/models/gpt_checkpoint.h"

#include <limits>

namespace ag::nn {

Metadata gpt_config_metadata(const GPTConfig& c) {
  return {{"model", "gpt"},
          {"gpt.vocab_size", std::to_string(c.vocab_size)},
          {"gpt.n_layer", std::to_string(c.n_layer)},
          {"gpt.n_head", std::to_string(c.n_head)},
          {"gpt.d_model", std::to_string(c.d_model)},
          {"gpt.context", std::to_string(c.context)},
          {"gpt.gelu", c.gelu}};
}

GPTConfig gpt_config_from_metadata(const Metadata& m, const std::string& source) {
  auto get = [&](const std::string& key) -> const std::string& {
    auto it = m.find(key);
    if (it == m.end())
      fail<ValueError>("{}: not a gpt checkpoint (its metadata has no '{}')", source, key);
    return it->second;
  };
  auto integer = [&](const std::string& key) {
    const std::string& s = get(key);
    // Decimal digits with an optional sign, nothing else (stoll would skip spaces, take "0x").
    size_t digits = s.starts_with('-') ? 1 : 0;
    if (s.size() > digits && s.size() <= digits + 18 &&
        s.find_first_not_of("0123456789", digits) == std::string::npos)
      return static_cast<int64_t>(std::stoll(s));
    fail<ValueError>("{}: metadata '{}' is '{}', not an integer", source, key, s);
  };
  GPTConfig c;
  c.vocab_size = integer("gpt.vocab_size");
  c.n_layer = integer("gpt.n_layer");
  c.n_head = integer("gpt.n_head");
  c.d_model = integer("gpt.d_model");
  c.context = integer("gpt.context");
  c.gelu = get("gpt.gelu");
  try {
    c.validate();
  } catch (const ValueError& e) {
    fail<ValueError>("{}: {}", source, e.what());
  }
  return c;
}

int64_t gpt_num_parameters(const GPTConfig& c) {
  // Embeddings (token, position), per block: two LayerNorms (2 C each), qkv (3 C^2 + 3 C), the
  // attention projection (C^2 + C), the MLP (4 C^2 + 4 C and 4 C^2 + C); the final LayerNorm.
  int64_t C = c.d_model, total = 0, t = 0, block = 0;
  bool overflow =
      __builtin_add_overflow(c.vocab_size, c.context, &t) || __builtin_mul_overflow(t, C, &total) ||
      __builtin_mul_overflow(C, C, &block) || __builtin_mul_overflow(block, int64_t{12}, &block) ||
      __builtin_add_overflow(block, 13 * C, &block) ||  // C < 2^63 / 12 here
      __builtin_mul_overflow(block, c.n_layer, &block) ||
      __builtin_add_overflow(total, block, &total) || __builtin_add_overflow(total, 2 * C, &total);
  if (overflow)
    fail<ValueError>(
        "gpt_num_parameters: a GPT of vocab {}, {} layers, d_model {}, context {} has more than "
        "2^63 parameters",
        c.vocab_size, c.n_layer, C, c.context);
  return total;
}

void save_gpt(const std::string& path, const GPT& model, const Metadata& extra) {
  Metadata m = gpt_config_metadata(model.config());
  for (auto& [k, v] : extra) m.insert_or_assign(k, v);
  save_safetensors(path, model.state_dict(), m);
}

std::shared_ptr<GPT> load_gpt(const std::string& path, Metadata* metadata) {
  Metadata meta;
  StateDict all = load_safetensors(path, &meta);
  GPTConfig config = gpt_config_from_metadata(meta, path);
  StateDict state;
  int64_t values = 0;
  for (auto& [name, t] : all) {
    if (name.starts_with("optimizer/")) continue;
    values += t.numel();  // the file holds them all: no overflow
    state.emplace_back(name, t);
  }
  int64_t expected = gpt_num_parameters(config);
  if (expected != values)
    fail<ValueError>(
        "{}: the metadata describes a GPT of {} parameters (vocab {}, {} layers, d_model {}, "
        "context {}) but the file holds {} values",
        path, expected, config.vocab_size, config.n_layer, config.d_model, config.context, values);
  auto model = std::make_shared<GPT>(config);
  try {
    model->load_state_dict(state);
  } catch (const ValueError& e) {
    fail<ValueError>("{}: {}", path, e.what());
  }
  if (metadata) *metadata = std::move(meta);
  return model;
}

}  // namespace ag::nn
