// Tokenizers (nn/text/): the byte tokenizer, and GPT-2's byte-level BPE on a tiny hand-made
// vocabulary: the bytes-to-unicode table, the pre-tokenizer's pieces, merges by rank, round trips,
// invalid UTF-8, malformed files, save and load. The real GPT-2 vocabulary is checked against an
// independent encoder by tests/tokenizer_reference.sh.
#include <filesystem>
#include <random>
#include <set>
#include <thread>

#include "nn/nn.h"
#include "nn/text/gpt2_tokenizer.h"
#include "support.h"

using namespace ag;
using test::read_bytes;
using test::TempDir;
using test::write_bytes;

namespace {

std::string utf8(char32_t cp) {
  std::string s;
  if (cp < 0x80) {
    s += static_cast<char>(cp);
  } else if (cp < 0x800) {
    s += static_cast<char>(0xc0 | (cp >> 6));
    s += static_cast<char>(0x80 | (cp & 0x3f));
  } else if (cp < 0x10000) {
    s += static_cast<char>(0xe0 | (cp >> 12));
    s += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
    s += static_cast<char>(0x80 | (cp & 0x3f));
  } else {
    s += static_cast<char>(0xf0 | (cp >> 18));
    s += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
    s += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
    s += static_cast<char>(0x80 | (cp & 0x3f));
  }
  return s;
}

// The file form of a byte string, written out from GPT-2's rule (not from the library's table):
// printable Latin-1 bytes stand for themselves, the others for U+0100, U+0101, ... in byte order.
std::string file_form(const std::string& bytes) {
  std::string s;
  for (unsigned char b : bytes) {
    char32_t cp = b;
    if (!((b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || b >= 0xae)) {
      int below = 0;  // non-printable bytes before b
      for (int c = 0; c < b; ++c)
        if (!((c >= 0x21 && c <= 0x7e) || (c >= 0xa1 && c <= 0xac) || c >= 0xae)) ++below;
      cp = 0x100 + below;
    }
    s += utf8(cp);
  }
  return s;
}

// A JSON string literal (the file forms need no escapes but '"' and '\\').
std::string quoted(const std::string& s) {
  std::string q = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') q += '\\';
    q += c;
  }
  return q + "\"";
}

// The tiny vocabulary: ids 0..255 are the bytes, then one token per merge (in merge order), then
// <|endoftext|>. Merges are given as byte strings.
const std::vector<std::pair<std::string, std::string>> kMerges = {
    {"h", "e"},       {"l", "l"},   {"he", "ll"}, {"hell", "o"}, {" ", "w"},
    {"o", "r"},       {" w", "or"}, {" ", " "},   {"a", "a"},    {"b", "c"},
    {"x", "y"},       {"xy", "x"},  {"t", "'"},   {"c", "1"},    {"1", "2"},
    {"\xc3", "\xa9"}, {" ", "\n"},  {"\n", "\n"}, {"!", "\xc2"}, {"\x8e", "!"},
};
const int64_t kTinySize = 256 + static_cast<int64_t>(kMerges.size()) + 1;  // with <|endoftext|>

struct TinyFiles {
  std::string vocab, merges;
};

TinyFiles tiny_files(bool with_eos = true) {
  std::vector<std::string> tokens;
  for (int b = 0; b < 256; ++b) tokens.push_back(std::string(1, static_cast<char>(b)));
  for (auto& [a, b] : kMerges) tokens.push_back(a + b);
  if (with_eos) tokens.push_back("<|endoftext|>");
  TinyFiles f;
  f.vocab = "{";
  for (size_t i = 0; i < tokens.size(); ++i)
    f.vocab += (i ? ", " : "") + quoted(file_form(tokens[i])) + ": " + std::to_string(i);
  f.vocab += "}";
  f.merges = "#version: 0.2\n";
  for (auto& [a, b] : kMerges) f.merges += file_form(a) + " " + file_form(b) + "\n";
  return f;
}

std::unique_ptr<nn::GPT2Tokenizer> tiny(const TempDir& dir, bool with_eos = true) {
  TinyFiles f = tiny_files(with_eos);
  write_bytes(dir.file("vocab.json"), f.vocab);
  write_bytes(dir.file("merges.txt"), f.merges);
  return nn::GPT2Tokenizer::load(dir.path.string());
}

// The id of a merged token of the tiny vocabulary.
int64_t merged(const std::string& bytes) {
  for (size_t r = 0; r < kMerges.size(); ++r)
    if (kMerges[r].first + kMerges[r].second == bytes) return 256 + static_cast<int64_t>(r);
  FAIL("no merge gives " << bytes);
  return -1;
}

int64_t byte(char c) { return static_cast<unsigned char>(c); }

// Random valid UTF-8: ASCII letters, digits, punctuation, whitespace runs, accented letters, CJK,
// emoji and other code points of every length.
std::string random_text(std::mt19937& rng, int chars) {
  static const std::vector<std::string> pool = {
      "a", "b",  "c",  "x",    "y",  "Z",  "1",  "2",        "0",    " ",
      " ", "  ", "\n", "\n\n", "\t", "'",  "'s", "'ll",      ".",    ",",
      "!", "é",  "ß",  "Ω",    "中", "文", "😀",  "👍🏽", "\r\n", "\xc2\xa0"};
  std::string s;
  for (int i = 0; i < chars; ++i) {
    if (rng() % 4 == 0) {
      char32_t cp = 0x20 + rng() % 0x10ffe0;
      if (cp >= 0xd800 && cp <= 0xdfff) cp = 0x41;
      s += utf8(cp);
    } else {
      s += pool[rng() % pool.size()];
    }
  }
  return s;
}

}  // namespace

