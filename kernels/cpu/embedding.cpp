#include "kernels/cpu/embedding.h"

#include <algorithm>
#include <numeric>
#include <vector>

#include "core/error.h"

namespace moda::cpu {

namespace {
template <typename I>
void check_ids(const I* ids, int64_t n, int64_t vocab, const char* op) {
  for (int64_t i = 0; i < n; ++i)
    MODA_CHECK(ids[i] >= 0 && static_cast<int64_t>(ids[i]) < vocab, op, ": token id ", static_cast<int64_t>(ids[i]),
               " at position ", i, " is outside the table [0, ", vocab, ")");
}
}  // namespace

template <typename T, typename I>
void embedding_forward(const T* table, const I* ids, T* out, int64_t n, int64_t vocab, int64_t dim) {
  check_ids(ids, n, vocab, "embedding_forward");
  for (int64_t i = 0; i < n; ++i) std::copy_n(table + static_cast<int64_t>(ids[i]) * dim, dim, out + i * dim);
}

template <typename T, typename I>
void embedding_backward(const T* dout, const I* ids, T* dtable, int64_t n, int64_t vocab, int64_t dim) {
  check_ids(ids, n, vocab, "embedding_backward");
  // Group positions by id (stable), then sum each group in double before one add into dtable:
  // the same order and rounding as the CUDA kernel's sorted segments.
  std::vector<int64_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return ids[a] < ids[b]; });
  std::vector<double> acc(dim);
  for (int64_t s = 0; s < n;) {
    const int64_t id = ids[order[s]];
    std::fill(acc.begin(), acc.end(), 0.0);
    int64_t e = s;
    for (; e < n && ids[order[e]] == id; ++e)
      for (int64_t j = 0; j < dim; ++j) acc[j] += dout[order[e] * dim + j];
    T* row = dtable + id * dim;
    for (int64_t j = 0; j < dim; ++j) row[j] = T(row[j] + acc[j]);
    s = e;
  }
}

#define MODA_EMBEDDING_INSTANTIATE(T, I)                                                    \
  template void embedding_forward<T, I>(const T*, const I*, T*, int64_t, int64_t, int64_t); \
  template void embedding_backward<T, I>(const T*, const I*, T*, int64_t, int64_t, int64_t);
MODA_EMBEDDING_INSTANTIATE(float, int32_t)
MODA_EMBEDDING_INSTANTIATE(float, int64_t)
MODA_EMBEDDING_INSTANTIATE(double, int32_t)
MODA_EMBEDDING_INSTANTIATE(double, int64_t)

}  // namespace moda::cpu
