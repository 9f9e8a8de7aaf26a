#include "nn/text/gpt2_tokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <limits>
#include <mutex>
#include <nlohmann/json.hpp>

#include "autograd/error.h"
#include "nn/data/text.h"

namespace ag::nn {

namespace {

// GPT-2's pre-tokenizer, with \s spelled out as Unicode's White_Space property, which is what
// the Python `regex` module of GPT-2 matches by \s. PCRE2's own \s in UCP mode (10.42) differs:
// it also takes U+180E (Mongolian vowel separator, a format character since Unicode 6.3) for a
// space.
#define AG_GPT2_SPACE                                                    \
  "\\t\\n\\x{0B}\\f\\r\\x{20}\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}" \
  "\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}"
constexpr const char* kPattern =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^" AG_GPT2_SPACE
    "\\p{L}\\p{N}]+"
    "|[" AG_GPT2_SPACE "]+(?![^" AG_GPT2_SPACE "])|[" AG_GPT2_SPACE "]+";
#undef AG_GPT2_SPACE
constexpr std::string_view kEndOfText = "<|endoftext|>";
constexpr size_t kCachedPieceBytes = 64;
constexpr size_t kCacheEntries = size_t{1} << 18;

// The code point of the UTF-8 sequence at s[i] (advancing i past it), or -1 (i unchanged) if the
// bytes there are not a valid sequence.
int32_t next_code_point(std::string_view s, size_t& i) {
  auto byte = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  unsigned c = byte(i);
  if (c < 0x80) return static_cast<int32_t>(s[i++]);
  int len = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 0;
  if (len == 0 || c > 0xf4 || i + len > s.size()) return -1;
  uint32_t cp = c & (0x7f >> len);
  for (int k = 1; k < len; ++k) {
    if ((byte(i + k) & 0xc0) != 0x80) return -1;
    cp = (cp << 6) | (byte(i + k) & 0x3f);
  }
  static constexpr uint32_t kMin[5] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < kMin[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return -1;
  i += len;
  return static_cast<int32_t>(cp);
}

// The offset of the first byte of `s` that does not start a valid UTF-8 sequence, or npos.
size_t invalid_utf8_offset(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    if (static_cast<unsigned char>(s[i]) < 0x80) {
      ++i;
    } else if (next_code_point(s, i) < 0) {
      return i;
    }
  }
  return std::string_view::npos;
}

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xc0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  } else {  // the alphabet stays below U+0800
    out.push_back(static_cast<char>(0xe0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  }
}

// Code point -> byte for the alphabet (-1 elsewhere).
const std::array<int16_t, 0x144>& unicode_to_byte() {
  static const std::array<int16_t, 0x144> table = [] {
    std::array<int16_t, 0x144> t;
    t.fill(-1);
    const auto& fwd = gpt2_byte_to_unicode();
    for (int b = 0; b < 256; ++b) t[fwd[b]] = static_cast<int16_t>(b);
    return t;
  }();
  return table;
}

// The bytes a token string of the files stands for; "" with `why` set if it is not valid UTF-8
// over the alphabet (or is empty).
std::string token_bytes_of(std::string_view s, std::string& why) {
  std::string out;
  out.reserve(s.size());
  const auto& inv = unicode_to_byte();
  for (size_t i = 0; i < s.size();) {
    size_t at = i;
    int32_t cp = next_code_point(s, i);
    if (cp < 0) {
      why = fmt::format("invalid UTF-8 at byte {} of the token", at);
      return "";
    }
    if (cp >= static_cast<int32_t>(inv.size()) || inv[cp] < 0) {
      why = fmt::format("character U+{:04X} is not in GPT-2's byte alphabet", cp);
      return "";
    }
    out.push_back(static_cast<char>(inv[cp]));
  }
  if (out.empty()) why = "empty token";
  return out;
}

// The file form of a token's bytes.
std::string token_string_of(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char c : bytes) append_utf8(out, gpt2_byte_to_unicode()[static_cast<unsigned char>(c)]);
  return out;
}

// At most 60 characters of a token or line for messages.
std::string shown(std::string_view s) {
  return s.size() <= 60 ? std::string(s) : std::string(s.substr(0, 57)) + "...";
}

uint64_t pair_key(int32_t left, int32_t right) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
}

}  // namespace

