// Checkpoints: the safetensors format byte for byte, round trips of every dtype, model and
// optimizer state, atomic writes, and files that are truncated, corrupt or do not fit the model.
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <bit>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "nn/nn.h"
#include "support.h"

using namespace ag;
using test::read_bytes;
using test::TempDir;
using test::write_bytes;
namespace fs = std::filesystem;

namespace {

// Appends v little-endian, whatever the host.
template <class T>
void append_le(std::string& s, T v) {
  using U =
      std::conditional_t<sizeof(T) == 8, uint64_t,
                         std::conditional_t<sizeof(T) == 4, uint32_t,
                                            std::conditional_t<sizeof(T) == 2, uint16_t, uint8_t>>>;
  U u = std::bit_cast<U>(v);
  for (size_t i = 0; i < sizeof(T); ++i) s.push_back(static_cast<char>((u >> (8 * i)) & 0xff));
}

// A safetensors file from its parts: header length (u64 LE), header text, data bytes.
std::string safetensors_file(const std::string& header, const std::string& data) {
  std::string s;
  append_le<uint64_t>(s, header.size());
  return s + header + data;
}

// CRC-32 as zlib computes it, bit by bit (independent of the library's table or zlib call).
uint32_t reference_crc32(const std::string& bytes) {
  uint32_t crc = 0xffffffffu;
  for (unsigned char b : bytes) {
    crc ^= b;
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ ((crc & 1) ? 0xedb88320u : 0u);
  }
  return ~crc;
}

// The header length of a safetensors file (u64 little-endian in its first 8 bytes).
uint64_t header_length(const std::string& bytes) {
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(bytes[i]);
  return n;
}

// A model with parameters in nested modules and an int64 buffer.
struct Tiny : nn::Module {
  explicit Tiny(uint64_t seed, int64_t hidden = 4) {
    Generator g(seed);
    fc1 = register_module("fc1", std::make_shared<nn::Linear>(3, hidden, true, &g));
    fc2 = register_module("fc2", std::make_shared<nn::Linear>(hidden, 2, true, &g));
    scale = register_parameter("scale", uniform({2}, 0.5, 1.5, float32, &g));
    seen =
        register_buffer("seen", Tensor::from_vector<int64_t>({static_cast<int64_t>(seed), 2, 3}));
  }
  Tensor forward(const Tensor& x) override { return fc2->forward(tanh(fc1->forward(x))) * scale; }
  std::string type_name() const override { return "Tiny"; }
  std::shared_ptr<nn::Linear> fc1, fc2;
  Tensor scale, seen;
};

// Every value of a module's state, to compare before and after.
std::vector<std::vector<double>> snapshot(const nn::Module& m) {
  std::vector<std::vector<double>> s;
  for (auto& [_, t] : m.state_dict()) s.push_back(t.to_vector<double>());
  return s;
}

Tensor output_of(nn::Module& m, const Tensor& x) {
  NoGradGuard ng;
  return m.forward(x);
}

Tensor inputs() { return Tensor({{0.5, -1.0, 2.0}, {1.5, 0.25, -0.75}}); }

}  // namespace

TEST_CASE("safetensors round trip: float32, float64, int64 and bool, any shape, with metadata") {
  TempDir dir;
  Generator g(3);
  Tensor f32 = randn({2, 3, 4}, float32, &g);
  Tensor f64 = randn({5}, float64, &g);
  Tensor i64 = Tensor::from_vector<int64_t>({-3, 0, 1LL << 40, 7}, {2, 2});
  Tensor mask = Tensor({1.0, 0.0, 1.0}) > 0.5;
  Tensor scalar = scalar_tensor(2.5, float64);
  Tensor empty = zeros({0, 3});
  Tensor transposed = randn({3, 2}, float32, &g).t();  // not contiguous: written row-major
  nn::StateDict state = {{"f32", f32},
                         {"f64", f64},
                         {"i64", i64},
                         {"mask", mask},
                         {"scalar", scalar},
                         {"empty", empty},
                         {"transposed", transposed}};
  nn::Metadata meta = {{"epoch", "3"}, {"note", "héllo wörld"}, {"empty", ""}};
  nn::save_safetensors(dir.file("t.safetensors"), state, meta);

  nn::Metadata read_meta;
  nn::StateDict back = nn::load_safetensors(dir.file("t.safetensors"), &read_meta);
  CHECK(read_meta == meta);
  REQUIRE(back.size() == state.size());
  for (size_t i = 0; i < state.size(); ++i) {
    INFO(state[i].first);
    CHECK(back[i].first == state[i].first);  // the order of saving
    CHECK(back[i].second.dtype() == state[i].second.dtype());
    CHECK(back[i].second.shape() == state[i].second.shape());
    CHECK(back[i].second.to_vector<double>() == state[i].second.to_vector<double>());
  }
  CHECK(back[2].second.to_vector<int64_t>()[2] == (1LL << 40));
  CHECK(back[3].second.to_vector<int64_t>() == std::vector<int64_t>{1, 0, 1});
  CHECK(nn::load_safetensors(dir.file("t.safetensors")).size() == state.size());  // meta optional
  CHECK(dir.listing() == std::vector<std::string>{"t.safetensors"});  // no temporary left
}

