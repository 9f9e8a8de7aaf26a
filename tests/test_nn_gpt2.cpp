// Hugging Face GPT-2 directories (nn/models/gpt2.h): the round trip save -> load -> save, files in
// the GPT-2 layout written here independently of save_gpt2 (with and without the "transformer."
// prefix, F16 and BF16, split over several files with an index), and the error of every malformed
// directory, naming the file and the tensor. tests/gpt2_reference.py checks the logits against an
// independent PyTorch forward.
#include <bit>
#include <cstring>
#include <nlohmann/json.hpp>

#include "nn/io/safetensors.h"
#include "nn/models/gpt2.h"
#include "support.h"

using namespace ag;
using Json = nlohmann::ordered_json;
using test::TempDir;

namespace {

// 2 layers, 2 heads, d_model 8, context 6.
nn::GPTConfig small_config(int64_t vocab = 300) {
  nn::GPTConfig c;
  c.vocab_size = vocab;
  c.n_layer = 2;
  c.n_head = 2;
  c.d_model = 8;
  c.context = 6;
  c.seed = 5;
  return c;
}

// A model whose every parameter (LayerNorms too) is random, a multiple of 2^-7 in [-0.5, 0.5]:
// exactly representable in F16 and BF16.
std::shared_ptr<nn::GPT> random_model(const nn::GPTConfig& c, uint64_t seed = 1) {
  auto m = std::make_shared<nn::GPT>(c);
  Generator g(seed);
  NoGradGuard ng;
  for (Tensor& p : m->parameters()) {
    std::vector<float> v(static_cast<size_t>(p.numel()));
    for (float& x : v) x = static_cast<float>(std::round(g.uniform() * 128 - 64)) / 128;
    p.copy_(Tensor::from_vector(v, p.shape()));
  }
  return m;
}

Tensor logits(nn::GPT& m, int64_t T = 6) {
  NoGradGuard ng;
  std::vector<int64_t> ids;
  for (int64_t t = 0; t < T; ++t) ids.push_back((t * 37 + 11) % m.config().vocab_size);
  return m.forward(Tensor::from_vector(ids, {1, T}));
}

bool bitwise_equal(const Tensor& a, const Tensor& b) {
  if (!(a.shape() == b.shape()) || a.dtype() != b.dtype()) return false;
  Tensor x = a.contiguous(), y = b.contiguous();
  return std::memcmp(x.data<float>(), y.data<float>(), sizeof(float) * x.numel()) == 0;
}

void check_same_model(nn::GPT& a, nn::GPT& b) {
  auto sa = a.state_dict(), sb = b.state_dict();
  REQUIRE(sa.size() == sb.size());
  for (size_t i = 0; i < sa.size(); ++i) {
    INFO(sa[i].first);
    CHECK(sa[i].first == sb[i].first);
    CHECK(bitwise_equal(sa[i].second, sb[i].second));
  }
  CHECK(bitwise_equal(logits(a), logits(b)));
}

// ---- writing GPT-2 directories by hand ----

struct Entry {
  std::string name;
  Tensor t;                   // float32
  std::string dtype = "F32";  // F32, F16, BF16, or any other name (bytes of zeros, 1 per item)
};

uint16_t to_f16(float v) {  // exact for zero and normal half values (the test's values)
  uint32_t b = std::bit_cast<uint32_t>(v);
  uint16_t sign = static_cast<uint16_t>((b >> 16) & 0x8000);
  if ((b & 0x7fffffff) == 0) return sign;
  int exponent = static_cast<int>((b >> 23) & 0xff) - 127 + 15;
  REQUIRE((exponent > 0 && exponent < 31 && (b & 0x1fff) == 0));
  return static_cast<uint16_t>(sign | (exponent << 10) | ((b >> 13) & 0x3ff));
}

std::string encode(const Entry& e) {
  std::vector<float> v = e.t.contiguous().to_vector<float>();
  std::string out;
  for (float x : v) {
    uint32_t b = std::bit_cast<uint32_t>(x);
    if (e.dtype == "F32") {
      out.append(reinterpret_cast<const char*>(&b), 4);
    } else if (e.dtype == "F16" || e.dtype == "BF16") {
      if (e.dtype == "BF16") REQUIRE((b & 0xffff) == 0);
      uint16_t h = e.dtype == "F16" ? to_f16(x) : static_cast<uint16_t>(b >> 16);
      out.append(reinterpret_cast<const char*>(&h), 2);
    } else {
      out.push_back('\0');
    }
  }
  return out;
}

// A safetensors file as other tools write it: no checksum, optional metadata.
void write_safetensors(const std::string& path, const std::vector<Entry>& entries) {
  Json header = {{"__metadata__", {{"format", "pt"}}}};
  std::string data;
  for (const Entry& e : entries) {
    std::string bytes = encode(e);
    header[e.name] = {{"dtype", e.dtype},
                      {"shape", e.t.shape().vec()},
                      {"data_offsets", {data.size(), data.size() + bytes.size()}}};
    data += bytes;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  uint64_t n = text.size();
  test::write_bytes(path, std::string(reinterpret_cast<const char*>(&n), 8) + text + data);
}

// The model's tensors under GPT-2's names, written from the layout (not by save_gpt2): Conv1D
// weights transposed to [in, out].
std::vector<Entry> gpt2_entries(const nn::GPT& m, const std::string& prefix = "",
                                const std::string& dtype = "F32") {
  std::vector<Entry> out;
  auto add = [&](const std::string& name, const Tensor& t) {
    out.push_back({prefix + name, t.detach().contiguous(), dtype});
  };
  add("wte.weight", m.wte->weight);
  add("wpe.weight", m.wpe->weight);
  for (size_t i = 0; i < m.blocks.size(); ++i) {
    auto& b = *m.blocks[i];
    std::string h = "h." + std::to_string(i) + ".";
    add(h + "ln_1.weight", b.ln1->weight);
    add(h + "ln_1.bias", b.ln1->bias);
    add(h + "attn.c_attn.weight", b.attn->qkv->weight.t());
    add(h + "attn.c_attn.bias", b.attn->qkv->bias);
    add(h + "attn.c_proj.weight", b.attn->proj->weight.t());
    add(h + "attn.c_proj.bias", b.attn->proj->bias);
    add(h + "ln_2.weight", b.ln2->weight);
    add(h + "ln_2.bias", b.ln2->bias);
    add(h + "mlp.c_fc.weight", b.mlp->fc->weight.t());
    add(h + "mlp.c_fc.bias", b.mlp->fc->bias);
    add(h + "mlp.c_proj.weight", b.mlp->proj->weight.t());
    add(h + "mlp.c_proj.bias", b.mlp->proj->bias);
  }
  add("ln_f.weight", m.ln_f->weight);
  add("ln_f.bias", m.ln_f->bias);
  return out;
}

Json config_of(const nn::GPTConfig& c) {
  return {{"model_type", "gpt2"},
          {"n_layer", c.n_layer},
          {"n_head", c.n_head},
          {"n_embd", c.d_model},
          {"n_positions", c.context},
          {"vocab_size", c.vocab_size},
          {"layer_norm_epsilon", c.layer_norm_eps},
          {"activation_function", c.gelu == "tanh" ? "gelu_new" : "gelu"}};
}

void write_config(const TempDir& d, const Json& j) {
  test::write_bytes(d.file("config.json"), j.dump());
}

// A valid single-file directory of `m`.
void write_dir(const TempDir& d, const nn::GPT& m) {
  write_config(d, config_of(m.config()));
  write_safetensors(d.file("model.safetensors"), gpt2_entries(m));
}

Entry* find(std::vector<Entry>& es, const std::string& name) {
  for (Entry& e : es)
    if (e.name == name) return &e;
  FAIL("no entry " << name);
  return nullptr;
}

}  // namespace

TEST_CASE("save_gpt2 then load_gpt2 twice: the same tensors and logits, bit for bit") {
  for (bool variant : {false, true}) {
    nn::GPTConfig c = small_config(50257);  // GPT-2's vocabulary: bos/eos 50256 in config.json
    if (variant) {
      c.vocab_size = 300;
      c.gelu = "none";
      c.layer_norm_eps = 1e-6;
    }
    auto original = random_model(c, 7);
    TempDir d1, d2;
    nn::save_gpt2(d1.path.string(), *original);
    CHECK(d1.listing() == std::vector<std::string>{"config.json", "model.safetensors"});
    auto once = nn::load_gpt2(d1.path.string());
    check_same_model(*original, *once);
    CHECK(once->config().layer_norm_eps == c.layer_norm_eps);
    CHECK(once->config().gelu == c.gelu);
    CHECK(once->config().context == c.context);
    nn::save_gpt2(d2.path.string(), *once);
    auto twice = nn::load_gpt2(d2.path.string());
    check_same_model(*original, *twice);
    CHECK(test::read_bytes(d1.file("model.safetensors")) ==
          test::read_bytes(d2.file("model.safetensors")));
    CHECK(test::read_bytes(d1.file("config.json")) == test::read_bytes(d2.file("config.json")));

    auto j = nlohmann::json::parse(test::read_bytes(d1.file("config.json")));
    CHECK(j["model_type"] == "gpt2");
    CHECK(j["architectures"][0] == "GPT2LMHeadModel");
    CHECK(j["n_ctx"] == c.context);
    CHECK(j["n_positions"] == c.context);
    CHECK(j["activation_function"] == (variant ? "gelu" : "gelu_new"));
    CHECK(j["layer_norm_epsilon"].get<double>() == c.layer_norm_eps);
    if (variant)
      CHECK(j["eos_token_id"].is_null());
    else
      CHECK(j["eos_token_id"] == 50256);
    nn::Metadata meta;
    auto tensors = nn::load_safetensors(d1.file("model.safetensors"), &meta);
    CHECK(meta["format"] == "pt");
    CHECK(tensors.size() == 4 + 12 * 2);  // no lm_head, no prefix
    for (auto& [name, t] : tensors) CHECK_FALSE(name.starts_with("transformer."));
  }
}

TEST_CASE("load_gpt2 reads the GPT-2 layout written independently, prefix or not") {
  auto original = random_model(small_config(), 2);
  for (bool prefix : {false, true}) {
    TempDir d;
    write_config(d, config_of(original->config()));
    auto entries = gpt2_entries(*original, prefix ? "transformer." : "");
    if (prefix) {  // as transformers' older files: the tied head and the attention mask buffers
      entries.push_back({"lm_head.weight", original->wte->weight.detach(), "F32"});
      for (int i = 0; i < 2; ++i) {
        entries.push_back({fmt::format("transformer.h.{}.attn.bias", i),
                           tril(ones({1, 1, 6, 6}, float32)), "F32"});
        entries.push_back(
            {fmt::format("transformer.h.{}.attn.masked_bias", i), full({}, -1e4, float32), "F32"});
      }
    }
    write_safetensors(d.file("model.safetensors"), entries);
    CHECK(nn::is_gpt2_directory(d.path.string()));
    auto loaded = nn::load_gpt2(d.path.string());
    check_same_model(*original, *loaded);
  }
}

TEST_CASE("load_gpt2 converts F16 and BF16 weights, and reads n_ctx without n_positions") {
  auto original = random_model(small_config(), 3);
  for (const char* dtype : {"F16", "BF16"}) {
    INFO(dtype);
    TempDir d;
    Json j = config_of(original->config());
    j.erase("n_positions");
    j["n_ctx"] = 6;
    write_config(d, j);
    write_safetensors(d.file("model.safetensors"), gpt2_entries(*original, "", dtype));
    auto loaded = nn::load_gpt2(d.path.string());
    CHECK(loaded->config().context == 6);
    check_same_model(*original, *loaded);
  }
}

TEST_CASE("load_gpt2 reads a checkpoint split over several files with an index") {
  auto original = random_model(small_config(), 4);
  TempDir d;
  write_config(d, config_of(original->config()));
  auto entries = gpt2_entries(*original, "transformer.");
  std::vector<Entry> first(entries.begin(), entries.begin() + 10);
  std::vector<Entry> second(entries.begin() + 10, entries.end());
  for (Entry& e : second) e.dtype = "BF16";  // shards of mixed dtypes
  write_safetensors(d.file("model-00001-of-00002.safetensors"), first);
  write_safetensors(d.file("model-00002-of-00002.safetensors"), second);
  Json index = {{"metadata", {{"total_size", 1234}}}, {"weight_map", Json::object()}};
  for (auto& e : first) index["weight_map"][e.name] = "model-00001-of-00002.safetensors";
  for (auto& e : second) index["weight_map"][e.name] = "model-00002-of-00002.safetensors";
  test::write_bytes(d.file("model.safetensors.index.json"), index.dump(2));
  CHECK(nn::is_gpt2_directory(d.path.string()));
  check_same_model(*original, *nn::load_gpt2(d.path.string()));

  SUBCASE("a tensor in a file the index does not assign to it") {
    Json bad = index;
    bad["weight_map"]["transformer.wte.weight"] = "model-00002-of-00002.safetensors";
    test::write_bytes(d.file("model.safetensors.index.json"), bad.dump());
    CHECK_THROWS_WITH_PARTS(nn::load_gpt2(d.path.string()), ValueError,
                            "model-00001-of-00002.safetensors", "transformer.wte.weight",
                            "model.safetensors.index.json");
  }
  SUBCASE("a missing shard") {
    std::filesystem::remove(d.file("model-00002-of-00002.safetensors"));
    CHECK_THROWS_WITH_PARTS(nn::load_gpt2(d.path.string()), IOError,
                            "model-00002-of-00002.safetensors", "no such file");
  }
  SUBCASE("a tensor missing from the whole checkpoint") {
    Json bad = index;
    bad["weight_map"].erase("transformer.h.1.mlp.c_fc.bias");
    second.erase(second.begin() + 13);
    REQUIRE(second[12].name == "transformer.h.1.mlp.c_fc.weight");
    write_safetensors(d.file("model-00002-of-00002.safetensors"), second);
    test::write_bytes(d.file("model.safetensors.index.json"), bad.dump());
    CHECK_THROWS_WITH_PARTS(nn::load_gpt2(d.path.string()), ValueError,
                            "model.safetensors.index.json", "h.1.mlp.c_fc.bias");
  }
  SUBCASE("file names that leave the directory, or are not strings") {
    for (Json name : {Json("../model-00001-of-00002.safetensors"), Json("/etc/passwd"), Json(""),
                      Json(3), Json("..")}) {
      Json bad = index;
      bad["weight_map"]["transformer.wte.weight"] = name;
      test::write_bytes(d.file("model.safetensors.index.json"), bad.dump());
      CHECK_THROWS_WITH_PARTS(nn::load_gpt2(d.path.string()), ValueError,
                              "model.safetensors.index.json", "transformer.wte.weight",
                              "not a file name");
    }
  }
  SUBCASE("an index without a weight_map, or not JSON") {
    test::write_bytes(d.file("model.safetensors.index.json"), "{\"metadata\": {}}");
    CHECK_THROWS_WITH_PARTS(nn::load_gpt2(d.path.string()), ValueError,
                            "model.safetensors.index.json", "weight_map");
    test::write_bytes(d.file("model.safetensors.index.json"), "{\"weight_map\": {");
    CHECK_THROWS_WITH_PARTS(nn::load_gpt2(d.path.string()), IOError, "model.safetensors.index.json",
                            "not valid JSON");
  }
  SUBCASE("model.safetensors, when present, is read instead of the index") {
    auto other = random_model(small_config(), 9);
    write_safetensors(d.file("model.safetensors"), gpt2_entries(*other));
    check_same_model(*other, *nn::load_gpt2(d.path.string()));
  }
}

TEST_CASE("malformed GPT-2 directories: errors name the file and the tensor") {
  auto original = random_model(small_config(), 5);
  TempDir d;
  write_dir(d, *original);
  const std::string dir = d.path.string();
  REQUIRE_NOTHROW(nn::load_gpt2(dir));
  auto entries = gpt2_entries(*original);
  auto rewrite = [&](const std::vector<Entry>& es) {
    write_safetensors(d.file("model.safetensors"), es);
  };

  SUBCASE("a missing tensor") {
    entries.erase(entries.begin() + 3);  // h.0.ln_1.bias
    rewrite(entries);
    CHECK_THROWS_WITH_PARTS(nn::load_gpt2(dir), ValueError, "model.safetensors", "h.0.ln_1.bias",
                            "config.json");
  }
  SUBCASE("a Conv1D weight stored [out, in] instead of [in, out]") {
    find(entries, "h.1.mlp.c_fc.weight")->t = original->blocks[1]->mlp->fc->weight.detach();
    rewrite(entries);
    CHECK_THROWS_WITH_PARTS(nn::load_gpt2(dir), ValueError, "model.safetensors",
                            "h.1.mlp.c_fc.weight", "[32, 8]", "[8, 32]");
  }
  SUBCASE("a dtype other than F32, F16 and BF16") {
    find(entries, "ln_f.bias")->dtype = "F8_E4M3";
    rewrite(entries);
    CHECK_THROWS_WITH_PARTS(nn::load_gpt2(dir), IOError, "model.safetensors", "ln_f.bias",
                            "unsupported dtype");
    nn::StateDict st;
    for (auto& e : gpt2_entries(*original))
      st.emplace_back(e.name, e.name == "wpe.weight" ? e.t.to(float64) : e.t);
    nn::save_safetensors(d.file("model.safetensors"), st);
    CHECK_THROWS_WITH_PARTS(nn::load_gpt2(dir), ValueError, "model.safetensors", "wpe.weight",
                            "float64", "F32, F16 or BF16");
  }
  SUBCASE("config.json disagreeing with the tensors") {
    Json j = config_of(original->config());
    j["n_embd"] = 16;
    write_config(d, j);
    CHECK_THROWS_WITH_PARTS(nn::load_gpt2(dir), ValueError, "model.safetensors", "wte.weight",
                            "config.json", "[300, 16]");
    j = config_of(original->config());
    j["n_layer"] = 3;
    write_config(d, j);
    CHECK_THROWS_WITH_PARTS(nn::load_gpt2(dir), ValueError, "h.2.ln_1.weight", "n_layer 3");
    j["n_layer"] = 1;
    write_config(d, j);
    CHECK_THROWS_WITH_PARTS(nn::load_gpt2(dir), ValueError, "unknown tensor", "h.1.");
    j = config_of(original->config());
    j["n_positions"] = 1024;
    write_config(d, j);
    CHECK_THROWS_WITH_PARTS(nn::load_gpt2(dir), ValueError, "wpe.weight", "[1024, 8]");
    j["n_layer"] = 1000000000;  // refused at the first missing layer, nothing allocated
    j["n_positions"] = 6;
    write_config(d, j);
    CHECK_THROWS_WITH_PARTS(nn::load_gpt2(dir), ValueError, "h.2.ln_1.weight");
  }
  SUBCASE("an unknown extra tensor") {
    entries.push_back({"h.0.attn.rotary.weight", ones({8}, float32), "F32"});
    rewrite(entries);
    CHECK_THROWS_WITH_PARTS(nn::load_gpt2(dir), ValueError, "model.safetensors",
                            "unknown tensor 'h.0.attn.rotary.weight'");
    entries.back() = {"h.2.attn.bias", ones({1, 1, 6, 6}, float32), "F32"};  // beyond n_layer
    rewrite(entries);
    CHECK_THROWS_WITH_PARTS(nn::load_gpt2(dir), ValueError, "unknown tensor 'h.2.attn.bias'");
  }
  SUBCASE("an untied lm_head.weight") {
    entries.push_back({"lm_head.weight", mul(original->wte->weight.detach(), 2.0), "F32"});
    rewrite(entries);
    CHECK_THROWS_WITH_PARTS(nn::load_gpt2(dir), ValueError, "model.safetensors", "lm_head.weight",
                            "tied");
  }
  SUBCASE("the same tensor with and without the prefix") {
    entries.push_back({"transformer.wte.weight", original->wte->weight.detach(), "F32"});
    rewrite(entries);
    CHECK_THROWS_WITH_PARTS(nn::load_gpt2(dir), ValueError, "wte.weight", "transformer.wte.weight",
                            "twice");
  }
  SUBCASE("a truncated weights file") {
    std::string bytes = test::read_bytes(d.file("model.safetensors"));
    test::write_bytes(d.file("model.safetensors"), bytes.substr(0, bytes.size() - 5));
    CHECK_THROWS_WITH_PARTS(nn::load_gpt2(dir), IOError, "model.safetensors");
  }
  SUBCASE("no weights") {
    std::filesystem::remove(d.file("model.safetensors"));
    CHECK_FALSE(nn::is_gpt2_directory(dir));
    CHECK_THROWS_WITH_PARTS(nn::load_gpt2(dir), IOError, "model.safetensors", "no such file");
  }
}

TEST_CASE("malformed config.json: errors name the file and the field") {
  auto original = random_model(small_config(), 6);
  TempDir d;
  write_dir(d, *original);
  const std::string dir = d.path.string();
  auto with = [&](const char* key, Json value) {
    Json j = config_of(original->config());
    if (value.is_discarded())
      j.erase(key);
    else
      j[key] = value;
    write_config(d, j);
  };
  const Json absent = Json(Json::value_t::discarded);
  struct Case {
    const char* key;
    Json value;
    const char* message;
  };
  for (const Case& c : std::vector<Case>{
           {"n_layer", absent, "is missing"},
           {"n_head", "2", "not an integer"},
           {"n_embd", 8.5, "not an integer"},
           {"vocab_size", -3, "not in [1, 2^32]"},
           {"vocab_size", 0, "not in [1, 2^32]"},
           {"n_positions", 1e30, "not an integer"},
           {"n_positions", uint64_t{1} << 63, "not in [1, 2^32]"},
           {"n_head", 3, "not divisible by n_head 3"},
           {"layer_norm_epsilon", -1e-5, "not a positive number"},
           {"layer_norm_epsilon", "small", "not a number"},
           {"activation_function", "relu", "is 'relu'"},
           {"activation_function", 1, "not a string"},
           {"model_type", "gpt_neo", "not 'gpt2'"},
           {"n_inner", 64, "only the MLP width 4 n_embd = 32"},
           {"scale_attn_weights", false, "scale_attn_weights"},
           {"scale_attn_by_inverse_layer_idx", true, "not supported"},
           {"add_cross_attention", "yes", "not true or false"},
       }) {
    INFO(c.key << " = " << c.value.dump());
    with(c.key, c.value);
    CHECK_THROWS_WITH_PARTS(nn::load_gpt2(dir), ValueError, "config.json", c.key, c.message);
  }
  // Accepted: n_inner null or 4 n_embd, the defaults spelled out, gelu_pytorch_tanh.
  for (auto [key, value] :
       std::vector<std::pair<const char*, Json>>{{"n_inner", nullptr},
                                                 {"n_inner", 32},
                                                 {"scale_attn_weights", true},
                                                 {"activation_function", "gelu_pytorch_tanh"},
                                                 {"layer_norm_epsilon", absent}}) {
    INFO(key);
    with(key, value);
    check_same_model(*original, *nn::load_gpt2(dir));
  }
  test::write_bytes(d.file("config.json"), "[1, 2]");
  CHECK_THROWS_WITH_PARTS(nn::load_gpt2(dir), ValueError, "config.json", "not a JSON object");
  test::write_bytes(d.file("config.json"), "{\"n_layer\": 2,");
  CHECK_THROWS_WITH_PARTS(nn::load_gpt2(dir), IOError, "config.json", "not valid JSON");
  std::filesystem::remove(d.file("config.json"));
  CHECK_FALSE(nn::is_gpt2_directory(dir));
  CHECK_THROWS_WITH_PARTS(nn::load_gpt2(dir), IOError, "config.json", "no such file");
}

TEST_CASE("save_gpt2 refuses unmerged LoRA adapters and unwritable directories") {
  auto model = random_model(small_config(), 8);
  TempDir d;
  model->blocks[1]->mlp->fc->add_adapter(2, 4.0);
  CHECK_THROWS_WITH_PARTS(nn::save_gpt2(d.file("out"), *model), ValueError, "blocks.1", "mlp.c_fc",
                          "LoRA", "merge");
  CHECK_FALSE(std::filesystem::exists(d.file("out")));  // nothing written
  model->blocks[1]->mlp->fc->merge_adapter();
  nn::save_gpt2(d.file("out"), *model);
  check_same_model(*model, *nn::load_gpt2(d.file("out")));
  test::write_bytes(d.file("plain"), "x");
  CHECK_THROWS_WITH_PARTS(nn::save_gpt2(d.file("plain"), *model), IOError, "plain");
  CHECK_FALSE(nn::is_gpt2_directory(d.file("plain")));
  CHECK_FALSE(nn::is_gpt2_directory(d.file("nowhere")));
}
