#include "distributed/shard_layout.h"

#include <algorithm>

#include "core/error.h"

namespace moda {

int64_t shard_size(int64_t numel, int world) {
  MODA_CHECK(numel >= 0 && world >= 1, "shard_size: numel ", numel, " and world size ", world,
             " must be >= 0 and >= 1");
  return (numel + world - 1) / world;
}

ElementRange owned_range(int64_t numel, int world, int rank) {
  MODA_CHECK(rank >= 0 && rank < world, "owned_range: rank ", rank, " is outside a world of ", world);
  const int64_t s = shard_size(numel, world);
  return {std::min(rank * s, numel), std::min((rank + 1) * s, numel)};
}

std::vector<SavedPiece> saved_pieces(int64_t numel, int saved_world, ElementRange want) {
  MODA_CHECK(want.lo >= 0 && want.lo <= want.hi && want.hi <= numel, "saved_pieces: range [", want.lo, ", ", want.hi,
             ") is outside a group of ", numel, " elements");
  std::vector<SavedPiece> out;
  if (want.size() == 0) return out;
  const int64_t s = shard_size(numel, saved_world);
  // Only the saved ranks whose ranges can meet `want` are visited, not the whole saved world.
  for (int64_t q = want.lo / s; q < saved_world && q * s < want.hi; ++q) {
    const ElementRange own = owned_range(numel, saved_world, static_cast<int>(q));
    const ElementRange part{std::max(own.lo, want.lo), std::min(own.hi, want.hi)};
    if (part.size() == 0) continue;
    out.push_back({static_cast<int>(q), part, part.lo - q * s});
  }
  return out;
}

}  // namespace moda