TEST_CASE("the file is safetensors byte for byte: length, JSON header padded to 8, raw data") {
  TempDir dir;
  Tensor a = Tensor({{1.5, -2.0}, {0.25, 8.0}});
  Tensor b = Tensor::from_vector<int64_t>({5, -6});
  nn::save_safetensors(dir.file("x.safetensors"), {{"a", a}, {"b", b}}, {{"k", "v"}});
  std::string bytes = read_bytes(dir.file("x.safetensors"));
  REQUIRE(bytes.size() >= 8);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(bytes[i]);
  CHECK(n % 8 == 0);
  REQUIRE(bytes.size() == 8 + n + 16 + 16);
  auto header = nlohmann::json::parse(bytes.substr(8, n));
  CHECK(header["__metadata__"]["k"] == "v");
  CHECK(header["__metadata__"].size() == 2);  // and the checksum (tested below)
  CHECK(header["a"]["dtype"] == "F32");
  CHECK(header["a"]["shape"] == nlohmann::json{2, 2});
  CHECK(header["a"]["data_offsets"] == nlohmann::json{0, 16});
  CHECK(header["b"]["dtype"] == "I64");
  CHECK(header["b"]["shape"] == nlohmann::json{2});
  CHECK(header["b"]["data_offsets"] == nlohmann::json{16, 32});
  std::string data;
  for (float v : {1.5f, -2.0f, 0.25f, 8.0f}) append_le(data, v);
  for (int64_t v : {5, -6}) append_le(data, v);
  CHECK(bytes.substr(8 + n) == data);
}

TEST_CASE("a safetensors file written by hand is read: our dtypes and the converted ones") {
  TempDir dir;
  std::string header = R"({"__metadata__":{"format":"pt"},)"
                       R"("w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                       R"("d":{"dtype":"F64","shape":[],"data_offsets":[8,16]},)"
                       R"("n":{"dtype":"I64","shape":[1,1],"data_offsets":[16,24]},)"
                       R"("m":{"dtype":"BOOL","shape":[3],"data_offsets":[24,27]},)"
                       R"("h":{"dtype":"F16","shape":[5],"data_offsets":[27,37]},)"
                       R"("bf":{"dtype":"BF16","shape":[2],"data_offsets":[37,41]},)"
                       R"("i32":{"dtype":"I32","shape":[2],"data_offsets":[41,49]},)"
                       R"("i16":{"dtype":"I16","shape":[1],"data_offsets":[49,51]},)"
                       R"("i8":{"dtype":"I8","shape":[1],"data_offsets":[51,52]},)"
                       R"("u8":{"dtype":"U8","shape":[2],"data_offsets":[52,54]}})";
  std::string data;
  append_le(data, 1.5f);
  append_le(data, -0.125f);
  append_le(data, 3.25);
  append_le<int64_t>(data, -42);
  data += std::string("\x01\x00\x02", 3);  // any non-zero byte is true
  // F16: 1, -2, 1/3 (rounded), the smallest subnormal 2^-24, +inf
  for (uint16_t h : {0x3c00, 0xc000, 0x3555, 0x0001, 0x7c00}) append_le(data, h);
  for (uint16_t h : {0x3fc0, 0xc120}) append_le(data, h);  // BF16: 1.5, -10
  append_le<int32_t>(data, -5);
  append_le<int32_t>(data, 1 << 30);
  append_le<int16_t>(data, -300);
  append_le<int8_t>(data, -3);
  append_le<uint8_t>(data, 200);
  append_le<uint8_t>(data, 0);
  write_bytes(dir.file("hand.safetensors"), safetensors_file(header, data));

  nn::Metadata meta;
  nn::StateDict s = nn::load_safetensors(dir.file("hand.safetensors"), &meta);
  CHECK(meta == nn::Metadata{{"format", "pt"}});
  std::map<std::string, Tensor> t(s.begin(), s.end());
  std::vector<std::string> order;
  for (auto& [name, _] : s) order.push_back(name);
  CHECK(order == std::vector<std::string>{"w", "d", "n", "m", "h", "bf", "i32", "i16", "i8", "u8"});
  CHECK(t["w"].dtype() == float32);
  CHECK(t["w"].to_vector<float>() == std::vector<float>{1.5f, -0.125f});
  CHECK(t["d"].dtype() == float64);
  CHECK(t["d"].dim() == 0);
  CHECK(t["d"].item() == 3.25);
  CHECK(t["n"].shape() == Shape{1, 1});
  CHECK(t["n"].to_vector<int64_t>() == std::vector<int64_t>{-42});
  CHECK(t["m"].dtype() == boolean);
  CHECK(t["m"].to_vector<int64_t>() == std::vector<int64_t>{1, 0, 1});  // 2 read as true
  CHECK(t["h"].dtype() == float32);
  std::vector<float> h = t["h"].to_vector<float>();
  CHECK(h[0] == 1.0f);
  CHECK(h[1] == -2.0f);
  CHECK(h[2] == doctest::Approx(1.0 / 3).epsilon(1e-3));
  CHECK(h[3] == std::ldexp(1.0f, -24));
  CHECK(std::isinf(h[4]));
  CHECK(t["bf"].dtype() == bfloat16);  // read natively
  CHECK(t["bf"].to_vector<float>() == std::vector<float>{1.5f, -10.0f});
  CHECK(t["i32"].dtype() == int64);
  CHECK(t["i32"].to_vector<int64_t>() == std::vector<int64_t>{-5, 1 << 30});
  CHECK(t["i16"].to_vector<int64_t>() == std::vector<int64_t>{-300});
  CHECK(t["i8"].to_vector<int64_t>() == std::vector<int64_t>{-3});
  CHECK(t["u8"].to_vector<int64_t>() == std::vector<int64_t>{200, 0});
}

