// ShardedOptimizer's checkpoint state: export of the rank's shard, import from any world size.
#include <map>

#include "autograd/graph.h"
#include "core/error.h"
#include "distributed/shard_layout.h"
#include "distributed/sharded_optimizer.h"

namespace moda {

namespace {

const char* const kMoments[] = {"exp_avg", "exp_avg_sq"};

// A piece's element offset inside its group's [S] master shard: shard_params() hands AdamW
// narrow views of the master, so the view's storage offset says where the piece sits.
int64_t offset_in_shard(const nn::OptimParam& piece, const Tensor& master) {
  return piece.param.offset() - master.offset();
}

}  // namespace

int64_t ShardedOptimizer::steps_taken() const { return adamw_->steps_taken(); }

NamedTensors ShardedOptimizer::export_state() const {
  NamedTensors out;
  export_state_into(out);
  return out;
}

void ShardedOptimizer::export_state_into(NamedTensors& into) const {
  const char* const kinds[] = {"master", kMoments[0], kMoments[1]};
  bool reuse = into.size() == 3 * groups_.size();
  for (size_t i = 0; reuse && i < into.size(); ++i) {
    const GroupShard& g = groups_[i / 3];
    reuse = into[i].first == g.group->name + "." + kinds[i % 3] && into[i].second.numel() == g.shard;
  }
  if (!reuse) {
    into.clear();
    for (const auto& g : groups_)
      for (const char* kind : kinds) {
        Tensor t = Tensor::empty_pinned({g.shard}, DType::F32);
        t.fill_(0.0);  // the padding past the pieces stays zero in every later export
        into.emplace_back(g.group->name + "." + kind, t);
      }
  }
  std::map<std::string, Tensor> adam;
  for (auto& [name, t] : adamw_->state()) adam.emplace(name, t);
  const int rank = comm_.rank();
  for (size_t gi = 0; gi < groups_.size(); ++gi) {
    const GroupShard& g = groups_[gi];
    into[3 * gi].second.copy_(g.master);
    // AdamW keeps one moment tensor per piece; the checkpoint keeps the group's [S] vector.
    // shard_params() only makes new views of g's buffers; it changes nothing in g.
    const auto pieces = shard_params(const_cast<GroupShard&>(g), rank);
    for (int k = 0; k < 2; ++k) {
      Tensor& flat = into[3 * gi + 1 + k].second;
      for (const auto& piece : pieces) {
        const Tensor& m = adam.at(piece.name + "." + kMoments[k]);
        flat.narrow(0, offset_in_shard(piece, g.master), m.numel()).copy_(m);
      }
    }
  }
}

void ShardedOptimizer::import_state(const FullVectorReader& read, int64_t adamw_steps) {
  NoGradGuard no_grad;
  const int world = comm_.world_size(), rank = comm_.rank();
  SafetensorsFile adam;  // AdamW's own checkpoint form: one tensor per piece, "__step__"
  for (auto& g : groups_) {
    const std::string& name = g.group->name;
    const ElementRange mine = owned_range(g.numel, world, rank);
    // The range this rank owns, read from the full vectors; the padding past numel stays zero.
    auto shard_of = [&](const char* kind) {
      Tensor flat = Tensor::zeros({g.shard}, DType::F32);
      if (mine.size() > 0) read(name, kind, mine.lo, mine.hi, flat.data<float>());
      return flat;
    };
    g.master.copy_(shard_of("master"));
    for (const char* kind : kMoments) {
      Tensor flat = shard_of(kind);
      for (const auto& piece : shard_params(g, rank))
        adam.tensors[piece.name + "." + kind] =
            flat.narrow(0, offset_in_shard(piece, g.master), piece.param.numel()).clone();
    }
  }
  adam.tensors["__step__"] = Tensor::from_ints({adamw_steps}, {1}, DType::I64);
  adamw_->load_state(adam);
  // The model's parameters follow: ParameterSharding gathers each group from the masters at its
  // next use (the trainer frees every group after restoring).
}

}  // namespace moda
