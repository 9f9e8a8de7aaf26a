// Small synthetic data sets for tests, demos and examples. Each is reproducible from its seed
// (the same seed gives the same tensors everywhere), float32 inputs, and int64 class labels
// (classification) or float32 targets (regression). In the classification sets the classes take
// turns (sample i has class i % num_classes), so every prefix, and TensorDataset::split, is
// balanced.
#pragma once

#include <cstdint>

#include "nn/data/dataset.h"

namespace ag::nn {

// XOR: inputs in {0, 1}^2 ([n, 2]) and labels a xor b ([n]).
// n = 0: the four corners (0,0), (0,1), (1,0), (1,1) with labels 0, 1, 1, 0, in that order.
// n > 0: n points, the corners in turn, each moved by N(0, noise^2) in both coordinates.
TensorDataset xor_dataset(int64_t n = 0, double noise = 0.0, uint64_t seed = 0);

// Two interleaved spirals in the plane, one per class: inputs [2 n_per_class, 2], labels [2n].
// Point i of class 0 has radius r = 0.1 + 0.9 i / (n - 1) and angle r * turns * 2 pi; class 1 is
// the same spiral turned by pi. Both coordinates get N(0, noise^2) noise; the points lie in about
// [-1, 1]^2.
TensorDataset two_spirals(int64_t n_per_class, double noise = 0.0, uint64_t seed = 0,
                          double turns = 1.5);

// `count` centers evenly spaced on a circle of the given radius: [count, 2], for gaussian_blobs.
Tensor circle_centers(int64_t count, double radius = 1.0);

// n points around the given centers ([k, d]): point i belongs to class i % k and is its center plus
// N(0, std^2) noise in each coordinate. Inputs [n, d], labels [n].
TensorDataset gaussian_blobs(int64_t n, const Tensor& centers, double std = 0.25,
                             uint64_t seed = 0);

// A noisy curve for regression: x uniform in [-1, 1], y = sin(3 x) + N(0, noise^2). Both [n, 1].
TensorDataset sine_regression(int64_t n, double noise = 0.1, uint64_t seed = 0);

struct DigitsOptions {
  int64_t rows = 28, cols = 28;
  int64_t num_classes = 10;
  double noise = 0.2;            // std of the Gaussian pixel noise
  double jitter = 1.0;           // std (pixels) of the move of each stroke end, per sample
  double max_shift = 2.0;        // the whole glyph moves by up to this many pixels each way
  uint64_t prototype_seed = 28;  // draws the class prototypes: keep it for train and test sets
  bool flatten = true;           // [n, rows * cols] (as read_idx_images) or [n, rows, cols]
};

// An MNIST-like classification set, for examples/mnist without real data. Each class has a
// prototype glyph of three pen strokes (segments with random ends, drawn from
// options.prototype_seed). A sample redraws its class's glyph with every stroke end moved by
// N(0, jitter^2) pixels and the whole glyph shifted by up to max_shift pixels, strokes of Gaussian
// profile (about 1.2 pixels wide at 28 x 28), a contrast in [0.7, 1], plus N(0, noise^2) pixel
// noise, clamped to [0, 1]. Inputs float32 in [0, 1], labels [n]. Sets with different `seed` and
// the same options are independent draws of the same classes (a train and a test set); an MLP
// learns it to high accuracy in a few epochs.
TensorDataset synthetic_digits(int64_t n, uint64_t seed = 0, const DigitsOptions& options = {});

}  // namespace ag::nn
