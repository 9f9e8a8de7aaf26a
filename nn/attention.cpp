#include "nn/attention.h"

#include <algorithm>
#include <cmath>

namespace ag::nn {

CausalSelfAttention::CausalSelfAttention(const AttentionOptions& o, Generator* gen)
    : n_head_(o.n_head), dropout_(o.dropout), gen_(o.seed) {
  if (o.d_model <= 0 || o.n_head <= 0 || o.d_model % o.n_head != 0)
    fail<ValueError>("CausalSelfAttention: d_model {} is not a positive multiple of n_head {}",
                     o.d_model, o.n_head);
  qkv = register_module("qkv", normal_linear(o.d_model, 3 * o.d_model, o.init_std, gen));
  proj = register_module("proj", normal_linear(o.d_model, o.d_model, o.proj_init_std, gen));
}

namespace {
// Appends k and v ([B, H, T, D]) to the cache; they become the cached keys and values.
void extend_cache(AttentionCache& cache, Tensor& k, Tensor& v, bool training) {
  if (training || is_grad_enabled())
    fail<ValueError>(
        "CausalSelfAttention: a key/value cache is for inference only (eval mode, no grad)");
  const int64_t past = cache.length(), need = past + k.size(2);
  if (past > 0) {
    const Shape& c = cache.keys.shape();
    if (c.size() != 4 || c[0] != k.size(0) || c[1] != k.size(1) || c[3] != k.size(3))
      fail<ShapeError>("CausalSelfAttention: cached keys {} do not fit new keys {}", c, k.shape());
  }
  if (!cache.key_buffer.defined() || cache.key_buffer.size(2) < need) {
    const int64_t capacity = std::max(need, past > 0 ? 2 * cache.key_buffer.size(2) : need);
    const Shape shape = {k.size(0), k.size(1), capacity, k.size(3)};
    Tensor kb = Tensor::empty(shape, k.dtype()), vb = Tensor::empty(shape, v.dtype());
    if (past > 0) {
      slice(kb, 2, 0, past).copy_(cache.keys);
      slice(vb, 2, 0, past).copy_(cache.values);
    }
    cache.key_buffer = kb;
    cache.value_buffer = vb;
  }
  slice(cache.key_buffer, 2, past, need).copy_(k);
  slice(cache.value_buffer, 2, past, need).copy_(v);
  k = cache.keys = slice(cache.key_buffer, 2, 0, need);
  v = cache.values = slice(cache.value_buffer, 2, 0, need);
}
}  // namespace

Tensor CausalSelfAttention::forward(const Tensor& x, AttentionCache* cache) {
  int64_t B = x.size(0), T = x.size(1), C = x.size(2), H = n_head_, D = C / H;
  Tensor qkv_out = qkv->forward(x);   // [B, T, 3C]
  auto parts = split(qkv_out, C, 2);  // 3 x [B, T, C]
  auto heads = [&](const Tensor& t) { return transpose(reshape(t, {B, T, H, D}), 1, 2); };
  Tensor q = heads(parts[0]), k = heads(parts[1]), v = heads(parts[2]);  // [B, H, T, D]
  int64_t past = cache ? cache->length() : 0;
  if (cache) extend_cache(*cache, k, v, is_training());  // k, v: [B, H, past + T, D]
  Tensor att = mul(matmul(q, transpose(k, -2, -1)), 1.0 / std::sqrt(static_cast<double>(D)));
  // Query i sits at position past + i: keys after it are masked (none when T is 1: a generated
  // token's query sees every key).
  if (T > 1) att = masked_fill(att, triu(ones({T, past + T}, boolean), past + 1), -INFINITY);
  att = softmax(att, -1);  // [B, H, T, past + T]
  if (keep_attention) last_attention = att.detach();
  att = dropout(att, dropout_, is_training(), &gen_);
  Tensor y = matmul(att, v);  // [B, H, T, D]
  y = reshape(transpose(y, 1, 2), {B, T, C});
  return proj->forward(y);
}

}  // namespace ag::nn
