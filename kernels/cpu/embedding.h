#pragma once
// Token embedding: out[i, :] = table[ids[i], :], and its backward, a scatter-add into dtable.
// ids are int32_t or int64_t; every id must lie in [0, vocab) (checked: moda::Error names the
// position and the id).
#include <cstdint>

namespace moda::cpu {

// table [vocab, dim], ids [n], out [n, dim]; all row-major contiguous.
template <typename T, typename I>
void embedding_forward(const T* table, const I* ids, T* out, int64_t n, int64_t vocab, int64_t dim);

// dtable[ids[i], :] += dout[i, :], in order of i (deterministic); sums in double per row.
template <typename T, typename I>
void embedding_backward(const T* dout, const I* ids, T* dtable, int64_t n, int64_t vocab, int64_t dim);

}  // namespace moda::cpu