TEST_CASE("byte tokenizer: ids are the bytes, any bytes round trip") {
  nn::ByteTokenizer tok;
  std::string text("h\xc3\xa9\xff\0z", 6);
  text.push_back('\0');
  auto ids = tok.encode(text);
  CHECK(ids == std::vector<int64_t>{104, 0xc3, 0xa9, 0xff, 0, 122, 0});
  CHECK(tok.decode(ids) == text);
  CHECK(tok.vocab_size() == 256);
  CHECK(!tok.eos_id());
  CHECK(tok.name() == "byte");
  std::vector<int64_t> bad = {1, 256};
  CHECK_THROWS_WITH_PARTS(tok.decode(bad), IndexError, "ByteTokenizer::decode", "256",
                          "position 1");
  CHECK_THROWS_WITH_PARTS(tok.save("/tmp/nowhere"), ValueError, "ByteTokenizer::save");
  // As tensors (the byte-level GPT's path).
  Tensor t = nn::encode_tensor(tok, "abc");
  CHECK(t.shape() == Shape{3});
  CHECK(t.to_vector<int64_t>() == std::vector<int64_t>{97, 98, 99});
  CHECK(nn::decode_tensor(tok, t) == "abc");
  CHECK_THROWS_AS(nn::decode_tensor(tok, Tensor::from_vector<float>({1.f}, {1})), DtypeError);
}

TEST_CASE("gpt2: the bytes-to-unicode table") {
  const auto& table = nn::gpt2_byte_to_unicode();
  std::set<char32_t> seen(table.begin(), table.end());
  CHECK(seen.size() == 256);  // a bijection onto 256 code points
  for (int b = 0; b < 256; ++b) {
    INFO("byte " << b);
    CHECK(table[b] < 0x144);
    CHECK(table[b] > 0x20);  // no control character, no space
    CHECK(!(table[b] >= 0x7f && table[b] <= 0xa0));
    CHECK(table[b] != 0xad);
    CHECK(utf8(table[b]) == file_form(std::string(1, static_cast<char>(b))));
  }
  CHECK(table[' '] == 0x120);   // "Ġ"
  CHECK(table['\n'] == 0x10a);  // "Ċ"
  CHECK(table['A'] == 'A');
  CHECK(table[0] == 0x100);
  CHECK(table[0x7f] == 0x121);
  CHECK(table[0xad] == 0x143);
  CHECK(table[0xe9] == 0xe9);
}