const std::array<char32_t, 256>& gpt2_byte_to_unicode() {
  static const std::array<char32_t, 256> table = [] {
    std::array<char32_t, 256> t{};
    char32_t next = 0x100;
    for (int b = 0; b < 256; ++b) {
      bool printable = (b >= '!' && b <= '~') || (b >= 0xa1 && b <= 0xac) || (b >= 0xae);
      t[b] = printable ? static_cast<char32_t>(b) : next++;
    }
    return t;
  }();
  return table;
}

// ---------------------------------------------------------------------------------------------
// The files.

namespace {

// vocab.json, read by nlohmann's SAX interface: one flat object of token string -> integer id
// (the entries in file order, the token strings already turned into bytes).
class VocabReader : public nlohmann::json_sax<nlohmann::json> {
 public:
  explicit VocabReader(const std::string& path) : path_(path) {}
  std::vector<std::pair<std::string, int64_t>> entries;

  bool null() override { return not_an_id("null"); }
  bool boolean(bool) override { return not_an_id("a boolean"); }
  bool number_integer(number_integer_t v) override { return id(v); }
  bool number_unsigned(number_unsigned_t v) override {
    if (v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return not_an_id("huge");
    return id(static_cast<int64_t>(v));
  }
  bool number_float(number_float_t, const string_t& s) override { return not_an_id(s); }
  bool string(string_t&) override { return not_an_id("a string"); }
  bool binary(binary_t&) override { return not_an_id("binary data"); }
  bool start_object(std::size_t) override {
    if (depth_++ > 0) return not_an_id("an object");
    return true;
  }
  bool key(string_t& k) override {
    std::string why;
    key_ = token_bytes_of(k, why);
    key_shown_ = shown(k);
    if (!why.empty())
      fail<ValueError>("{}: entry {} (\"{}\"): {}", path_, entries.size(), key_shown_, why);
    return true;
  }
  bool end_object() override {
    --depth_;
    return true;
  }
  bool start_array(std::size_t) override { return not_an_id("an array"); }
  bool end_array() override { return true; }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception& e) override {
    fail<ValueError>("{}: invalid JSON: {}", path_, e.what());
  }

 private:
  bool id(int64_t v) {
    if (depth_ != 1) return not_an_id("a number");
    entries.emplace_back(std::move(key_), v);
    return true;
  }
  [[noreturn]] bool not_an_id(const std::string& what) {
    if (depth_ == 0) fail<ValueError>("{}: expected a JSON object of token -> id", path_);
    fail<ValueError>("{}: entry {} (\"{}\"): the id is {}, not an integer", path_, entries.size(),
                     key_shown_, what);
  }