TEST_CASE("save_checkpoint / load_checkpoint: the loaded model computes the same outputs") {
  TempDir dir;
  Tiny a(1), b(2);
  Tensor held = b.fc1->weight;  // a handle held elsewhere (by an optimizer, say)
  Tensor x = inputs();
  CHECK_FALSE(test::allclose(output_of(a, x), output_of(b, x)));
  nn::save_checkpoint(dir.file("m.safetensors"), a, nullptr, {{"epoch", "7"}});
  nn::CheckpointInfo info = nn::load_checkpoint(dir.file("m.safetensors"), b);
  CHECK(output_of(b, x).to_vector<float>() == output_of(a, x).to_vector<float>());
  CHECK(snapshot(b) == snapshot(a));
  CHECK(b.seen.to_vector<int64_t>() == std::vector<int64_t>{1, 2, 3});  // the buffer too
  CHECK(info.metadata == nn::Metadata{{"epoch", "7"}});
  CHECK(info.model.ok());
  CHECK(held.to_vector<float>() == a.fc1->weight.to_vector<float>());  // sees the loaded values
}

TEST_CASE("optimizer state: Adam's buffers and hyper-parameters come back exactly") {
  TempDir dir;
  Tensor x = inputs(), y = Tensor({{0.5, -0.5}, {1.0, 0.0}});
  auto train = [&](Tiny& m, nn::Optimizer& opt, int steps) {
    for (int i = 0; i < steps; ++i) {
      opt.zero_grad();
      mean(square(m.forward(x) - y)).backward();
      opt.step();
    }
  };
  nn::AdamOptions o;
  o.lr = 0.05;
  o.weight_decay = 0.01;
  Tiny a(1);
  nn::Adam adam_a(a.parameters(), o);
  train(a, adam_a, 3);
  nn::save_checkpoint(dir.file("ckpt.safetensors"), a, &adam_a, {{"epoch", "3"}});
  nn::OptimizerState saved = adam_a.state_dict();
  std::vector<std::vector<double>> saved_buffers;
  for (auto& [_, t] : saved.tensors) saved_buffers.push_back(t.to_vector<double>());
  train(a, adam_a, 2);  // the run goes on after the checkpoint

  // The keys as stored: buffers as tensors, scalars as metadata.
  nn::Metadata meta;
  nn::StateDict raw = nn::load_safetensors(dir.file("ckpt.safetensors"), &meta);
  CHECK(meta.at("optimizer/step") == "3");
  CHECK(meta.at("optimizer/group.0.lr") == "0.05");
  CHECK(meta.at("epoch") == "3");
  int optimizer_tensors = 0;
  for (auto& [k, _] : raw) optimizer_tensors += k.starts_with("optimizer/state.0.");
  CHECK(optimizer_tensors == static_cast<int>(saved.tensors.size()));
  CHECK(saved.tensors.size() >= 3 * a.parameters().size());  // step, exp_avg, exp_avg_sq each

  // A new model with another initialisation and an optimizer with other settings: resumed.
  Tiny b(2);
  nn::Adam adam_b(b.parameters());
  nn::CheckpointInfo info = nn::load_checkpoint(dir.file("ckpt.safetensors"), b, &adam_b);
  CHECK(info.metadata == nn::Metadata{{"epoch", "3"}});
  CHECK(adam_b.steps() == 3);
  CHECK(adam_b.param_groups()[0].lr() == 0.05);
  CHECK(adam_b.param_groups()[0].options.weight_decay == 0.01);
  nn::OptimizerState restored = adam_b.state_dict();
  REQUIRE(restored.tensors.size() == saved.tensors.size());
  for (size_t i = 0; i < restored.tensors.size(); ++i) {
    INFO(restored.tensors[i].first);
    CHECK(restored.tensors[i].first == saved.tensors[i].first);
    CHECK(restored.tensors[i].second.dtype() == saved.tensors[i].second.dtype());
    CHECK(restored.tensors[i].second.to_vector<double>() == saved_buffers[i]);
  }
  train(b, adam_b, 2);
  CHECK(snapshot(b) == snapshot(a));  // bit for bit the run that never stopped
}

