#include "nn/models/gpt2.h"

#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "nn/io/atomic_file.h"
#include "nn/io/safetensors.h"
#include "nn/text/tokenizer.h"

namespace ag::nn {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;
using OJson = nlohmann::ordered_json;

constexpr const char* kConfig = "config.json";
constexpr const char* kWeights = "model.safetensors";
constexpr const char* kIndex = "model.safetensors.index.json";
constexpr const char* kPrefix = "transformer.";
constexpr int64_t kMaxSize = int64_t{1} << 32;  // bound on every size of config.json
constexpr int64_t kGpt2Vocab = 50257;           // GPT-2's vocabulary: 50256 is <|endoftext|>

std::string in_dir(const std::string& dir, const char* name) {
  return (fs::path(dir) / name).string();
}

// ---- config.json ----

Json read_json(const std::string& path) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec))
    fail<IOError>("load_gpt2: '{}': {}", path,
                  fs::exists(path, ec) ? "not a regular file" : "no such file");
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  if (!in) fail<IOError>("load_gpt2: '{}': cannot read: {}", path, std::strerror(errno));
  try {
    Json j = Json::parse(text.str());
    if (!j.is_object()) fail<ValueError>("load_gpt2: '{}': not a JSON object", path);
    return j;
  } catch (const Json::exception& e) {
    fail<IOError>("load_gpt2: '{}': not valid JSON: {}", path, e.what());
  }
}

// Typed access to config.json's fields; every error names the file and the field.
struct ConfigReader {
  const std::string& path;
  const Json& j;

  const Json* find(const char* key) const {
    auto it = j.find(key);
    return it == j.end() || it->is_null() ? nullptr : &*it;
  }
  [[noreturn]] void bad(const char* key, const std::string& what) const {
    fail<ValueError>("load_gpt2: '{}': {} {}", path, key, what);
  }
  int64_t size(const char* key) const {
    const Json* v = find(key);
    if (!v) bad(key, "is missing");
    int64_t n = 0;
    if (v->is_number_unsigned())
      n = v->get<uint64_t>() > static_cast<uint64_t>(kMaxSize) ? kMaxSize + 1 : v->get<int64_t>();
    else if (v->is_number_integer())
      n = v->get<int64_t>();
    else
      bad(key, fmt::format("is {}, not an integer", v->dump()));
    if (n <= 0 || n > kMaxSize) bad(key, fmt::format("is {}, not in [1, 2^32]", v->dump()));
    return n;
  }
  std::string string(const char* key, const char* otherwise) const {
    const Json* v = find(key);
    if (!v) return otherwise;
    if (!v->is_string()) bad(key, fmt::format("is {}, not a string", v->dump()));
    return v->get<std::string>();
  }
  bool flag(const char* key, bool otherwise) const {
    const Json* v = find(key);
    if (!v) return otherwise;
    if (!v->is_boolean()) bad(key, fmt::format("is {}, not true or false", v->dump()));
    return v->get<bool>();
  }
  double number(const char* key, double otherwise) const {
    const Json* v = find(key);
    if (!v) return otherwise;
    if (!v->is_number()) bad(key, fmt::format("is {}, not a number", v->dump()));
    return v->get<double>();
  }
};

// The settings transformers' GPT2Config has that our GPT does not implement.
void check_unsupported(const ConfigReader& r, int64_t n_embd) {
  std::string type = r.string("model_type", "gpt2");
  if (type != "gpt2") r.bad("model_type", fmt::format("is '{}', not 'gpt2'", type));
  if (r.find("n_inner") && r.size("n_inner") != 4 * n_embd)
    r.bad("n_inner", fmt::format("is {}: only the MLP width 4 n_embd = {} is supported",
                                 r.size("n_inner"), 4 * n_embd));
  if (!r.flag("scale_attn_weights", true))
    r.bad("scale_attn_weights",
          "is false: only attention scaled by 1/sqrt(head size) is supported");
  if (r.flag("scale_attn_by_inverse_layer_idx", false))
    r.bad("scale_attn_by_inverse_layer_idx", "is true: not supported");
  if (r.flag("add_cross_attention", false))
    r.bad("add_cross_attention", "is true: not supported (decoder-only models)");
}

