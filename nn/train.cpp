#include "nn/train.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <vector>

#include "nn/loss.h"

namespace ag::nn {

// ---- Progress ----

Progress::Progress(int64_t epochs, int64_t steps_per_epoch, ProgressOptions options)
    : epochs_(epochs), steps_per_epoch_(steps_per_epoch), options_(std::move(options)) {
  if (epochs <= 0 || steps_per_epoch <= 0)
    fail<ValueError>("Progress: epochs ({}) and steps per epoch ({}) must be positive", epochs,
                     steps_per_epoch);
  if (!options_.out) fail<ValueError>("Progress: no output stream");
  if (!options_.clock)
    options_.clock = [] {
      using namespace std::chrono;
      return duration<double>(steady_clock::now().time_since_epoch()).count();
    };
  interactive_ =
      options_.interactive < 0 ? isatty(fileno(options_.out)) != 0 : options_.interactive > 0;
  start_ = epoch_start_ = now();
}

double Progress::now() const { return options_.clock(); }

void Progress::start_epoch(int64_t epoch) {
  epoch_ = epoch;
  step_ = samples_ = 0;
  loss_sum_ = 0;
  epoch_start_ = now();
  last_draw_ = -1;
}

double Progress::epoch_loss() const {
  return samples_ > 0 ? loss_sum_ / static_cast<double>(samples_) : NAN;
}

std::string format_duration(double seconds) {
  if (!(seconds >= 0) || !std::isfinite(seconds)) return "?";
  auto s = static_cast<int64_t>(std::llround(seconds));
  int64_t h = s / 3600, m = s / 60 % 60, sec = s % 60;
  return h > 0 ? fmt::format("{}:{:02}:{:02}", h, m, sec) : fmt::format("{}:{:02}", m, sec);
}

std::string Progress::status() const {
  double dt = now() - epoch_start_;
  std::string rate = dt > 0 ? fmt::format("{:.0f}", static_cast<double>(samples_) / dt) : "-";
  int64_t left = (steps_per_epoch_ - step_) + (epochs_ - epoch_) * steps_per_epoch_;
  double eta = step_ > 0 ? dt / static_cast<double>(step_) * static_cast<double>(left) : NAN;
  int width = static_cast<int>(fmt::formatted_size("{}", steps_per_epoch_));
  std::string where;
  if (interactive_) {
    constexpr int64_t kBar = 20;
    int64_t done = std::min(kBar, step_ * kBar / steps_per_epoch_);
    std::string bar(static_cast<size_t>(done), '=');
    if (done < kBar) bar += '>';
    bar.resize(kBar, ' ');
    where = fmt::format("[{}] {:>{}}/{}", bar, step_, width, steps_per_epoch_);
  } else {
    where = fmt::format("step {:>{}}/{}", step_, width, steps_per_epoch_);
  }
  return fmt::format("epoch {}/{} {} loss {:.4f} {} samples/s ETA {}", epoch_, epochs_, where,
                     epoch_loss(), rate, format_duration(eta));
}

void Progress::emit(const std::string& text) {
  if (interactive_) {
    // Overwrite the previous line; pad with spaces if the new one is shorter.
    std::string line = "\r" + text;
    if (text.size() < drawn_width_) line.append(drawn_width_ - text.size(), ' ');
    drawn_width_ = text.size();
    std::fputs(line.c_str(), options_.out);
  } else {
    std::fputs((text + "\n").c_str(), options_.out);
  }
  std::fflush(options_.out);
}

void Progress::step(double loss, int64_t samples) {
  ++step_;
  ++total_steps_;
  samples_ += samples;
  loss_sum_ += loss * static_cast<double>(samples);
  if (interactive_) {
    double t = now();
    if (step_ == steps_per_epoch_ || last_draw_ < 0 || t - last_draw_ >= options_.redraw_seconds) {
      last_draw_ = t;
      emit(status());
    }
  } else if (options_.every > 0 && step_ % options_.every == 0) {
    emit(status());
  }
}

void Progress::end_epoch(const std::string& extra) {
  std::string line = fmt::format("epoch {}/{} done: loss {:.4f}, {} samples in {:.1f} s", epoch_,
                                 epochs_, epoch_loss(), samples_, now() - epoch_start_);
  if (!extra.empty()) line += ", " + extra;
  emit(line);
  if (interactive_) {
    std::fputs("\n", options_.out);
    std::fflush(options_.out);
    drawn_width_ = 0;
  }
}

// ---- MetricsLog ----

const char* MetricsLog::header() {
  return "epoch,step,train_loss,val_loss,val_accuracy,lr,seconds";
}

MetricsLog::MetricsLog(const std::string& path) : path_(path) {
  file_ = std::fopen(path.c_str(), "w");
  if (!file_) fail<IOError>("MetricsLog: cannot create '{}': {}", path, std::strerror(errno));
  std::fprintf(file_, "%s\n", header());
  std::fflush(file_);
}

MetricsLog::~MetricsLog() {
  if (file_) std::fclose(file_);
}

void MetricsLog::write(const Metrics& m) {
  auto field = [](double v) { return std::isnan(v) ? std::string() : fmt::format("{}", v); };
  std::string row =
      fmt::format("{},{},{},{},{},{},{}\n", m.epoch, m.step, field(m.train_loss), field(m.val_loss),
                  field(m.val_accuracy), field(m.lr), field(m.seconds));
  if (std::fputs(row.c_str(), file_) < 0 || std::fflush(file_) != 0)
    fail<IOError>("MetricsLog: cannot write to '{}': {}", path_, std::strerror(errno));
}

// ---- evaluate ----

Evaluation evaluate(Module& model, const TensorDataset& data, int64_t batch_size) {
  if (batch_size <= 0)
    fail<ValueError>("evaluate: batch size must be positive, got {}", batch_size);
  if (data.tensors().size() < 2)
    fail<ValueError>("evaluate: the dataset needs inputs and labels, it has {} tensor(s)",
                     data.tensors().size());
  if (data.size() == 0) fail<ValueError>("evaluate: empty dataset");
  const Tensor& labels = data.tensors()[1];
  if (labels.dtype() != int64 || labels.dim() != 1)
    fail<DtypeError>("evaluate: labels must be int64 [N], got {} {}", dtype_name(labels.dtype()),
                     labels.shape());

  // Eval mode for the duration, restored even if the model throws.
  struct ModeGuard {
    Module& m;
    bool was_training;
    ~ModeGuard() { m.train(was_training); }
  } guard{model, model.is_training()};
  model.eval();
  NoGradGuard no_grad;

  Evaluation r;
  double loss_sum = 0;
  int64_t correct = 0;
  for (int64_t begin = 0; begin < data.size(); begin += batch_size) {
    std::vector<Tensor> batch = data.range(begin, std::min(data.size(), begin + batch_size));
    int64_t b = batch[1].size(0);
    Tensor logits = model(batch[0]);
    if (logits.dim() != 2 || logits.size(0) != b)
      fail<ShapeError>("evaluate: the model maps inputs {} to {}; expected logits [{}, classes]",
                       batch[0].shape(), logits.shape(), b);
    loss_sum += nn::cross_entropy(logits, batch[1], "sum").item();
    auto predicted = argmax(logits, 1).to_vector<int64_t>();
    auto expected = batch[1].to_vector<int64_t>();
    for (size_t i = 0; i < predicted.size(); ++i) correct += predicted[i] == expected[i];
    r.samples += b;
  }
  r.loss = loss_sum / static_cast<double>(r.samples);
  r.accuracy = static_cast<double>(correct) / static_cast<double>(r.samples);
  return r;
}

}  // namespace ag::nn
