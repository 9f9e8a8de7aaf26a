#include "nn/text/byte_tokenizer.h"

#include "autograd/error.h"

namespace ag::nn {

std::vector<int64_t> ByteTokenizer::encode(std::string_view text) const {
  std::vector<int64_t> ids(text.size());
  for (size_t i = 0; i < text.size(); ++i) ids[i] = static_cast<unsigned char>(text[i]);
  return ids;
}

std::string ByteTokenizer::decode(std::span<const int64_t> ids) const {
  std::string s(ids.size(), '\0');
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] < 0 || ids[i] >= kVocabSize)
      fail<IndexError>("ByteTokenizer::decode: id {} at position {} is outside [0, 256)", ids[i],
                       i);
    s[i] = static_cast<char>(static_cast<unsigned char>(ids[i]));
  }
  return s;
}

void ByteTokenizer::save(const std::string& dir) const {
  fail<ValueError>("ByteTokenizer::save('{}'): the byte tokenizer has no files to save", dir);
}

}  // namespace ag::nn