GPTConfig read_config(const std::string& path) {
  Json j = read_json(path);
  ConfigReader r{path, j};
  GPTConfig c;
  c.n_layer = r.size("n_layer");
  c.n_head = r.size("n_head");
  c.d_model = r.size("n_embd");
  c.vocab_size = r.size("vocab_size");
  c.context = r.size(r.find("n_positions") || !r.find("n_ctx") ? "n_positions" : "n_ctx");
  c.layer_norm_eps = r.number("layer_norm_epsilon", 1e-5);
  if (!(c.layer_norm_eps > 0 && std::isfinite(c.layer_norm_eps)))
    r.bad("layer_norm_epsilon", fmt::format("is {}, not a positive number", c.layer_norm_eps));
  std::string act = r.string("activation_function", "gelu_new");
  if (act == "gelu_new" || act == "gelu_pytorch_tanh")
    c.gelu = "tanh";
  else if (act == "gelu")
    c.gelu = "none";
  else
    r.bad("activation_function",
          fmt::format("is '{}': supported are gelu_new and gelu_pytorch_tanh (GELU's tanh form) "
                      "and gelu (its erf form)",
                      act));
  if (c.d_model % c.n_head != 0)
    r.bad("n_embd", fmt::format("{} is not divisible by n_head {}", c.d_model, c.n_head));
  check_unsupported(r, c.d_model);
  c.dropout = 0.0;
  c.validate();
  return c;
}

// ---- the tensors of one or several safetensors files ----

struct Source {
  Tensor t;
  std::string file, raw;  // the file holding it and its name there
};
// By name without the prefix.
using Sources = std::map<std::string, Source>;

void add_source(Sources& out, const std::string& raw, Tensor t, const std::string& file) {
  std::string name = raw.starts_with(kPrefix) ? raw.substr(std::strlen(kPrefix)) : raw;
  auto [it, fresh] = out.try_emplace(name, Source{std::move(t), file, raw});
  if (!fresh)
    fail<ValueError>("load_gpt2: tensor '{}' appears twice: as '{}' in '{}' and as '{}' in '{}'",
                     name, it->second.raw, it->second.file, raw, file);
}

Sources read_single(const std::string& path) {
  Sources out;
  for (auto& [raw, t] : load_safetensors(path)) add_source(out, raw, t, path);
  return out;
}

// A shard's name in the index: a plain file name in the directory (no path).
bool plain_file_name(const std::string& s) {
  return !s.empty() && s != "." && s != ".." && s.find_first_of(std::string("/\\\0", 3)) == s.npos;
}

// weight_map as file name -> the tensor names it assigns to that file.
std::map<std::string, std::set<std::string>> read_weight_map(const std::string& index) {
  Json j = read_json(index);
  auto wm = j.find("weight_map");
  if (wm == j.end() || !wm->is_object())
    fail<ValueError>("load_gpt2: '{}': no \"weight_map\" object", index);
  std::map<std::string, std::set<std::string>> files;
  for (auto& [name, file] : wm->items()) {
    if (!file.is_string() || !plain_file_name(file.get<std::string>()))
      fail<ValueError>(
          "load_gpt2: '{}': weight_map assigns tensor '{}' to {}, not a file name in the "
          "directory",
          index, name, file.dump());
    files[file.get<std::string>()].insert(name);
  }
  return files;
}

Sources read_sharded(const std::string& dir, const std::string& index) {
  Sources out;
  for (auto& [file, names] : read_weight_map(index)) {
    std::string path = (fs::path(dir) / file).string();
    std::set<std::string> seen;
    for (auto& [raw, t] : load_safetensors(path)) {
      if (!names.count(raw))
        fail<ValueError>(
            "load_gpt2: '{}' holds tensor '{}', which the index '{}' does not assign "
            "to that file",
            path, raw, index);
      seen.insert(raw);
      add_source(out, raw, t, path);
    }
    for (const std::string& name : names)
      if (!seen.count(name))
        fail<ValueError>("load_gpt2: the index '{}' assigns tensor '{}' to '{}', which lacks it",
                         index, name, path);
  }
  return out;
}

// ---- checking the tensors against the configuration ----

struct Checker {
  const Sources& sources;
  const GPTConfig& c;
  const std::string& config_path;
  const std::string& where;  // "'<weights file>'" or "the files of '<index>'"
  std::set<std::string> used;

  std::string sizes() const {
    return fmt::format("n_layer {}, n_embd {}, vocab_size {}, n_positions {}", c.n_layer, c.d_model,
                       c.vocab_size, c.context);
  }
  // The float32 tensor `name` of shape `shape`, transposed to [out, in] if `conv1d`.
  Tensor take(const std::string& name, const Shape& shape, bool conv1d = false) {
    auto it = sources.find(name);
    if (it == sources.end())
      fail<ValueError>("load_gpt2: {} has no tensor '{}' (nor '{}{}'), which '{}' implies ({})",
                       where, name, kPrefix, name, config_path, sizes());
    const Source& s = it->second;
    if (s.t.dtype() != float32 && s.t.dtype() != bfloat16)
      fail<ValueError>("load_gpt2: '{}': tensor '{}' is {}; GPT-2 weights must be F32, F16 or BF16",
                       s.file, s.raw, dtype_name(s.t.dtype()));
    if (!(s.t.shape() == shape))
      fail<ValueError>("load_gpt2: '{}': tensor '{}' has shape {} but '{}' ({}) implies {}", s.file,
                       s.raw, s.t.shape(), config_path, sizes(), shape);
    used.insert(name);
    Tensor t = s.t.to(float32);  // the model is built in float32 (BF16 files are read natively)
    return conv1d ? t.transpose(0, 1).contiguous() : t;
  }
  // A tensor `take` did not consume: the tied head, the attention mask buffers, or an error.
  void leftover(const std::string& name, const Source& s, const Tensor& wte) const;
};

