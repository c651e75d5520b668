#pragma once
// NCCL: the collectives over CUDA tensors, one rank per GPU. Built when the CUDA toolkit's NCCL is
// found (MODA_HAVE_NCCL).
//
// Bootstrap (the usual recipe, docs/distributed.md): the launcher's communicator (MPI under
// mpirun, or a world of one) already knows rank and world size; rank 0 makes an ncclUniqueId,
// broadcasts it over that communicator, and every rank calls ncclCommInitRank on its GPU (the
// caller has picked the device from the node-local rank).
//
// Streams: every collective runs on the communicator's own stream. It waits for the work the
// compute stream (current_stream()) has queued so far, and the compute stream waits for the
// collective before anything queued after it, so callers see ordinary stream-ordered semantics
// and the host never blocks. CPU tensors (loss scalars, gradient-norm partial sums, stop flags)
// go through the bootstrap communicator.
#include <memory>

#include "distributed/comm/communicator.h"

namespace moda {

std::unique_ptr<Communicator> make_nccl_communicator(std::unique_ptr<Communicator> bootstrap, int device);

}  // namespace moda
