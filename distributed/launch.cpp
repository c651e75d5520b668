#include "distributed/launch.h"

#include <cstdlib>

#include "core/error.h"
#if MODA_HAVE_MPI
#include <mpi.h>

#include "distributed/comm/mpi_communicator.h"
#endif

namespace moda {

#if MODA_HAVE_MPI
struct World::MpiState {
  MpiSession session;
};
#else
struct World::MpiState {};
#endif

bool launched_by_mpi() {
  for (const char* var : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "PMI_RANK", "MPI_LOCALNRANKS"})
    if (std::getenv(var)) return true;
  return false;
}

World::World() {
#if MODA_HAVE_MPI
  if (launched_by_mpi()) {
    mpi_ = std::make_unique<MpiState>();
    comm_ = make_mpi_communicator();
    rank_ = comm_->rank();
    size_ = comm_->world_size();
    return;
  }
#else
  MODA_CHECK(!launched_by_mpi(),
             "moda was started by an MPI launcher but built without MPI (install libopenmpi-dev "
             "and rebuild)");
#endif
  comm_ = make_single_process_communicator();
}

World::~World() = default;

void World::abort(int code) const {
#if MODA_HAVE_MPI
  if (mpi_ && size_ > 1) MPI_Abort(MPI_COMM_WORLD, code);
#endif
  std::exit(code);
}

}  // namespace moda