  const std::string& path_;
  int depth_ = 0;
  std::string key_, key_shown_;
};

// The vocabulary: tokens[id] = bytes, ids 0..N-1 each once, no token twice.
std::vector<std::string> read_vocab(const std::string& path) {
  std::string text = read_text_file(path);
  VocabReader reader(path);
  nlohmann::json::sax_parse(text, &reader);
  auto& entries = reader.entries;
  const int64_t n = static_cast<int64_t>(entries.size());
  if (n == 0) fail<ValueError>("{}: no tokens", path);
  std::vector<std::string> tokens(entries.size());
  std::vector<int64_t> entry_of(entries.size(), -1);
  std::unordered_map<std::string_view, int64_t> seen;
  for (int64_t e = 0; e < n; ++e) {
    auto& [bytes, id] = entries[e];
    std::string name = shown(token_string_of(bytes));
    if (id < 0 || id >= n)
      fail<ValueError>("{}: entry {} (\"{}\"): id {} is outside [0, {})", path, e, name, id, n);
    if (entry_of[id] >= 0)
      fail<ValueError>("{}: entry {} (\"{}\"): id {} is also entry {}'s", path, e, name, id,
                       entry_of[id]);
    if (auto [it, fresh] = seen.emplace(bytes, e); !fresh)
      fail<ValueError>("{}: entry {} (\"{}\"): the token is also entry {}", path, e, name,
                       it->second);
    entry_of[id] = e;
  }
  for (auto& [bytes, id] : entries) tokens[id] = std::move(bytes);
  return tokens;
}

// The merges, as pairs of ids in rank order; `line` numbers from 1.
std::vector<std::pair<int64_t, int64_t>> read_merges(const std::string& path,
                                                     const std::vector<std::string>& tokens) {
  std::unordered_map<std::string_view, int64_t> id_of;
  for (size_t i = 0; i < tokens.size(); ++i) id_of.emplace(tokens[i], static_cast<int64_t>(i));
  std::string text = read_text_file(path);
  std::vector<std::pair<int64_t, int64_t>> merges;
  std::unordered_map<uint64_t, size_t> line_of;
  std::string_view rest = text;
  for (size_t line = 1; !rest.empty(); ++line) {
    size_t end = rest.find('\n');
    std::string_view l = rest.substr(0, end);
    rest = end == std::string_view::npos ? std::string_view() : rest.substr(end + 1);
    if (!l.empty() && l.back() == '\r') l.remove_suffix(1);
    if (l.empty() || (line == 1 && l.starts_with("#version"))) continue;
    size_t space = l.find(' ');
    if (space == 0 || space == std::string_view::npos || space + 1 == l.size() ||
        l.find(' ', space + 1) != std::string_view::npos)
      fail<ValueError>("{}:{}: expected two tokens separated by one space, got \"{}\"", path, line,
                       shown(l));
    int64_t ids[2];
    std::string both;
    for (int k = 0; k < 2; ++k) {
      std::string_view part = k == 0 ? l.substr(0, space) : l.substr(space + 1);
      std::string why, bytes = token_bytes_of(part, why);
      if (!why.empty()) fail<ValueError>("{}:{}: token \"{}\": {}", path, line, shown(part), why);
      auto it = id_of.find(bytes);
      if (it == id_of.end())
        fail<ValueError>("{}:{}: token \"{}\" is not in the vocabulary", path, line, shown(part));
      ids[k] = it->second;
      both += bytes;
    }
    if (!id_of.contains(both))
      fail<ValueError>("{}:{}: the merged token \"{}\" is not in the vocabulary", path, line,
                       shown(token_string_of(both)));
    if (auto [it, fresh] = line_of.emplace(pair_key(ids[0], ids[1]), line); !fresh)
      fail<ValueError>("{}:{}: the merge \"{}\" is also on line {}", path, line, shown(l),
                       it->second);
    merges.emplace_back(ids[0], ids[1]);
  }
  return merges;
}

}  // namespace

std::unique_ptr<GPT2Tokenizer> GPT2Tokenizer::from_files(const std::string& vocab_json,
                                                         const std::string& merges_txt) {
  std::vector<std::string> tokens = read_vocab(vocab_json);
  auto merges = read_merges(merges_txt, tokens);
  try {
    return std::make_unique<GPT2Tokenizer>(std::move(tokens), std::move(merges));
  } catch (const ValueError& e) {
    fail<ValueError>("{}: {}", vocab_json, e.what());
  }
}

std::unique_ptr<GPT2Tokenizer> GPT2Tokenizer::load(const std::string& dir) {
  namespace fs = std::filesystem;
  for (auto [vocab, merges] :
       {std::pair{"vocab.json", "merges.txt"}, std::pair{"encoder.json", "vocab.bpe"}}) {
    fs::path v = fs::path(dir) / vocab, m = fs::path(dir) / merges;
    std::error_code ec;
    if (fs::is_regular_file(v, ec) && fs::is_regular_file(m, ec))
      return from_files(v.string(), m.string());
  }
  fail<IOError>(
      "GPT2Tokenizer::load: '{}' has neither vocab.json + merges.txt nor encoder.json + vocab.bpe",
      dir);
}

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& dir) {
  return GPT2Tokenizer::load(dir);
}