TEST_CASE("gpt2: merges by rank on the tiny vocabulary") {
  TempDir dir;
  auto tok = tiny(dir);
  CHECK(tok->vocab_size() == kTinySize);
  CHECK(tok->merge_count() == static_cast<int64_t>(kMerges.size()));
  CHECK(tok->name() == "gpt2");
  // hello: h+e, l+l, he+ll, hell+o; " world": " "+w, o+r, " w"+or, then l and d stay.
  CHECK(tok->encode("hello world") ==
        std::vector<int64_t>{merged("hello"), merged(" wor"), byte('l'), byte('d')});
  // All occurrences of the lowest-ranked pair merge, left to right and without overlap.
  CHECK(tok->encode("aaa") == std::vector<int64_t>{merged("aa"), byte('a')});
  CHECK(tok->encode("aaaaa") == std::vector<int64_t>{merged("aa"), merged("aa"), byte('a')});
  // x+y has a lower rank than xy+x: "xyxy" becomes xy xy before xy+x is considered.
  CHECK(tok->encode("xyxy") == std::vector<int64_t>{merged("xy"), merged("xy")});
  CHECK(tok->encode("xyx") == std::vector<int64_t>{merged("xyx")});
  // b+c (rank 9) before c+1 would apply, but the pre-tokenizer cuts letters from digits first.
  CHECK(tok->encode("bc12") == std::vector<int64_t>{merged("bc"), merged("12")});
  CHECK(tok->encode("c1") == std::vector<int64_t>{byte('c'), byte('1')});
  // A two-byte character merges into one token.
  CHECK(tok->encode("\xc3\xa9") == std::vector<int64_t>{merged("\xc3\xa9")});
  CHECK(tok->encode("") == std::vector<int64_t>{});
}

TEST_CASE("gpt2: the pre-tokenizer's pieces") {
  TempDir dir;
  auto tok = tiny(dir);
  // Contractions are pieces of their own: t+' cannot merge across "it" | "'ll".
  CHECK(tok->encode("it'll") ==
        std::vector<int64_t>{byte('i'), byte('t'), byte('\''), merged("ll")});
  // ... but "'x" is not a contraction: ' and x stay in separate pieces (punctuation, letters).
  CHECK(tok->encode("t'") == std::vector<int64_t>{byte('t'), byte('\'')});
  // A run of spaces before a word leaves its last space to the word (\s+(?!\S)).
  CHECK(tok->encode("a   b") ==
        std::vector<int64_t>{byte('a'), merged("  "), byte(' '), byte('b')});
  // Trailing whitespace is one piece.
  CHECK(tok->encode("a  ") == std::vector<int64_t>{byte('a'), merged("  ")});
  CHECK(tok->encode("a \n") == std::vector<int64_t>{byte('a'), merged(" \n")});
  CHECK(tok->encode("\n\n\nb") == std::vector<int64_t>{merged("\n\n"), byte('\n'), byte('b')});
  // A space joins the following letters, digits or punctuation, not whitespace.
  CHECK(tok->encode(" w") == std::vector<int64_t>{merged(" w")});
  CHECK(tok->encode("x 12") == std::vector<int64_t>{byte('x'), byte(' '), merged("12")});
  // U+0085 (NEL) is whitespace, as in GPT-2's Python regex: it does not join the punctuation
  // (which would merge ! with its first byte).
  CHECK(tok->encode("!\xc2\x85!") == std::vector<int64_t>{byte('!'), 0xc2, 0x85, byte('!')});
  CHECK(tok->encode("!\xc2\xa1") == std::vector<int64_t>{merged("!\xc2"), 0xa1});  // "!¡"
  // U+180E (Mongolian vowel separator, bytes e1 a0 8e) is a format character, not whitespace: it
  // stays in the punctuation piece, where 8e+! merges (PCRE2's own \s would cut it out).
  CHECK(tok->encode("!\xe1\xa0\x8e!") ==
        std::vector<int64_t>{byte('!'), 0xe1, 0xa0, merged("\x8e!")});
}

