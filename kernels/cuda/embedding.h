#pragma once
// Token embedding on CUDA: out[i, :] = table[ids[i], :]; backward dtable[ids[i], :] += dout[i, :].
// Ids outside [0, vocab) are not read or written: the forward writes zeros for that row, the
// backward skips it, and both record the first offender in a device-side flag that
// embedding_check_ids() turns into a moda::Error (call it where a sync is acceptable, e.g. per step).
#include <cuda_runtime_api.h>

#include <cstdint>

#include "core/bf16.h"

namespace moda::cuda {

// table [vocab, dim] and out [n, dim] are f32 or bf16 (same type); ids int32_t or int64_t.
void embedding_forward(const float* table, const int32_t* ids, float* out, int64_t n, int64_t vocab, int64_t dim,
                       cudaStream_t stream);
void embedding_forward(const float* table, const int64_t* ids, float* out, int64_t n, int64_t vocab, int64_t dim,
                       cudaStream_t stream);
void embedding_forward(const bf16* table, const int32_t* ids, bf16* out, int64_t n, int64_t vocab, int64_t dim,
                       cudaStream_t stream);
void embedding_forward(const bf16* table, const int64_t* ids, bf16* out, int64_t n, int64_t vocab, int64_t dim,
                       cudaStream_t stream);

// dtable (fp32) += scatter of dout (f32 or bf16). Deterministic, bit for bit run to run: positions
// are sorted by id (stable radix sort), and each id's rows are summed in position order in fp32 by
// one thread per column, then added once. Scratch comes from the caching allocator.
void embedding_backward(const float* dout, const int32_t* ids, float* dtable, int64_t n, int64_t vocab, int64_t dim,
                        cudaStream_t stream);
void embedding_backward(const float* dout, const int64_t* ids, float* dtable, int64_t n, int64_t vocab, int64_t dim,
                        cudaStream_t stream);
void embedding_backward(const bf16* dout, const int32_t* ids, float* dtable, int64_t n, int64_t vocab, int64_t dim,
                        cudaStream_t stream);
void embedding_backward(const bf16* dout, const int64_t* ids, float* dtable, int64_t n, int64_t vocab, int64_t dim,
                        cudaStream_t stream);

// Synchronises `stream`; if an out-of-range id was seen on this device since the last check, clears
// the flag and throws moda::Error naming the position and the id.
void embedding_check_ids(cudaStream_t stream);

}  // namespace moda::cuda