// "h.N.attn.bias" or "h.N.attn.masked_bias" with N < n_layer written plainly.
bool is_mask_buffer(const std::string& name, int64_t n_layer) {
  for (const char* tail : {".attn.bias", ".attn.masked_bias"}) {
    if (!name.starts_with("h.") || !name.ends_with(tail)) continue;
    std::string n = name.substr(2, name.size() - 2 - std::strlen(tail));
    if (n.empty() || n.size() > 10 || n.find_first_not_of("0123456789") != n.npos) continue;
    if (std::to_string(std::stoll(n)) == n && std::stoll(n) < n_layer) return true;
  }
  return false;
}

void Checker::leftover(const std::string& name, const Source& s, const Tensor& wte) const {
  if (name == "lm_head.weight") {
    const bool floating = s.t.dtype() == float32 || s.t.dtype() == bfloat16;
    Tensor head = floating ? s.t.to(float32).contiguous() : s.t;
    bool same = floating && head.shape() == wte.shape() &&
                std::memcmp(head.data<float>(), wte.contiguous().data<float>(),
                            static_cast<size_t>(wte.numel()) * sizeof(float)) == 0;
    if (!same)
      fail<ValueError>(
          "load_gpt2: '{}': tensor '{}' ({} {}) differs from wte.weight: only GPT-2 models whose "
          "output head is tied to the token embedding are supported",
          s.file, s.raw, dtype_name(s.t.dtype()), s.t.shape());
    return;
  }
  if (is_mask_buffer(name, c.n_layer)) return;
  fail<ValueError>("load_gpt2: '{}': unknown tensor '{}' (not part of a GPT-2 model with {})",
                   s.file, s.raw, sizes());
}

// The parts of block N: GPT-2's name (under "h.N."), ours (under "blocks.N."), and for a Conv1D /
// Linear its sizes in and out as multiples of n_embd (in = 0: a LayerNorm of n_embd features).
// Reading and writing both go by this table.
struct BlockPart {
  const char* theirs;
  const char* ours;
  int64_t in, out;
};
constexpr BlockPart kBlockParts[] = {
    {"ln_1", "ln1", 0, 1}, {"attn.c_attn", "attn.qkv", 1, 3}, {"attn.c_proj", "attn.proj", 1, 1},
    {"ln_2", "ln2", 0, 1}, {"mlp.c_fc", "mlp.fc", 1, 4},      {"mlp.c_proj", "mlp.proj", 4, 1},
};

// Our state dict from the GPT-2 tensors, every tensor checked.
StateDict gpt2_state(Checker& k) {
  const GPTConfig& c = k.c;
  int64_t C = c.d_model;
  StateDict st;
  st.emplace_back("wte.weight", k.take("wte.weight", {c.vocab_size, C}));
  st.emplace_back("wpe.weight", k.take("wpe.weight", {c.context, C}));
  for (int64_t i = 0; i < c.n_layer; ++i) {
    std::string h = fmt::format("h.{}.", i), b = fmt::format("blocks.{}.", i);
    for (const BlockPart& p : kBlockParts) {
      const int64_t in = p.in * C, out = p.out * C;
      Shape w = p.in ? Shape{in, out} : Shape{out};
      st.emplace_back(b + p.ours + ".weight", k.take(h + p.theirs + ".weight", w, p.in != 0));
      st.emplace_back(b + p.ours + ".bias", k.take(h + p.theirs + ".bias", {out}));
    }
  }
  st.emplace_back("ln_f.weight", k.take("ln_f.weight", {C}));
  st.emplace_back("ln_f.bias", k.take("ln_f.bias", {C}));
  for (auto& [name, s] : k.sources)
    if (!k.used.count(name)) k.leftover(name, s, st.front().second);
  return st;
}

// ---- writing ----