TEST_CASE("gpt2: decode(encode(s)) == s on random valid UTF-8") {
  TempDir dir;
  auto tok = tiny(dir);
  std::mt19937 rng(7);
  for (int trial = 0; trial < 300; ++trial) {
    std::string s = random_text(rng, 1 + trial % 40);
    auto ids = tok->encode(s);
    INFO("text: " << s);
    CHECK(tok->decode(ids) == s);
    for (int64_t id : ids) CHECK((id >= 0 && id < tok->vocab_size()));
  }
  // Long pieces: runs of one letter and of spaces (the merges are O(n log n)).
  std::string long_run(20000, 'a');
  auto ids = tok->encode(long_run);
  CHECK(ids.size() == 10000);
  CHECK(tok->decode(ids) == long_run);
  std::string spaces = std::string(30001, ' ') + "w";
  ids = tok->encode(spaces);
  CHECK(ids.size() == 15001);
  CHECK(ids.back() == merged(" w"));
  CHECK(tok->decode(ids) == spaces);
}

TEST_CASE("gpt2: invalid UTF-8 is a ValueError naming the byte offset") {
  TempDir dir;
  auto tok = tiny(dir);
  struct Case {
    std::string text;
    const char* offset;
  };
  for (const Case& c :
       {Case{"ab\xff", "offset 2"}, Case{"abc\xc3", "offset 3"}, Case{"\xc0\xaf", "offset 0"},
        Case{"x\xed\xa0\x80", "offset 1"}, Case{"12\xf4\x90\x80\x80", "offset 2"},
        Case{"\xe4\xb8", "offset 0"}, Case{"\xc3\xa9\x80", "offset 2"}}) {
    INFO("text: " << c.text);
    CHECK_THROWS_WITH_PARTS(tok->encode(c.text), ValueError, "GPT2Tokenizer::encode",
                            "invalid UTF-8", c.offset);
  }
  std::vector<int64_t> bad = {0, -1};
  CHECK_THROWS_WITH_PARTS(tok->decode(bad), IndexError, "position 1", "-1");
  CHECK_THROWS_AS(tok->token_bytes(tok->vocab_size()), IndexError);
}

TEST_CASE("gpt2: <|endoftext|> is plain text to encode, one id to encode_with_special") {
  TempDir dir;
  auto tok = tiny(dir);
  REQUIRE(tok->eos_id());
  const int64_t eos = *tok->eos_id();
  CHECK(eos == tok->vocab_size() - 1);
  CHECK(tok->decode(std::vector<int64_t>{eos}) == "<|endoftext|>");
  auto plain = tok->encode("a<|endoftext|>b");
  CHECK(std::find(plain.begin(), plain.end(), eos) == plain.end());
  CHECK(tok->decode(plain) == "a<|endoftext|>b");
  CHECK(tok->encode_with_special("a<|endoftext|>b") ==
        std::vector<int64_t>{byte('a'), eos, byte('b')});
  CHECK(tok->encode_with_special("<|endoftext|><|endoftext|>") == std::vector<int64_t>{eos, eos});
  TempDir dir2;
  auto no_eos = tiny(dir2, false);
  CHECK(!no_eos->eos_id());
  CHECK(no_eos->encode_with_special("<|endoftext|>") == no_eos->encode("<|endoftext|>"));
}

TEST_CASE("gpt2: save writes vocab.json and merges.txt that load back equal") {
  TempDir dir;
  auto tok = tiny(dir);
  TempDir out;
  std::string sub = out.file("a/b");
  tok->save(sub);
  std::string merges = read_bytes(sub + "/merges.txt");
  CHECK(merges.rfind("#version: 0.2\n", 0) == 0);
  CHECK(merges == tiny_files().merges);  // same merges, same file form, rank order
  auto back = nn::load_tokenizer(sub);
  REQUIRE(back->vocab_size() == tok->vocab_size());
  auto& gpt2 = dynamic_cast<nn::GPT2Tokenizer&>(*back);
  for (int64_t id = 0; id < tok->vocab_size(); ++id)
    CHECK(gpt2.token_bytes(id) == tok->token_bytes(id));
  CHECK(back->eos_id() == tok->eos_id());
  std::mt19937 rng(3);
  for (int i = 0; i < 50; ++i) {
    std::string s = random_text(rng, 30);
    CHECK(back->encode(s) == tok->encode(s));
  }
  CHECK_THROWS_AS(tok->save("/proc/no/such/dir"), IOError);
}

