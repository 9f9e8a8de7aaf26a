// Prints which copy of libautograd this process runs (tests/isa_check.sh): the instruction-set
// level it was compiled for (kernels::isa_level) and the file the dynamic loader loaded it from,
// then checks the copy's kernels on one small computation (exp, a sum and a softmax, whose rows
// run through xsimd batches and the masked tails).
//
//   isa_probe    prints "level <level>" and "file <path>"; exit status 1 if the computation is off
#include <link.h>

#include <cmath>
#include <cstdio>
#include <string>

#include "autograd/autograd.h"
#include "autograd/kernels/isa.h"

namespace {

// The path of the loaded libautograd, from the loader's list of loaded objects.
std::string loaded_autograd() {
  std::string found;
  dl_iterate_phdr(
      [](dl_phdr_info* info, size_t, void* out) {
        const std::string name = info->dlpi_name ? info->dlpi_name : "";
        if (name.find("/libautograd.so") == std::string::npos) return 0;
        *static_cast<std::string*>(out) = name;
        return 1;
      },
      &found);
  return found;
}

// sum(exp(x)) against std::exp in double, and the sum of a softmax row against 1, for a row of 37
// float32 values (two 16-lane registers and a tail of 5).
bool kernels_agree() {
  const ag::Tensor x = ag::linspace(-0.9, 0.9, 37);
  const ag::Tensor e = ag::exp(x);
  double want = 0;
  for (int64_t i = 0; i < x.numel(); ++i) want += std::exp(static_cast<double>(x.data<float>()[i]));
  const double got = ag::sum(e).item();
  const double total = ag::sum(ag::softmax(e.reshape({1, 37}), 1)).item();
  return std::abs(got - want) <= 1e-5 * want && std::abs(total - 1) <= 1e-5;
}

}  // namespace

int main() {
  std::printf("level %s\nfile %s\n", ag::kernels::isa_level(), loaded_autograd().c_str());
  if (!kernels_agree()) {
    std::printf("FAIL: exp / sum / softmax disagree with std::exp\n");
    return 1;
  }
  return 0;
}
