#pragma once
// The world a `moda train` process belongs to: the MPI launcher's (`mpirun -np N`, `srun
// --mpi=pmix`) when one started it, else a world of one with no MPI at all.
#include <memory>

#include "distributed/comm/communicator.h"

namespace moda {

// True when this process was started by an MPI launcher (Open MPI, MPICH/Hydra, PMIx, Slurm PMI):
// then `moda train` joins the launcher's world; otherwise it is a world of one and MPI stays
// uninitialised (no singleton start-up cost, no MPI needed to run on one device). Also answered
// without MPI, so that a build without it refuses such a start instead of training alone N times.
bool launched_by_mpi();

class World {
 public:
  World();  // joins the launcher's world, or makes a world of one
  ~World();
  World(const World&) = delete;
  World& operator=(const World&) = delete;

  std::unique_ptr<Communicator> take_communicator() { return std::move(comm_); }
  int rank() const { return rank_; }
  int size() const { return size_; }
  // Ends every rank at once (MPI_Abort), so that no rank waits forever in a collective for one
  // that failed; in a world of one, plain exit.
  [[noreturn]] void abort(int code) const;

 private:
  struct MpiState;
  std::unique_ptr<MpiState> mpi_;
  std::unique_ptr<Communicator> comm_;
  int rank_ = 0, size_ = 1;
};

}  // namespace moda
