#pragma once
// MPI: the launcher's world (mpirun, srun --mpi=pmix) and the collectives over CPU tensors, so
// that multi-rank training runs and is tested on machines without GPUs. Built when MPI is found.
#include <memory>
#include <string>

#include "distributed/comm/communicator.h"

namespace moda {

// Initialises MPI for the life of the object (MPI_THREAD_FUNNELED) and finalises it after.
// Errors abort every rank rather than leave the others waiting in a collective.
class MpiSession {
 public:
  MpiSession();
  ~MpiSession();
  MpiSession(const MpiSession&) = delete;
  MpiSession& operator=(const MpiSession&) = delete;
};

// A communicator over MPI_COMM_WORLD (CPU tensors: f32, f64, i32, i64). MPI must be initialised.
std::unique_ptr<Communicator> make_mpi_communicator();

// Ranks on this node (MPI_Comm_split_type SHARED): the index of the GPU this rank should use.
int mpi_local_rank();

}  // namespace moda
