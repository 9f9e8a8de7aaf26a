// Hugging Face GPT-2 checkpoints, read into our GPT (nn/models/gpt.h) and written back, so models
// come from and go to the `transformers` ecosystem unchanged.
//
// A GPT-2 directory holds:
//   config.json                    the configuration: n_layer, n_head, n_embd, n_positions (or
//                                  n_ctx), vocab_size, layer_norm_epsilon, activation_function
//   model.safetensors              the weights, or, for a checkpoint split over several files,
//   model.safetensors.index.json   {"weight_map": {"<tensor>": "<file>", ...}} and those files
//
// Tensor names, with or without a "transformer." prefix, and what they become in our GPT (C =
// n_embd, V = vocab_size, P = n_positions; N = 0 .. n_layer - 1):
//   wte.weight [V, C], wpe.weight [P, C]        -> wte.weight, wpe.weight
//   h.N.ln_1.{weight,bias} [C]                  -> blocks.N.ln1.*
//   h.N.attn.c_attn.weight [C, 3C], bias [3C]   -> blocks.N.attn.qkv.*
//   h.N.attn.c_proj.weight [C, C], bias [C]     -> blocks.N.attn.proj.*
//   h.N.ln_2.{weight,bias} [C]                  -> blocks.N.ln2.*
//   h.N.mlp.c_fc.weight [C, 4C], bias [4C]      -> blocks.N.mlp.fc.*
//   h.N.mlp.c_proj.weight [4C, C], bias [C]     -> blocks.N.mlp.proj.*
//   ln_f.{weight,bias} [C]                      -> ln_f.*
// GPT-2's Conv1D layers store their weights as [in, out]; our Linear's are [out, in], so those
// four weights are transposed on the way in and out. The output projection is tied to wte: an
// `lm_head.weight` (as transformers saves it, without the prefix) must hold exactly the values of
// wte.weight. The buffers `h.N.attn.bias` and `h.N.attn.masked_bias` that older files carry (the
// causal mask) are ignored.
#pragma once

#include <memory>
#include <string>

#include "nn/models/gpt.h"

namespace ag::nn {

class Tokenizer;  // nn/text/tokenizer.h

// Builds the GPT that a Hugging Face GPT-2 directory holds, in evaluation-ready form (dropout 0;
// the pdrop fields of config.json are training settings and are not read). Its GPTConfig has
// vocab_size, n_layer, n_head, d_model = n_embd, context = n_positions (n_ctx if n_positions is
// absent), layer_norm_eps = layer_norm_epsilon (default 1e-5) and gelu = "tanh" for
// activation_function "gelu_new" (the default) or "gelu_pytorch_tanh", "none" (erf) for "gelu".
// The weights may be F32, F16 or BF16 (converted to float32). When both model.safetensors and the
// index exist, model.safetensors is read (as transformers does).
// Every file and tensor is checked before the model is built, so a malformed directory costs no
// more memory than its files; errors name the file and, where one is involved, the tensor:
//   IOError     a missing or unreadable file, JSON that does not parse, a safetensors file that
//               load_safetensors refuses (truncated, an unknown dtype such as F8_E4M3, ...)
//   ValueError  a missing or ill-typed config field, an unsupported setting (another
//               activation_function or model_type, n_inner other than 4 n_embd,
//               scale_attn_weights false, scale_attn_by_inverse_layer_idx, add_cross_attention),
//               a missing tensor, a tensor whose shape disagrees with config.json, a tensor of
//               another dtype (F64, integers), an unknown extra tensor, a tensor present twice
//               (with and without the prefix, or in two files), an lm_head.weight that differs from
//               wte.weight (only tied output heads are supported), an index whose weight_map is not
//               a map of tensor names to file names in the directory, or a file the index names
//               that holds tensors the index does not assign to it.
std::shared_ptr<GPT> load_gpt2(const std::string& dir);

// Writes `model` to `dir` (created if missing) as a GPT-2 directory that load_gpt2 and
// transformers' GPT2LMHeadModel.from_pretrained read: model.safetensors (float32, names without
// prefix, Conv1D weights [in, out], no lm_head.weight since the head is tied, metadata
// "format": "pt") and config.json (model_type "gpt2", architectures ["GPT2LMHeadModel"], the sizes,
// n_ctx = n_positions, layer_norm_epsilon, activation_function "gelu_new" or "gelu", dropout fields
// from the model's dropout, bos/eos_token_id 50256 when vocab_size is GPT-2's 50257 and null
// otherwise). Both files are written atomically (nn/io/atomic_file.h). With a tokenizer, its files
// are written to `dir` too (Tokenizer::save).
// ValueError if a Linear of the model carries an unmerged LoRA adapter (merge it first: the GPT-2
// layout has no place for it); IOError if the directory or a file cannot be written.
void save_gpt2(const std::string& dir, const GPT& model, const Tokenizer* tokenizer = nullptr);

// True if `path` is a directory holding config.json and model.safetensors or
// model.safetensors.index.json (what load_gpt2 reads). Never throws.
bool is_gpt2_directory(const std::string& path);

}  // namespace ag::nn