TEST_CASE("gpt2: load finds the Hugging Face names first, then OpenAI's") {
  TempDir dir;
  TinyFiles f = tiny_files();
  const std::string where = dir.path.string();
  CHECK_THROWS_WITH_PARTS(nn::load_tokenizer(where), IOError, "vocab.json", "encoder.json",
                          where.c_str());
  write_bytes(dir.file("encoder.json"), f.vocab);
  CHECK_THROWS_AS(nn::load_tokenizer(dir.path.string()), IOError);  // vocab.bpe missing
  write_bytes(dir.file("vocab.bpe"), f.merges);
  CHECK(nn::load_tokenizer(dir.path.string())->vocab_size() == kTinySize);
  // vocab.json + merges.txt win over encoder.json + vocab.bpe.
  write_bytes(dir.file("vocab.json"), "{");
  write_bytes(dir.file("merges.txt"), "");
  CHECK_THROWS_WITH_PARTS(nn::load_tokenizer(dir.path.string()), ValueError, "vocab.json");
}

TEST_CASE("gpt2: malformed vocab.json names the file and the entry") {
  TempDir dir;
  TinyFiles f = tiny_files();
  const std::string v = dir.file("vocab.json"), m = dir.file("merges.txt");
  write_bytes(m, f.merges);
  auto check = [&](const std::string& vocab, std::vector<std::string> parts) {
    write_bytes(v, vocab);
    INFO("vocab.json: " << vocab.substr(0, 200));
    bool thrown = false;
    try {
      nn::GPT2Tokenizer::from_files(v, m);
    } catch (const ValueError& e) {
      thrown = true;
      std::string msg = e.what();
      INFO("message: " << msg);
      CHECK(msg.find(v) != std::string::npos);
      for (auto& p : parts) CHECK(msg.find(p) != std::string::npos);
    }
    CHECK(thrown);
  };
  std::string body = f.vocab.substr(1, f.vocab.size() - 2);  // the entries without braces
  const int64_t n = kTinySize;  // the entry appended below is entry n; n + 1 entries in all
  const std::string last = fmt::format("entry {}", n);
  check("{\"a\": 1", {"invalid JSON"});
  check("", {"invalid JSON"});
  check("[1, 2]", {"expected a JSON object"});
  check("{" + body + ", \"zz\": 1.5}", {last, "zz", "1.5", "not an integer"});
  check("{" + body + ", \"zz\": \"7\"}", {last, "not an integer"});
  check("{" + body + ", \"zz\": {}}", {last, "not an integer"});
  check("{" + body + fmt::format(", \"zz\": {}}}", n + 1),
        {last, fmt::format("id {} is outside [0, {})", n + 1, n + 1)});
  check("{" + body + ", \"zz\": -1}", {last, "id -1"});
  check("{" + body + ", \"zz\": 3}", {last, "id 3 is also entry 3"});
  check("{" + body + fmt::format(", \"he\": {}}}", n), {last, "\"he\"", "also entry 256"});
  check("{" + body + fmt::format(", \"\\u0200\": {}}}", n), {last, "U+0200", "alphabet"});
  check("{" + body + fmt::format(", \"\": {}}}", n), {last, "empty"});
  // Every byte needs its token: give byte 'A''s id 65 to <|endoftext|> instead.
  std::string no_a = f.vocab;
  no_a.replace(no_a.find("\"A\": 65"), 7, "\"<|endoftext|>\": 65");
  std::string eos_entry = fmt::format(", \"<|endoftext|>\": {}", n - 1);
  no_a.replace(no_a.rfind(eos_entry), eos_entry.size(), "");
  check(no_a, {"no token for byte 0x41"});
  CHECK_THROWS_WITH_PARTS(nn::GPT2Tokenizer::from_files(dir.file("none.json"), m), IOError,
                          "none.json");
}

