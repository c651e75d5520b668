// Collective timeouts and MPI errors (docs/distributed.md, "Faults"). The config field is checked
// here; the two hidden cases ([.mpi_fault...]) run only under `mpirun -np 2`, started by
// tests/cli/mpi_faults.sh, which checks what they print and that the job ends non-zero: each one
// ends in MPI_Abort, so neither can pass or fail by returning.
#include <catch2/catch.hpp>
#include <chrono>
#include <thread>

#include "distributed/comm/communicator.h"
#include "distributed/resume_check.h"
#include "distributed/train_config.h"
#include "tests/trainer_fixture.h"
#if MODA_HAVE_MPI
#include "distributed/launch.h"
#endif

using namespace moda;
using namespace moda::testing;

TEST_CASE("train config: collective_timeout_s defaults to 600 s and must be > 0 and may change on resume",
          "[cpu][train]") {
  auto j = tiny_config(1);
  TrainConfig cfg = train_config_from_json(j);
  CHECK(cfg.train.collective_timeout_s == 600);
  CHECK(cfg.resolved["train"]["collective_timeout_s"] == 600);
  j["train"]["collective_timeout_s"] = 2.5;
  CHECK(train_config_from_json(j).train.collective_timeout_s == 2.5);
  for (double bad : {0.0, -1.0}) {
    j["train"]["collective_timeout_s"] = bad;
    REQUIRE_THROWS_WITH(train_config_from_json(j),
                        Catch::Contains("train.collective_timeout_s: value") && Catch::Contains("must be > 0"));
  }
  j["train"]["collective_timeout_s"] = "3";
  REQUIRE_THROWS_WITH(train_config_from_json(j), Catch::Contains("collective_timeout_s") && Catch::Contains("number"));
  // A checkpoint written before the field existed resumes too (the field is resumable).
  auto saved = cfg.resolved;
  saved["train"].erase("collective_timeout_s");
  CHECK_NOTHROW(check_resume_config(saved, cfg.resolved, "ckpt"));
}

TEST_CASE("single-process communicator: the fault settings are accepted and change nothing", "[cpu][train]") {
  auto comm = make_single_process_communicator();
  comm->set_timeout(0.001);
  comm->set_step(3);
  comm->barrier();  // nobody to wait for: no timeout however short
  Tensor t = Tensor::full({2}, 1.5, DType::F32);
  comm->all_reduce_sum(t);
  CHECK(t.data<float>()[1] == 1.5f);
}

#if MODA_HAVE_MPI
// Rank 0 enters a barrier that rank 1 never joins: rank 0 must report the timeout and abort.
TEST_CASE("mpi fault: a collective that one rank skips times out naming rank, collective and step",
          "[.mpi_fault_timeout]") {
  World world;
  auto comm = world.take_communicator();
  REQUIRE(comm->world_size() == 2);
  comm->set_timeout(1);
  comm->set_step(5);
  if (comm->rank() == 0) comm->barrier();
  std::this_thread::sleep_for(std::chrono::seconds(60));  // rank 1: until mpirun ends the job
  FAIL("the job was not aborted within 60 s");
}

// A broadcast from a root outside the world is an MPI error: the handler names the collective.
TEST_CASE("mpi fault: an MPI error names the collective and step and aborts", "[.mpi_fault_error]") {
  World world;
  auto comm = world.take_communicator();
  comm->set_step(7);
  Tensor t = Tensor::full({4}, 1.0, DType::F32);
  comm->broadcast(t, comm->world_size());
  FAIL("a broadcast from an invalid root returned");
}
#endif