TEST_CASE("the data section's CRC-32 is recorded and checked: corruption is refused") {
  CHECK(reference_crc32("123456789") == 0xcbf43926u);  // the standard check value
  TempDir dir;
  Tiny source(1);
  std::string path = dir.file("m.safetensors");
  nn::save_checkpoint(path, source, nullptr, {{"epoch", "4"}});
  std::string good = read_bytes(path);
  uint64_t n = header_length(good);
  auto header = nlohmann::json::parse(good.substr(8, n));
  CHECK(header["__metadata__"]["tapegrad.data_crc32"] ==
        fmt::format("{:08x}", reference_crc32(good.substr(8 + n))));
  Tiny model(2);
  nn::CheckpointInfo info = nn::load_checkpoint(path, model);
  CHECK(info.metadata == nn::Metadata{{"epoch", "4"}});  // the checksum entry is not returned
  CHECK(snapshot(model) == snapshot(source));

  Tiny other(3);
  auto before = snapshot(other);
  SUBCASE("one bit flipped in the data: IOError, nothing loaded") {
    for (size_t at : {size_t{8 + n}, good.size() / 2 + n / 2, good.size() - 1}) {
      std::string bad = good;
      bad[at] = static_cast<char>(bad[at] ^ 0x10);
      write_bytes(path, bad);
      CHECK_THROWS_WITH_PARTS(nn::load_checkpoint(path, other), IOError, path.c_str(), "corrupt",
                              "CRC-32");
      CHECK_THROWS_WITH_PARTS(nn::load_safetensors(path), IOError, "corrupt");
      CHECK(snapshot(other) == before);
    }
  }
  SUBCASE("a checksum entry that is not 8 hex digits") {
    std::string bad = good;
    size_t at = bad.find("tapegrad.data_crc32\":\"");
    REQUIRE(at != std::string::npos);
    bad[at + 22] = 'X';
    write_bytes(path, bad);
    CHECK_THROWS_WITH_PARTS(nn::load_checkpoint(path, other), IOError, "tapegrad.data_crc32",
                            "hex");
    CHECK(snapshot(other) == before);
  }
  SUBCASE("a file without a checksum (written by another tool) loads") {
    nn::StateDict state = source.state_dict();
    std::string data, text = "{";
    uint64_t offset = 0;
    for (auto& [name, t] : state) {
      Tensor c = t.contiguous();
      std::string bytes;
      if (c.dtype() == float32)
        for (float v : c.to_vector<float>()) append_le(bytes, v);
      else
        for (int64_t v : c.to_vector<int64_t>()) append_le(bytes, v);
      text += fmt::format(R"({}"{}":{{"dtype":"{}","shape":{},"data_offsets":[{},{}]}})",
                          offset ? "," : "", name, c.dtype() == float32 ? "F32" : "I64",
                          nlohmann::json(c.shape().vec()).dump(), offset, offset + bytes.size());
      offset += bytes.size();
      data += bytes;
    }
    write_bytes(path, safetensors_file(text + "}", data));
    nn::load_checkpoint(path, other);
    CHECK(snapshot(other) == snapshot(source));
  }
  SUBCASE("the key is reserved") {
    CHECK_THROWS_WITH_PARTS(
        nn::save_checkpoint(path, source, nullptr, {{"tapegrad.data_crc32", "00000000"}}),
        ValueError, "tapegrad.data_crc32", "reserved");
    CHECK(read_bytes(path) == good);
  }
}

