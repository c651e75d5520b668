#pragma once
// The arithmetic of sharding one flat parameter group over a world of ranks, shared by the
// sharded optimiser, sharded checkpoints and resharding. A group of n elements is padded to N S
// elements, S = ceil(n / N); rank r owns [r S, (r + 1) S). The part of that range below n holds
// real values (parameters, and the zero gaps that align them in the flat buffer); the rest is
// padding, always zero.
#include <cstdint>
#include <vector>

namespace moda {

// A half-open element range [lo, hi) of a group's unpadded vector.
struct ElementRange {
  int64_t lo = 0, hi = 0;
  int64_t size() const { return hi > lo ? hi - lo : 0; }
  bool operator==(const ElementRange&) const = default;
};

// S: elements per rank (padding included) for a group of `numel` over `world` ranks.
int64_t shard_size(int64_t numel, int world);

// The real (unpadded) elements rank `rank` of `world` owns: [r S, (r + 1) S) cut at numel.
// Empty ([numel, numel)) for a rank that holds only padding.
ElementRange owned_range(int64_t numel, int world, int rank);

// Where the elements `want` of a group live in a checkpoint saved by `saved_world` ranks: one
// entry per saved rank whose owned range overlaps `want`, in rank order, each with the global
// range it contributes and that range's offset inside the rank's [S] shard. Together the entries
// cover `want` exactly once.
struct SavedPiece {
  int rank = 0;
  ElementRange global;          // a part of `want`
  int64_t offset_in_shard = 0;  // global.lo - rank * S
};
std::vector<SavedPiece> saved_pieces(int64_t numel, int saved_world, ElementRange want);

}  // namespace moda