// config.json for transformers' GPT2Config.
std::string config_json(const GPTConfig& c) {
  bool gpt2_vocab = c.vocab_size == kGpt2Vocab;
  OJson j = {
      {"architectures", {"GPT2LMHeadModel"}},
      {"model_type", "gpt2"},
      {"vocab_size", c.vocab_size},
      {"n_positions", c.context},
      {"n_ctx", c.context},
      {"n_embd", c.d_model},
      {"n_layer", c.n_layer},
      {"n_head", c.n_head},
      {"n_inner", nullptr},
      {"activation_function", c.gelu == "tanh" ? "gelu_new" : "gelu"},
      {"resid_pdrop", c.dropout},
      {"embd_pdrop", 0.0},
      {"attn_pdrop", c.dropout},
      {"layer_norm_epsilon", c.layer_norm_eps},
      {"initializer_range", 0.02},
      {"scale_attn_weights", true},
      {"use_cache", true},
      {"bos_token_id", gpt2_vocab ? OJson(kGpt2Vocab - 1) : OJson(nullptr)},
      {"eos_token_id", gpt2_vocab ? OJson(kGpt2Vocab - 1) : OJson(nullptr)},
      {"tie_word_embeddings", true},
      {"torch_dtype", "float32"},
  };
  return j.dump(2) + "\n";
}

// The GPT-2 tensors of the model: float32, Conv1D weights as [in, out], named by the same table
// the reader uses.
StateDict gpt2_tensors(const GPT& model) {
  auto plain = [](const Tensor& t) { return t.detach().to(float32).contiguous(); };
  auto conv1d = [](const Tensor& t) { return t.detach().to(float32).t().contiguous(); };
  std::map<std::string, Tensor> ours;
  for (auto& [name, t] : model.state_dict()) ours[name] = t;
  auto refuse_adapter = [](const std::string& where) {
    fail<ValueError>(
        "save_gpt2: {} carries a LoRA adapter: merge it first (merge_lora or merge_adapter); the "
        "GPT-2 layout has no place for adapters",
        where);
  };
  StateDict st;
  st.emplace_back("wte.weight", plain(ours.at("wte.weight")));
  st.emplace_back("wpe.weight", plain(ours.at("wpe.weight")));
  for (size_t i = 0; i < model.blocks.size(); ++i) {
    std::string h = fmt::format("h.{}.", i), b = fmt::format("blocks.{}.", i);
    for (const BlockPart& p : kBlockParts) {
      if (ours.count(b + p.ours + ".lora.A"))
        refuse_adapter(fmt::format("blocks.{} {}", i, p.theirs));
      const Tensor& w = ours.at(b + p.ours + ".weight");
      st.emplace_back(h + p.theirs + ".weight", p.in ? conv1d(w) : plain(w));
      st.emplace_back(h + p.theirs + ".bias", plain(ours.at(b + p.ours + ".bias")));
    }
  }
  st.emplace_back("ln_f.weight", plain(ours.at("ln_f.weight")));
  st.emplace_back("ln_f.bias", plain(ours.at("ln_f.bias")));
  for (auto& [name, t] : ours)  // an adapter elsewhere (none of the parts above)
    if (name.find(".lora.") != std::string::npos) refuse_adapter("'" + name + "'");
  return st;
}

}  // namespace

std::shared_ptr<GPT> load_gpt2(const std::string& dir) {
  std::string config_path = in_dir(dir, kConfig);
  GPTConfig config = read_config(config_path);
  std::string single = in_dir(dir, kWeights), index = in_dir(dir, kIndex), where;
  std::error_code ec;
  Sources sources;
  if (fs::exists(single, ec) || !fs::exists(index, ec)) {
    sources = read_single(single);
    where = fmt::format("'{}'", single);
  } else {
    sources = read_sharded(dir, index);
    where = fmt::format("the files of '{}'", index);
  }
  Checker checker{sources, config, config_path, where, {}};
  StateDict state = gpt2_state(checker);
  sources.clear();  // the Conv1D weights as read: `state` holds them transposed
  auto model = std::make_shared<GPT>(config);
  model->load_state_dict(state);
  return model;
}

void save_gpt2(const std::string& dir, const GPT& model, const Tokenizer* tokenizer) {
  StateDict tensors = gpt2_tensors(model);  // refuses unmerged adapters before writing anything
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec || !fs::is_directory(dir, ec))
    fail<IOError>("save_gpt2: cannot create the directory '{}': {}", dir,
                  ec ? ec.message() : "a file of that name exists");
  save_safetensors(in_dir(dir, kWeights), tensors, {{"format", "pt"}});
  AtomicFile config(in_dir(dir, kConfig), "save_gpt2");
  config.write(config_json(model.config()));
  config.commit();
  if (tokenizer) tokenizer->save(dir);
}

bool is_gpt2_directory(const std::string& path) {
  std::error_code ec;
  return fs::is_directory(path, ec) && fs::is_regular_file(in_dir(path, kConfig), ec) &&
         (fs::is_regular_file(in_dir(path, kWeights), ec) ||
          fs::is_regular_file(in_dir(path, kIndex), ec));
}

}  // namespace ag::nn