TEST_CASE("a failed write leaves the previous checkpoint intact and no temporary file") {
  TempDir dir;
  Tiny old_model(1);
  std::string path = dir.file("m.safetensors");
  nn::save_checkpoint(path, old_model);
  std::string before = read_bytes(path);

  SUBCASE("target directory does not exist") {
    std::string missing = dir.file("no/such/dir/m.safetensors");
    CHECK_THROWS_WITH_PARTS(nn::save_checkpoint(missing, old_model), IOError, "save_safetensors",
                            "no/such/dir/m.safetensors", "No such file");
    CHECK_FALSE(fs::exists(missing));
  }
  SUBCASE("the disk fills up in the middle of the data") {
    // A file size limit makes write() fail with EFBIG part way, as a full disk would.
    Tiny big(2, 500);  // about 14 kB of parameters
    struct rlimit saved_limit;
    REQUIRE(getrlimit(RLIMIT_FSIZE, &saved_limit) == 0);
    auto saved_handler = signal(SIGXFSZ, SIG_IGN);
    struct rlimit small = saved_limit;
    small.rlim_cur = 4096;
    REQUIRE(setrlimit(RLIMIT_FSIZE, &small) == 0);
    bool thrown = false;
    std::string message;
    try {
      nn::save_checkpoint(path, big);
    } catch (const IOError& e) {
      thrown = true;
      message = e.what();
    }
    setrlimit(RLIMIT_FSIZE, &saved_limit);
    signal(SIGXFSZ, saved_handler);
    CHECK(thrown);
    CHECK(message.find(path) != std::string::npos);
    CHECK(message.find("cannot write") != std::string::npos);
  }
  CHECK(read_bytes(path) == before);
  CHECK(dir.listing() == std::vector<std::string>{"m.safetensors"});
  Tiny other(3);
  nn::load_checkpoint(path, other);
  CHECK(snapshot(other) == snapshot(old_model));
}

TEST_CASE("a truncated, corrupt or mismatched file is rejected and the model is left untouched") {
  TempDir dir;
  Tiny source(1);
  std::string good_path = dir.file("good.safetensors");
  nn::save_checkpoint(good_path, source);
  std::string good = read_bytes(good_path);
  std::string path = dir.file("bad.safetensors");

  Tiny model(2);
  auto before = snapshot(model);
  auto check_rejected = [&](const std::string& bytes, const char* part) {
    write_bytes(path, bytes);
    CHECK_THROWS_WITH_PARTS(nn::load_checkpoint(path, model), IOError, path.c_str(), part);
    CHECK(snapshot(model) == before);
  };
  // One float32 tensor "w" of shape [2] at [0, 8) unless the header says otherwise.
  std::string eight_bytes(8, '\0');
  auto file_with = [&](const std::string& entries) {
    return safetensors_file("{" + entries + "}", eight_bytes);
  };

  SUBCASE("truncated data") { check_rejected(good.substr(0, good.size() - 10), "truncated"); }
  SUBCASE("truncated inside the header") { check_rejected(good.substr(0, 40), "header length"); }
  SUBCASE("shorter than the header length") { check_rejected(good.substr(0, 5), "too few"); }
  SUBCASE("an empty file") { check_rejected("", "too few"); }
  SUBCASE("absurd header length") {
    std::string s;
    append_le<uint64_t>(s, 1ULL << 62);
    check_rejected(s + good.substr(8), "header length");
  }
  SUBCASE("not JSON") {
    std::string bad = good;
    bad[8] = '[';
    bad[9] = '}';
    check_rejected(bad, "not valid JSON");
  }
  SUBCASE("a number beyond double's range") {
    check_rejected(file_with(R"("w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"x":6E666)"),
                   "not valid JSON");
  }
  SUBCASE("JSON, but not an object") {
    check_rejected(safetensors_file("[1, 2]", ""), "not a JSON object");
  }
  SUBCASE("unknown dtype") {
    check_rejected(file_with(R"("w":{"dtype":"F33","shape":[2],"data_offsets":[0,8]})"),
                   "unsupported dtype \"F33\"");
  }
  SUBCASE("shape and offsets disagree") {
    check_rejected(file_with(R"("w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]})"),
                   "span 8 bytes but F32 [3] needs 12");
  }
  SUBCASE("negative size") {
    check_rejected(file_with(R"("w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]})"),
                   "not a non-negative integer");
  }
  SUBCASE("offsets in reverse") {
    check_rejected(file_with(R"("w":{"dtype":"F32","shape":[0],"data_offsets":[8,0]})"),
                   "data_offsets [8,0]");
  }
  SUBCASE("missing field") {
    check_rejected(file_with(R"("w":{"dtype":"F32","shape":[2]})"), "data_offsets");
  }
  SUBCASE("offsets out of bounds") {
    check_rejected(file_with(R"("w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]})"),
                   "ends at byte 16");
  }
  SUBCASE("overlapping tensors") {
    check_rejected(file_with(R"("w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                             R"("v":{"dtype":"F32","shape":[1],"data_offsets":[4,8]})"),
                   "overlap");
  }
  SUBCASE("a gap between tensors") {
    check_rejected(file_with(R"("w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]})"),
                   "bytes [0, 4) of the data section belong to no tensor");
  }
  SUBCASE("bytes after the last tensor") {
    check_rejected(good + "junk", "4 bytes after the last tensor");
  }
  SUBCASE("metadata that is not a string") {
    check_rejected(file_with(R"("__metadata__":{"epoch":3},)"
                             R"("w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]})"),
                   "not a string");
  }
  SUBCASE("no such file") {
    std::string missing = dir.file("missing.safetensors");
    CHECK_THROWS_WITH_PARTS(nn::load_checkpoint(missing, model), IOError, missing.c_str(),
                            "no such file");
    CHECK(snapshot(model) == before);
  }
  SUBCASE("a valid file of another architecture: names and shapes listed, nothing loaded") {
    Tiny wide(3, 5);
    nn::save_checkpoint(path, wide);
    CHECK_THROWS_WITH_PARTS(nn::load_checkpoint(path, model), ValueError, path.c_str(),
                            "fc1.weight", "[5, 3]", "[4, 3]", "fc2.weight");
    CHECK(snapshot(model) == before);
  }
  SUBCASE("a valid file with a tensor missing (strict) or an extra one") {
    nn::StateDict state = source.state_dict();
    std::erase_if(state, [](auto& e) { return e.first == "fc1.weight"; });
    state.emplace_back("extra", zeros({1}));
    nn::save_safetensors(path, state);
    CHECK_THROWS_WITH_PARTS(nn::load_checkpoint(path, model), ValueError, "missing", "fc1.weight",
                            "unexpected", "extra");
    CHECK(snapshot(model) == before);
    // Non-strict: the rest is loaded and the differences reported.
    nn::CheckpointInfo info = nn::load_checkpoint(path, model, nullptr, /*strict=*/false);
    CHECK(info.model.missing == std::vector<std::string>{"fc1.weight"});
    CHECK(info.model.unexpected == std::vector<std::string>{"extra"});
    CHECK(model.fc2->weight.to_vector<float>() == source.fc2->weight.to_vector<float>());
    CHECK(model.fc1->weight.to_vector<float>() != source.fc1->weight.to_vector<float>());
    CHECK(snapshot(model) != before);
  }
}

