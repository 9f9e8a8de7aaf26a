// A small training toolkit for the examples: a progress display, a CSV metrics log and the
// evaluation of a classifier on a held-out set. None of it is needed to train (a loop over a
// DataLoader with backward and step is the whole algorithm); it only makes long runs pleasant to
// watch and record.
//
//   nn::Progress progress(epochs, loader.batches_per_epoch());
//   nn::MetricsLog log("metrics.csv");
//   for (int64_t epoch = 1; epoch <= epochs; ++epoch) {
//     progress.start_epoch(epoch);
//     for (auto batch : loader) {
//       ... forward, backward, step ...
//       progress.step(loss.item(), batch[0].size(0));
//     }
//     nn::Evaluation val = nn::evaluate(*model, val_set);
//     progress.end_epoch(fmt::format("val loss {:.4f} accuracy {:.4f}", val.loss, val.accuracy));
//     log.write({epoch, opt.steps(), progress.epoch_loss(), val.loss, val.accuracy,
//                opt.param_groups()[0].lr(), progress.elapsed()});
//   }
#pragma once

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>

#include "nn/data/dataset.h"
#include "nn/module.h"

namespace ag::nn {

// ---- progress display ----

struct ProgressOptions {
  std::FILE* out = stdout;
  // -1: redraw one line with '\r' when `out` is a terminal (isatty), plain lines otherwise;
  // 0: always plain lines; 1: always the redrawn line.
  int interactive = -1;
  // Plain mode: a line every `every` steps (0: only at the end of each epoch).
  int64_t every = 100;
  // Interactive mode: at most one redraw per `redraw_seconds` (the last step of an epoch is always
  // drawn).
  double redraw_seconds = 0.1;
  // Seconds since an arbitrary origin; defaults to a steady clock (tests pass a fake one).
  std::function<double()> clock;
};

// Reports training progress. On a terminal, one line redrawn in place:
//   epoch 3/20 [=========>          ] 917/1875 loss 0.2143 41822 samples/s ETA 2:17
// Otherwise plain lines every `every` steps:
//   epoch 3/20 step 900/1875 loss 0.2143 41822 samples/s ETA 2:17
// and, at the end of each epoch (both modes):
//   epoch 3/20 done: loss 0.2101, 60000 samples in 1.4 s<, extra text>
// loss is the running mean of the step losses of the current epoch, weighted by batch size (at the
// end of an epoch: the epoch's mean training loss). samples/s is measured over the current epoch;
// ETA is the time left to the end of the last epoch at that speed.
class Progress {
 public:
  Progress(int64_t epochs, int64_t steps_per_epoch, ProgressOptions options = {});
  // Starts epoch `epoch` (1-based).
  void start_epoch(int64_t epoch);
  // Records one optimizer step: the batch's mean loss and its number of samples.
  void step(double loss, int64_t samples);
  // Ends the epoch: prints its summary line followed by `extra` (e.g. validation results).
  void end_epoch(const std::string& extra = "");

  // Mean training loss of the current (or just ended) epoch, weighted by batch size.
  double epoch_loss() const;
  int64_t epoch() const { return epoch_; }
  int64_t step_in_epoch() const { return step_; }
  // Steps recorded since construction.
  int64_t total_steps() const { return total_steps_; }
  // Seconds since construction.
  double elapsed() const { return now() - start_; }
  bool interactive() const { return interactive_; }

 private:
  double now() const;
  std::string status() const;
  void emit(const std::string& text);

  int64_t epochs_, steps_per_epoch_;
  ProgressOptions options_;
  bool interactive_;
  double start_ = 0, epoch_start_ = 0, last_draw_ = -1;
  int64_t epoch_ = 0, step_ = 0, total_steps_ = 0, samples_ = 0;
  double loss_sum_ = 0;
  size_t drawn_width_ = 0;  // length of the line currently on the terminal
};

// "1:02:03" for 3723 seconds, "2:17" for 137, "0:05" for 5; "?" for a negative or non-finite value.
std::string format_duration(double seconds);

// ---- metrics log ----

// One row of the metrics log. NaN marks a value not measured at that row (written as an empty
// field), e.g. val_loss on a row logged between evaluations.
struct Metrics {
  int64_t epoch = 0;
  int64_t step = 0;  // optimizer steps so far
  double train_loss = NAN;
  double val_loss = NAN;
  double val_accuracy = NAN;
  double lr = NAN;
  double seconds = NAN;  // since training started
};

// A CSV file of metrics, one row per write, flushed as it goes so a run can be plotted while it
// trains:
//   epoch,step,train_loss,val_loss,val_accuracy,lr,seconds
//   1,1875,0.31415,0.18,0.9473,0.1,1.52
// The file is created (truncated) by the constructor; IOError naming the path if it cannot be.
class MetricsLog {
 public:
  explicit MetricsLog(const std::string& path);
  ~MetricsLog();
  MetricsLog(const MetricsLog&) = delete;
  MetricsLog& operator=(const MetricsLog&) = delete;
  void write(const Metrics& row);
  const std::string& path() const { return path_; }
  // The header line (without newline).
  static const char* header();

 private:
  std::string path_;
  std::FILE* file_ = nullptr;
};

// ---- evaluation ----

struct Evaluation {
  double loss = NAN;      // mean cross-entropy over the samples
  double accuracy = NAN;  // fraction of samples whose largest logit is at the label
  int64_t samples = 0;
};

// Evaluates a classifier on a dataset of (inputs, int64 labels [N]): the model maps a batch of
// inputs to logits [B, C]. Runs in eval mode (the previous mode is restored) under NoGradGuard, in
// batches of `batch_size`, without shuffling. ValueError for an empty dataset, a dataset without
// labels or a non-positive batch size; DtypeError for non-int64 labels; ShapeError if the logits
// are not [B, C].
Evaluation evaluate(Module& model, const TensorDataset& data, int64_t batch_size = 256);

}  // namespace ag::nn
