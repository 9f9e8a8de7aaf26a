// A program for tests/distributed_failure.sh: one rank fails while the other waits in a
// collective; run_or_abort must stop both (non-zero exit, the failing rank's message), never hang.
//   distributed_failure throw|file|shapes
#include <fmt/format.h>

#include <string>

#include "nn/distributed/data_parallel.h"
#include "nn/distributed/distributed.h"
#include "nn/nn.h"

using namespace ag;
namespace dist = ag::nn::distributed;

int main(int argc, char** argv) {
  return dist::run_or_abort("distributed_failure", [&] {
    dist::Environment mpi(argc, argv);
    std::string mode = argc > 1 ? argv[1] : "";
    const bool failing = dist::rank() == 1;
    Generator g(1);
    // shapes: rank 1 builds a wider hidden layer.
    auto model = nn::make_mlp({8, mode == "shapes" && failing ? 7 : 6, 3}, "relu", 0.0, &g);
    dist::DataParallel ddp(*model);
    Tensor x = normal({4, 8}, 0, 1, float32, &g);
    Tensor y = Tensor::from_vector<int64_t>({0, 1, 2, 0});
    for (int step = 0; step < 3; ++step) {
      if (step == 1 && failing) {
        if (mode == "throw") fail<ValueError>("rank 1 fails on purpose at step {}", step);
        if (mode == "file") nn::load_checkpoint("/nonexistent/model.safetensors", *model);
      }
      model->zero_grad();
      nn::cross_entropy((*model)(x), y).backward();
      ddp.average_gradients();  // rank 0 waits here for rank 1
    }
    fmt::print("rank {}: finished\n", dist::rank());
    return 0;
  });
}