TEST_CASE("optimizer state that does not fit leaves model and optimizer unchanged") {
  TempDir dir;
  Tensor x = inputs();
  Tiny a(1);
  nn::Adam adam_a(a.parameters());
  adam_a.zero_grad();
  mean(square(a.forward(x))).backward();
  adam_a.step();
  std::string path = dir.file("ckpt.safetensors");
  nn::save_checkpoint(path, a, &adam_a);

  SUBCASE("optimizer over other parameters") {
    Tiny b(2);
    nn::Adam partial({b.fc1->weight});
    auto before = snapshot(b);
    CHECK_THROWS_WITH_PARTS(nn::load_checkpoint(path, b, &partial), ValueError, path.c_str(),
                            "group 0 has 1 parameters");
    CHECK(snapshot(b) == before);
    CHECK(partial.steps() == 0);
    CHECK(partial.state_dict().tensors.empty());
  }
  SUBCASE("the optimizer fits, the model does not: the optimizer gets its state back") {
    Tiny b(2);
    nn::AdamOptions o;
    o.lr = 0.125;
    nn::Adam adam_b(b.parameters(), o);
    adam_b.zero_grad();
    mean(square(b.forward(x))).backward();
    adam_b.step();
    adam_b.step();
    nn::OptimizerState state_before = adam_b.state_dict();
    std::vector<std::vector<double>> buffers_before;
    for (auto& [_, t] : state_before.tensors) buffers_before.push_back(t.to_vector<double>());
    // Same parameter shapes, but the file lacks a buffer the model has.
    nn::StateDict file = nn::load_safetensors(path);
    nn::Metadata meta;
    nn::load_safetensors(path, &meta);
    std::erase_if(file, [](auto& e) { return e.first == "seen"; });
    nn::save_safetensors(path, file, meta);
    auto before = snapshot(b);
    CHECK_THROWS_WITH_PARTS(nn::load_checkpoint(path, b, &adam_b), ValueError, "missing", "seen");
    CHECK(snapshot(b) == before);
    CHECK(adam_b.steps() == 2);
    CHECK(adam_b.param_groups()[0].lr() == 0.125);
    nn::OptimizerState after = adam_b.state_dict();
    REQUIRE(after.tensors.size() == buffers_before.size());
    for (size_t i = 0; i < buffers_before.size(); ++i)
      CHECK(after.tensors[i].second.to_vector<double>() == buffers_before[i]);
  }
  SUBCASE("a checkpoint saved without an optimizer") {
    Tiny b(2);
    nn::Adam adam_b(b.parameters());
    nn::save_checkpoint(path, a);
    auto before = snapshot(b);
    CHECK_THROWS_WITH_PARTS(nn::load_checkpoint(path, b, &adam_b), ValueError, path.c_str(),
                            "no optimizer state");
    CHECK(snapshot(b) == before);
    // Loading the model alone from a checkpoint with optimizer state is fine.
    nn::save_checkpoint(path, a, &adam_a);
    nn::load_checkpoint(path, b);
    CHECK(snapshot(b) == snapshot(a));
  }
}

