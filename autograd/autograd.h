// What a model writer includes: Tensor, the ops, grad modes, backward and grad, forward mode,
// activation checkpointing, gradcheck and the functional API, errors, printing and the tape's
// export.
//
// Two layers are separate includes, and a model's code compiles without seeing them:
//   autograd/op.h, autograd/function.h, autograd/node.h   the op-authoring layer: record(), Saved,
//                                                        rules, Node, custom Functions
//                                                        (docs/contributing.md)
//   autograd/xtensor.h                                   interop with xtensor containers
//   autograd/foreach.h                                   foreach_update_, for optimizer authors
#pragma once

#include "autograd/checkpoint.h"
#include "autograd/dtype.h"
#include "autograd/engine.h"
#include "autograd/error.h"
#include "autograd/forward.h"
#include "autograd/functional.h"
#include "autograd/grad_mode.h"
#include "autograd/gradcheck.h"
#include "autograd/graph_export.h"
#include "autograd/ops/activation.h"
#include "autograd/ops/conv.h"
#include "autograd/ops/elementwise.h"
#include "autograd/ops/index.h"
#include "autograd/ops/linalg.h"
#include "autograd/ops/loss.h"
#include "autograd/ops/norm.h"
#include "autograd/ops/pool.h"
#include "autograd/ops/random.h"
#include "autograd/ops/reduce.h"
#include "autograd/ops/shape.h"
#include "autograd/ops/unary.h"
#include "autograd/print.h"
#include "autograd/shape.h"
#include "autograd/tensor.h"
