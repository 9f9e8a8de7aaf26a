// The C++ side of tests/gpt2_reference.py: our logits for a Hugging Face GPT-2 directory, and the
// directory written back by save_gpt2.
//
//   gpt2_logits logits DIR OUT ID...   load_gpt2(DIR), forward of the ids as one sequence; writes
//                                      the logits [T, V] to OUT as raw little-endian float32 and
//                                      prints "T V"
//   gpt2_logits resave DIR OUT_DIR     save_gpt2(OUT_DIR, load_gpt2(DIR))
// Exit status 1 with the error on stderr if anything fails, 2 for a bad command line.
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "autograd/autograd.h"
#include "nn/models/gpt2.h"

namespace {

int logits(const std::string& dir, const std::string& out, const std::vector<int64_t>& ids) {
  auto model = ag::nn::load_gpt2(dir);
  ag::NoGradGuard no_grad;
  auto T = static_cast<int64_t>(ids.size());
  ag::Tensor y = model->forward(ag::Tensor::from_vector(ids, {1, T})).contiguous();
  std::vector<float> v = y.to_vector<float>();
  std::ofstream f(out, std::ios::binary);
  f.write(reinterpret_cast<const char*>(v.data()), static_cast<std::streamsize>(v.size() * 4));
  if (!f) throw ag::IOError("gpt2_logits: cannot write '" + out + "'");
  std::printf("%lld %lld\n", static_cast<long long>(T), static_cast<long long>(y.size(2)));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  try {
    if (args.size() >= 4 && args[0] == "logits") {
      std::vector<int64_t> ids;
      for (size_t i = 3; i < args.size(); ++i) ids.push_back(std::stoll(args[i]));
      return logits(args[1], args[2], ids);
    }
    if (args.size() == 3 && args[0] == "resave") {
      ag::nn::save_gpt2(args[2], *ag::nn::load_gpt2(args[1]));
      return 0;
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
  std::fprintf(stderr,
               "usage: gpt2_logits logits DIR OUT ID... | gpt2_logits resave DIR OUT_DIR\n");
  return 2;
}