void GPT2Tokenizer::save(const std::string& dir) const {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) fail<IOError>("GPT2Tokenizer::save: cannot create '{}': {}", dir, ec.message());
  auto write = [&](const char* name, const std::string& text) {
    std::string path = (fs::path(dir) / name).string();
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    f.write(text.data(), static_cast<std::streamsize>(text.size()));
    f.close();
    if (!f) fail<IOError>("GPT2Tokenizer::save: cannot write '{}'", path);
  };
  std::string vocab = "{";
  for (size_t id = 0; id < tokens_.size(); ++id)
    vocab += fmt::format("{}\n  {}: {}", id ? "," : "",
                         nlohmann::json(token_string_of(tokens_[id])).dump(), id);
  write("vocab.json", vocab + "\n}\n");
  std::string merges = "#version: 0.2\n";
  for (auto [a, b] : merges_)
    merges += token_string_of(tokens_[a]) + " " + token_string_of(tokens_[b]) + "\n";
  write("merges.txt", merges);
}

// ---------------------------------------------------------------------------------------------
// The tables and the pre-tokenizer.

namespace {

// The compiled pre-tokenizer, one per process (PCRE2's compiled code is read-only while matching,
// so threads share it; each match has its own match data).
struct Regex {
  pcre2_code* code = nullptr;
  bool jit = false;

  Regex() {
    int err = 0;
    PCRE2_SIZE at = 0;
    code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(kPattern), PCRE2_ZERO_TERMINATED,
                         PCRE2_UTF | PCRE2_UCP, &err, &at, nullptr);
    if (!code) fail<Error>("GPT2Tokenizer: PCRE2 rejects the pattern: {}", message(err));
    jit = pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) == 0;
  }
  ~Regex() { pcre2_code_free(code); }

  static std::string message(int err) {
    PCRE2_UCHAR buf[256];
    pcre2_get_error_message(err, buf, sizeof buf);
    return reinterpret_cast<const char*>(buf);
  }

  // Calls piece(match) for each match in `text` (valid UTF-8), in order; the matches cover it.
  template <class F>
  void split(std::string_view text, F&& piece) const {
    std::unique_ptr<pcre2_match_data, void (*)(pcre2_match_data*)> md(
        pcre2_match_data_create_from_pattern(code, nullptr), pcre2_match_data_free);
    if (!md) fail<MemoryError>("GPT2Tokenizer::encode: no memory for PCRE2's match data");
    auto subject = reinterpret_cast<PCRE2_SPTR>(text.data());
    size_t pos = 0;
    while (pos < text.size()) {
      int rc =
          jit ? pcre2_jit_match(code, subject, text.size(), pos, 0, md.get(), nullptr)
              : pcre2_match(code, subject, text.size(), pos, PCRE2_NO_UTF_CHECK, md.get(), nullptr);
      if (rc < 0 && rc != PCRE2_ERROR_NOMATCH)
        fail<Error>("GPT2Tokenizer::encode: PCRE2 failed at byte {}: {}", pos, message(rc));
      const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md.get());
      size_t start = rc < 0 ? text.size() : ov[0], end = rc < 0 ? text.size() : ov[1];
      // Every character matches one alternative, so there are no gaps; one would be a piece too.
      if (start > pos) piece(text.substr(pos, start - pos));
      if (end > start) piece(text.substr(start, end - start));
      pos = std::max(end, start + 1);
    }
  }
};

const Regex& pre_tokenizer() {
  static const Regex regex;
  return regex;
}

}  // namespace