TEST_CASE("save errors name the problem") {
  TempDir dir;
  std::string path = dir.file("e.safetensors");
  Tensor t = zeros({2});
  CHECK_THROWS_WITH_PARTS(nn::save_safetensors(path, {{"a", t}, {"a", t}}), ValueError, "'a'",
                          "twice");
  CHECK_THROWS_WITH_PARTS(nn::save_safetensors(path, {{"a", Tensor()}}), ValueError, "'a'",
                          "undefined");
  CHECK_THROWS_WITH_PARTS(nn::save_safetensors(path, {{"__metadata__", t}}), ValueError,
                          "__metadata__");
  CHECK_THROWS_WITH_PARTS(nn::save_safetensors(path, {{"", t}}), ValueError, "invalid tensor name");
  CHECK_THROWS_WITH_PARTS(nn::save_safetensors(path, {{"a", t}}, {{"k", "\xff\xfe"}}), ValueError,
                          "UTF-8");
  Tiny m(1);
  CHECK_THROWS_WITH_PARTS(nn::save_checkpoint(path, m, nullptr, {{"optimizer/step", "1"}}),
                          ValueError, "reserved prefix");
  CHECK(dir.listing().empty());  // nothing was written
}

// ---- .npy ----

namespace {
// A version 1.0 .npy file written by hand: magic, header length, a padded dict, the data.
std::string npy_file(const std::string& dict, const std::string& data) {
  std::string header = dict;
  while ((10 + header.size() + 1) % 64 != 0) header += ' ';
  header += '\n';
  std::string s = "\x93NUMPY";
  s += '\x01';
  s += '\x00';
  append_le<uint16_t>(s, static_cast<uint16_t>(header.size()));
  return s + header + data;
}
}  // namespace

TEST_CASE(".npy round trip for every dtype, any shape, strided input written row-major") {
  TempDir dir;
  Tensor f = Tensor::from_vector(std::vector<float>{1.5f, -2, 3, 4, 5, 6}, {2, 3});
  Tensor d = Tensor::from_vector(std::vector<double>{0.1, 1e-300, -7}, {3});
  Tensor i = Tensor::from_vector(std::vector<int64_t>{-1, int64_t{1} << 40}, {2, 1});
  Tensor b = gt(f, full({}, 2.5));
  for (const Tensor& t : {f, d, i, b, f.t(), scalar_tensor(4.25, float64)}) {
    nn::save_npy(dir.file("t.npy"), t);
    Tensor r = nn::load_npy(dir.file("t.npy"));
    CHECK(r.dtype() == t.dtype());
    CHECK(r.shape() == t.shape());
    CHECK(r.to(float64).to_vector<double>() == t.to(float64).to_vector<double>());
  }
  CHECK(dir.listing() == std::vector<std::string>{"t.npy"});  // no temporary left
  // The header is NumPy's: C order, little-endian float32, the shape as a tuple.
  nn::save_npy(dir.file("f.npy"), f);
  std::string bytes = read_bytes(dir.file("f.npy"));
  CHECK(bytes.substr(0, 6) == "\x93NUMPY");
  CHECK(bytes.find("'descr': '<f4'") != std::string::npos);
  CHECK(bytes.find("'fortran_order': False") != std::string::npos);
  CHECK(bytes.find("'shape': (2, 3)") != std::string::npos);
  CHECK(bytes.size() % 16 == 24 % 16);  // header padded to 64 bytes (here 128) + 24 data bytes
}

