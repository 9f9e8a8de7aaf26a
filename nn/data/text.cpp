#include "nn/data/text.h"

#include <fstream>
#include <sstream>

namespace ag::nn {

Tensor encode_tensor(const Tokenizer& tokenizer, std::string_view text) {
  std::vector<int64_t> ids = tokenizer.encode(text);
  return Tensor::from_vector(ids, {static_cast<int64_t>(ids.size())});
}

std::string decode_tensor(const Tokenizer& tokenizer, const Tensor& ids) {
  if (ids.dtype() != int64)
    fail<DtypeError>("decode_tensor: expected int64 token ids, got {} {}", dtype_name(ids.dtype()),
                     ids.shape());
  std::vector<int64_t> v = ids.to_vector<int64_t>();
  return tokenizer.decode(v);
}

std::string read_text_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) fail<IOError>("read_text_file: cannot open '{}'", path);
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

TextDataset::TextDataset(Tensor tokens, int64_t context) : tokens_(tokens), context_(context) {
  if (tokens.dtype() != int64 || tokens.dim() != 1)
    fail<ShapeError>("TextDataset: expected int64 tokens [N], got {} {}",
                     dtype_name(tokens.dtype()), tokens.shape());
  if (context <= 0 || tokens.numel() <= context)
    fail<ValueError>("TextDataset: {} tokens are too few for windows of context {} + 1",
                     tokens.numel(), context);
  tokens_ = tokens.contiguous();
}

std::pair<Tensor, Tensor> TextDataset::sample(int64_t batch, Generator& gen) const {
  Tensor starts = randint(0, tokens_.numel() - context_, {batch}, &gen);
  Tensor x = Tensor::empty({batch, context_}, int64), y = Tensor::empty({batch, context_}, int64);
  const int64_t* t = tokens_.data<int64_t>();
  const int64_t* s = starts.data<int64_t>();
  int64_t* px = x.data<int64_t>();
  int64_t* py = y.data<int64_t>();
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t i = 0; i < context_; ++i) {
      px[b * context_ + i] = t[s[b] + i];
      py[b * context_ + i] = t[s[b] + i + 1];
    }
  return {x, y};
}

std::vector<std::pair<Tensor, Tensor>> TextDataset::windows(int64_t batch,
                                                            int64_t max_batches) const {
  std::vector<std::pair<Tensor, Tensor>> out;
  int64_t n = (tokens_.numel() - 1) / context_;
  const int64_t* t = tokens_.data<int64_t>();
  for (int64_t w0 = 0; w0 < n; w0 += batch) {
    if (max_batches >= 0 && static_cast<int64_t>(out.size()) >= max_batches) break;
    int64_t b = std::min(batch, n - w0);
    Tensor x = Tensor::empty({b, context_}, int64), y = Tensor::empty({b, context_}, int64);
    for (int64_t j = 0; j < b; ++j)
      for (int64_t i = 0; i < context_; ++i) {
        int64_t at = (w0 + j) * context_ + i;
        x.data<int64_t>()[j * context_ + i] = t[at];
        y.data<int64_t>()[j * context_ + i] = t[at + 1];
      }
    out.emplace_back(x, y);
  }
  return out;
}

std::pair<TextDataset, TextDataset> TextDataset::split(const Tensor& tokens, int64_t context,
                                                       double val_fraction) {
  if (!(val_fraction > 0 && val_fraction < 1))
    fail<ValueError>("TextDataset::split: fraction {} is outside (0, 1)", val_fraction);
  int64_t n = tokens.numel();
  int64_t cut = n - static_cast<int64_t>(static_cast<double>(n) * val_fraction);
  return {TextDataset(slice(tokens, 0, 0, cut), context),
          TextDataset(slice(tokens, 0, cut, n), context)};
}

}  // namespace ag::nn
