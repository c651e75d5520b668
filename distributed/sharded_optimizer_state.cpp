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
  std::map<std::string, Tensor> adam;
  for (auto& [name, t] : adamw_->state()) adam.emplace(name, t);
  NamedTensors out;
  const int rank = comm_.rank();
  for (const auto& g : groups_) {
    const std::string& name = g.group->name;
    out.emplace_back(name + ".master", g.master.to(Device::cpu()).clone());
    for (const char* kind : kMoments) {
      // AdamW keeps one moment tensor per piece; the checkpoint keeps the group's [S] vector.
      Tensor flat = Tensor::zeros({g.shard}, DType::F32);
      // shard_params() only makes new views of g's buffers; it changes nothing in g.
      for (const auto& piece : shard_params(const_cast<GroupShard&>(g), rank)) {
        const Tensor& m = adam.at(piece.name + "." + kind);
        flat.narrow(0, offset_in_shard(piece, g.master), m.numel()).copy_(m);
      }
      out.emplace_back(name + "." + kind, flat);
    }
  }
  return out;
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
