#pragma once
// The cache of one generation (docs/generate.md): the model's depth stream kept across forward
// passes. Its K and V buffers [B, T_max, S, Hk, d] hold, for every token run so far, every slot
// the network wrote: each layer's sequence K,V (read by later tokens) and the depth K,V pairs
// (read by the same token's later layers). A new token's depth entries are its own, so the depth
// cache grows with the sequence exactly like the KV cache: both are the stream's first length()
// positions. LanguageModel::decode appends to it.
#include <memory>

#include "nn/depth_stream.h"

namespace moda::nn {

class DecodeCache {
 public:
  explicit DecodeCache(std::shared_ptr<DepthStream> stream) : stream_(std::move(stream)) {}

  int64_t batch() const { return stream_->batch(); }
  int64_t capacity() const { return stream_->tokens(); }  // T_max
  int64_t length() const { return length_; }              // tokens cached so far
  const std::shared_ptr<DepthStream>& stream() const { return stream_; }

  // The next pass covers positions [length(), length() + n); decode() calls this after the pass.
  void advance(int64_t n) { length_ += n; }
  void clear() { length_ = 0; }  // reuse the buffers for a new generation

 private:
  std::shared_ptr<DepthStream> stream_;
  int64_t length_ = 0;
};

}  // namespace moda::nn
