#pragma once
// The collectives a data-parallel trainer needs, behind one interface so the trainer is written
// once for every backend. Every rank calls the same collectives in the same order with tensors of
// the same shape, dtype and device. Backends: a single process (world of one, below), MPI for CPU
// tensors (comm/mpi_communicator.h) and NCCL for CUDA tensors (comm/nccl_communicator.h).
#include <cstdint>
#include <memory>
#include <string>

#include "core/tensor.h"

namespace moda {

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int world_size() const = 0;
  virtual std::string backend() const = 0;
  // This rank's index among the ranks on its node: the GPU it uses.
  virtual int local_rank() const { return 0; }

  // t <- sum over ranks of t (in place).
  virtual void all_reduce_sum(Tensor& t) = 0;
  // out [world * n] <- every rank's in [n], in rank order.
  virtual void all_gather(Tensor& out, const Tensor& in) = 0;
  // out [n] <- sum over ranks of in[rank * n, (rank + 1) * n), in [world * n].
  virtual void reduce_scatter_sum(Tensor& out, const Tensor& in) = 0;
  // t <- root's t.
  virtual void broadcast(Tensor& t, int root) = 0;
  virtual void barrier() = 0;

  // Queued collectives, for overlap (distributed/parameter_sharding.h). The collective is queued
  // behind the work already queued on the compute stream; wait() orders the compute stream's
  // later work after it. Until wait() the caller must neither read `out` nor free or change
  // `in` or `out` (the Work keeps their storage alive). A backend without a communication
  // stream (single, MPI) completes the collective before returning and says so by
  // asynchronous() == false.
  class Work {
   public:
    virtual ~Work() = default;
    virtual void wait() {}
  };
  virtual bool asynchronous() const { return false; }
  virtual std::unique_ptr<Work> all_gather_async(Tensor& out, const Tensor& in) {
    all_gather(out, in);
    return std::make_unique<Work>();
  }
  virtual std::unique_ptr<Work> reduce_scatter_sum_async(Tensor& out, const Tensor& in) {
    reduce_scatter_sum(out, in);
    return std::make_unique<Work>();
  }

  // Faults (docs/distributed.md, "Faults"): a backend with peers waits at most `seconds` in one
  // collective, then reports this rank, the collective and the step, and ends the job; `step` is
  // only for that report. A world of one has nobody to wait for and ignores both.
  virtual void set_timeout(double /*seconds*/) {}
  virtual void set_step(int64_t /*step*/) {}
};

// A world of one: every collective is an identity (a copy where input and output differ).
std::unique_ptr<Communicator> make_single_process_communicator();

}  // namespace moda