TEST_CASE("gpt2: malformed merges.txt names the file and the line") {
  TempDir dir;
  TinyFiles f = tiny_files();
  const std::string v = dir.file("vocab.json"), m = dir.file("merges.txt");
  write_bytes(v, f.vocab);
  auto check = [&](const std::string& merges, std::vector<const char*> parts) {
    write_bytes(m, merges);
    INFO("merges.txt: " << merges);
    bool thrown = false;
    try {
      nn::GPT2Tokenizer::from_files(v, m);
    } catch (const ValueError& e) {
      thrown = true;
      std::string msg = e.what();
      INFO("message: " << msg);
      CHECK(msg.find(m) != std::string::npos);
      for (const char* p : parts) CHECK(msg.find(p) != std::string::npos);
    }
    CHECK(thrown);
  };
  check("#version: 0.2\nh e\nl l l\n", {":3:", "two tokens"});
  check("#version: 0.2\nh e\n l\n", {":3:", "two tokens"});
  check("#version: 0.2\nh e\nl  l\n", {":3:", "two tokens"});
  check("h e\nq e\n", {":2:", "\"qe\"", "not in the vocabulary"});
  check("h e\nhe zz\n", {":2:", "\"zz\" is not in the vocabulary"});
  check("h e\n\nh e\n", {":3:", "also on line 1"});
  check("h \xc8\x80\n", {":1:", "U+0200"});
  check("h \xff\n", {":1:", "invalid UTF-8"});
  // Accepted: CRLF line ends, empty lines, no header, no final newline.
  write_bytes(m, "h e\r\n\r\nl l\nhe ll\nhell o");
  auto tok = nn::GPT2Tokenizer::from_files(v, m);
  CHECK(tok->merge_count() == 4);
  CHECK(tok->encode("hello") == std::vector<int64_t>{merged("hello")});
}

TEST_CASE("gpt2: the tables in memory are checked too") {
  std::vector<std::string> tokens;
  for (int b = 0; b < 256; ++b) tokens.push_back(std::string(1, static_cast<char>(b)));
  tokens.push_back("ab");
  using Merges = std::vector<std::pair<int64_t, int64_t>>;
  CHECK_NOTHROW(nn::GPT2Tokenizer(tokens, Merges{{'a', 'b'}}));
  CHECK_THROWS_WITH_PARTS(nn::GPT2Tokenizer(tokens, Merges{{'a', 300}}), ValueError, "merge 0");
  CHECK_THROWS_WITH_PARTS(nn::GPT2Tokenizer(tokens, Merges{{'a', 'c'}}), ValueError,
                          "\"ac\", which is not a token");
  CHECK_THROWS_WITH_PARTS(nn::GPT2Tokenizer(tokens, Merges{{'a', 'b'}, {'a', 'b'}}), ValueError,
                          "merge 1", "twice");
  auto dup = tokens;
  dup.push_back("ab");
  CHECK_THROWS_WITH_PARTS(nn::GPT2Tokenizer(dup, Merges{}), ValueError, "256", "257");
  auto empty = tokens;
  empty.push_back("");
  CHECK_THROWS_WITH_PARTS(nn::GPT2Tokenizer(empty, Merges{}), ValueError, "257", "empty");
}

TEST_CASE("gpt2: one tokenizer encodes from several threads at once") {
  TempDir dir;
  auto tok = tiny(dir);
  std::mt19937 rng(11);
  std::vector<std::string> texts;
  for (int i = 0; i < 40; ++i) texts.push_back(random_text(rng, 200));
  std::vector<std::vector<int64_t>> expected;
  for (auto& t : texts) expected.push_back(tok->encode(t));
  std::atomic<int> mismatches{0};
  std::vector<std::thread> threads;
  for (int k = 0; k < 4; ++k)
    threads.emplace_back([&, k] {
      for (int rep = 0; rep < 5; ++rep)
        for (size_t i = 0; i < texts.size(); ++i) {
          size_t j = (i + k * 7) % texts.size();
          if (tok->encode(texts[j]) != expected[j]) ++mismatches;
        }
    });
  for (auto& t : threads) t.join();
  CHECK(mismatches == 0);
}