TEST_CASE(".npy files written elsewhere: Fortran order is read row-major; bad files are rejected") {
  TempDir dir;
  std::string data;
  for (double v : {1.0, 4.0, 2.0, 5.0, 3.0, 6.0})
    append_le(data, v);  // [[1,2,3],[4,5,6]] in F order
  write_bytes(dir.file("f.npy"),
              npy_file("{'descr': '<f8', 'fortran_order': True, 'shape': (2, 3), }", data));
  Tensor r = nn::load_npy(dir.file("f.npy"));
  CHECK(r.shape() == Shape{2, 3});
  CHECK(r.to_vector<double>() == std::vector<double>{1, 2, 3, 4, 5, 6});

  write_bytes(dir.file("short.npy"), npy_file("{'descr': '<f8', 'fortran_order': False, "
                                              "'shape': (2, 3), }",
                                              data.substr(0, 20)));
  CHECK_THROWS_WITH_PARTS(nn::load_npy(dir.file("short.npy")), IOError, "load_npy", "short.npy",
                          "truncated");
  std::string ints;
  for (int32_t v : {1, 2}) append_le(ints, v);
  write_bytes(dir.file("i4.npy"),
              npy_file("{'descr': '<i4', 'fortran_order': False, 'shape': (2,), }", ints));
  CHECK_THROWS_WITH_PARTS(nn::load_npy(dir.file("i4.npy")), IOError, "load_npy", "i4.npy", "<i4");
  write_bytes(dir.file("junk.npy"), "not a numpy file at all");
  CHECK_THROWS_WITH_PARTS(nn::load_npy(dir.file("junk.npy")), IOError, "load_npy", "junk.npy");
  CHECK_THROWS_WITH_PARTS(nn::load_npy(dir.file("missing.npy")), IOError, "load_npy",
                          "missing.npy");
  CHECK_THROWS_WITH_PARTS(nn::save_npy(dir.file("no/such/dir/x.npy"), ones({2})), IOError,
                          "save_npy");
}

TEST_CASE(".npy headers are checked against the file before anything is allocated") {
  TempDir dir;
  std::string path = dir.file("x.npy");
  auto rejected = [&](const std::string& bytes, const char* part) {
    write_bytes(path, bytes);
    CHECK_THROWS_WITH_PARTS(nn::load_npy(path), IOError, "load_npy", path.c_str(), part);
  };
  std::string two_floats;
  append_le(two_floats, 1.5f);
  append_le(two_floats, -2.0f);
  auto dict = [](const std::string& shape) {
    return "{'descr': '<f4', 'fortran_order': False, 'shape': " + shape + ", }";
  };
  // 2^60 elements, or sizes whose product overflows 64 bits: refused, not allocated.
  rejected(npy_file(dict("(1152921504606846976,)"), two_floats), "truncated");
  rejected(npy_file(dict("(4294967296, 4294967296, 16)"), two_floats), "too large");
  rejected(npy_file(dict("(99999999999999999999,)"), two_floats), "63 bits");
  rejected(npy_file(dict("(-2,)"), two_floats), "non-negative integer");
  rejected(npy_file(dict("(1, 1, 1, 1, 1, 1, 1, 1, 2)"), two_floats), "more than 8 axes");
  // A header length beyond the end of the file (the sign of its bytes must not matter).
  std::string s = "\x93NUMPY\x01";
  s += '\x00';
  s += "\xff\xff";
  rejected(s + "{}", "header length 65535");
  std::string v2 = "\x93NUMPY\x02";
  v2 += '\x00';
  v2 += "\xf0\xff\xff\xff";
  rejected(v2, "header length 4294967280");
  rejected(std::string("\x93NUMPY\x01", 7), "magic");
  rejected(std::string("\x93NUMPY\x04\x00\x00\x00\x00\x00", 10), "version 4.0");
  // Header dictionaries that are not what NumPy writes.
  rejected(npy_file("", two_floats), "expected '{'");
  rejected(npy_file("{'descr': '<f4', 'shape': (2,), }", two_floats), "fortran_order");
  rejected(npy_file("{'descr': '<f4', 'fortran_order': Maybe, 'shape': (2,), }", two_floats),
           "True or False");
  rejected(npy_file(dict("(2,)") + " extra", two_floats), "after the dictionary");
  rejected(npy_file("{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (2,)}",
                    two_floats),
           "repeated key 'descr'");
  rejected(npy_file(dict("(2,)"), two_floats + "xx"), "2 bytes follow");
  rejected(npy_file(dict("(3,)"), two_floats), "truncated");

  // What NumPy writes is read, in any key order, version 2.0 too, and 0-d / empty shapes.
  write_bytes(path,
              npy_file("{'shape': (2,), 'fortran_order': False, 'descr': '<f4'}", two_floats));
  CHECK(nn::load_npy(path).to_vector<float>() == std::vector<float>{1.5f, -2.0f});
  std::string header = dict("(2,)");
  while ((12 + header.size() + 1) % 64 != 0) header += ' ';
  header += '\n';
  std::string v2ok = "\x93NUMPY\x02";
  v2ok += '\x00';
  append_le<uint32_t>(v2ok, static_cast<uint32_t>(header.size()));
  write_bytes(path, v2ok + header + two_floats);
  CHECK(nn::load_npy(path).to_vector<float>() == std::vector<float>{1.5f, -2.0f});
  write_bytes(path, npy_file(dict("()"), two_floats.substr(0, 4)));
  CHECK(nn::load_npy(path).dim() == 0);
  write_bytes(path, npy_file(dict("(0, 5)"), ""));
  CHECK(nn::load_npy(path).shape() == Shape{0, 5});
}