GPT2Tokenizer::GPT2Tokenizer(std::vector<std::string> tokens,
                             std::vector<std::pair<int64_t, int64_t>> merges)
    : tokens_(std::move(tokens)) {
  const int64_t n = vocab_size();
  if (n > std::numeric_limits<int32_t>::max())
    fail<ValueError>("GPT2Tokenizer: {} tokens are too many", n);
  std::unordered_map<std::string_view, int32_t> id_of;
  for (int32_t id = 0; id < n; ++id) {
    if (tokens_[id].empty()) fail<ValueError>("GPT2Tokenizer: token {} is empty", id);
    if (auto [it, fresh] = id_of.emplace(tokens_[id], id); !fresh)
      fail<ValueError>("GPT2Tokenizer: tokens {} and {} are the same (\"{}\")", it->second, id,
                       shown(token_string_of(tokens_[id])));
  }
  for (int b = 0; b < 256; ++b) {
    auto it = id_of.find(std::string(1, static_cast<char>(b)));
    if (it == id_of.end())
      fail<ValueError>("GPT2Tokenizer: no token for byte 0x{:02x} (\"{}\")", b,
                       token_string_of(std::string(1, static_cast<char>(b))));
    byte_id_[b] = it->second;
  }
  if (auto it = id_of.find(kEndOfText); it != id_of.end()) eos_ = it->second;
  merges_.reserve(merges.size());
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    auto [a, b] = merges[rank];
    if (a < 0 || a >= n || b < 0 || b >= n)
      fail<ValueError>("GPT2Tokenizer: merge {} ({}, {}) names an id outside [0, {})", rank, a, b,
                       n);
    auto it = id_of.find(tokens_[a] + tokens_[b]);
    if (it == id_of.end())
      fail<ValueError>("GPT2Tokenizer: merge {} gives \"{}\", which is not a token", rank,
                       shown(token_string_of(tokens_[a] + tokens_[b])));
    Rule rule{static_cast<int32_t>(rank), it->second};
    if (!rules_.emplace(pair_key(a, b), rule).second)
      fail<ValueError>("GPT2Tokenizer: merge {} ({}, {}) is there twice", rank, a, b);
    merges_.emplace_back(a, b);
  }
}

GPT2Tokenizer::~GPT2Tokenizer() = default;

const std::string& GPT2Tokenizer::token_bytes(int64_t id) const {
  if (id < 0 || id >= vocab_size())
    fail<IndexError>("GPT2Tokenizer::token_bytes: id {} is outside [0, {})", id, vocab_size());
  return tokens_[id];
}

// ---------------------------------------------------------------------------------------------
// Encoding and decoding.

std::vector<int64_t> GPT2Tokenizer::encode(std::string_view text) const {
  if (size_t bad = invalid_utf8_offset(text); bad != std::string_view::npos)
    fail<ValueError>("GPT2Tokenizer::encode: invalid UTF-8 at byte offset {} (byte 0x{:02x})", bad,
                     static_cast<unsigned char>(text[bad]));
  std::vector<int64_t> out;
  out.reserve(text.size() / 3 + 1);
  pre_tokenizer().split(text, [&](std::string_view piece) { encode_piece(piece, out); });
  return out;
}

std::vector<int64_t> GPT2Tokenizer::encode_with_special(std::string_view text) const {
  if (!eos_) return encode(text);
  std::vector<int64_t> out;
  for (;;) {
    size_t at = text.find(kEndOfText);
    std::vector<int64_t> part = encode(text.substr(0, at));
    out.insert(out.end(), part.begin(), part.end());
    if (at == std::string_view::npos) return out;
    out.push_back(*eos_);
    text.remove_prefix(at + kEndOfText.size());
  }
}

void GPT2Tokenizer::encode_piece(std::string_view piece, std::vector<int64_t>& out) const {
  if (piece.size() == 1) {
    out.push_back(byte_id_[static_cast<unsigned char>(piece[0])]);
    return;
  }
  const bool cached = piece.size() <= kCachedPieceBytes;
  if (cached) {
    std::shared_lock lock(cache_mutex_);
    if (auto it = cache_.find(piece); it != cache_.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<int32_t> ids = merge_piece(piece);
  out.insert(out.end(), ids.begin(), ids.end());
  if (cached) {
    std::unique_lock lock(cache_mutex_);
    if (cache_.size() >= kCacheEntries) cache_.clear();
    cache_.emplace(piece, std::move(ids));
  }
}

namespace {

// A pair of adjacent symbols with a merge rule, at position `pos` when pushed on the heap.
struct Candidate {
  int32_t rank, pos, left, right, merged;
  bool operator<(const Candidate& o) const {  // the heap's top: lowest rank, then leftmost
    return rank != o.rank ? rank > o.rank : pos > o.pos;
  }
};

// merge_piece's buffers: symbol ids (-1: merged away), linked list, merged positions, heap.
struct MergeScratch {
  std::vector<int32_t> id, next, prev, merged;
  std::vector<Candidate> heap;
};

}  // namespace

// The merges of one piece: a heap of the adjacent pairs that have a rule, by rank. All current
// occurrences of the lowest-ranked pair are merged together, left to right (a merge cannot create
// a pair of the same rank: the merged token differs from both halves), which is exactly GPT-2's
// loop (find the lowest-ranked pair, merge all its occurrences, repeat) in O(n log n).
std::vector<int32_t> GPT2Tokenizer::merge_piece(std::string_view piece) const {
  if (piece.size() > static_cast<size_t>(std::numeric_limits<int32_t>::max()))
    fail<ValueError>("GPT2Tokenizer::encode: a piece of {} bytes is too long (2^31 at most)",
                     piece.size());
  const int32_t n = static_cast<int32_t>(piece.size());
  thread_local MergeScratch scratch;  // reused: no allocation per piece once grown
  auto& [id, next, prev, merged, heap] = scratch;
  id.resize(n);
  next.resize(n);
  prev.resize(n);
  heap.clear();
  for (int32_t i = 0; i < n; ++i) {
    id[i] = byte_id_[static_cast<unsigned char>(piece[i])];
    next[i] = i + 1 < n ? i + 1 : -1;
    prev[i] = i - 1;
  }
  auto push = [&](int32_t p) {
    if (p < 0 || next[p] < 0) return;
    auto it = rules_.find(pair_key(id[p], id[next[p]]));
    if (it == rules_.end()) return;
    heap.push_back({it->second.rank, p, id[p], id[next[p]], it->second.merged});
    std::push_heap(heap.begin(), heap.end());
  };
  for (int32_t i = 0; i + 1 < n; ++i) push(i);
  while (!heap.empty()) {
    const int32_t rank = heap.front().rank;
    merged.clear();
    while (!heap.empty() && heap.front().rank == rank) {
      std::pop_heap(heap.begin(), heap.end());
      Candidate c = heap.back();
      heap.pop_back();
      int32_t q = next[c.pos];
      if (id[c.pos] != c.left || q < 0 || id[q] != c.right) continue;  // stale or overlapped
      id[c.pos] = c.merged;
      id[q] = -1;
      next[c.pos] = next[q];
      if (next[q] >= 0) prev[next[q]] = c.pos;
      merged.push_back(c.pos);
    }
    for (int32_t p : merged) {
      push(prev[p]);
      push(p);
    }
  }
  std::vector<int32_t> out;
  for (int32_t i = 0; i >= 0; i = next[i]) out.push_back(id[i]);
  return out;
}

std::string GPT2Tokenizer::decode(std::span<const int64_t> ids) const {
  std::string out;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] < 0 || ids[i] >= vocab_size())
      fail<IndexError>("GPT2Tokenizer::decode: id {} at position {} is outside [0, {})", ids[i], i,
                       vocab_size());
    out += tokens_[ids[i]];
  }
  return out;
}

}  // namespace ag::nn
