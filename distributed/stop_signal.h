#pragma once
// Graceful stop on SIGINT / SIGTERM (Ctrl-C, Slurm preemption). While a StopSignals object lives,
// the first signal only sets a flag: the trainer finishes the step it is in, writes a checkpoint
// and returns normally (exit status 0). A second signal ends the process at once with status
// 128 + signal, as the default action would. The previous handlers come back on destruction.
#include <csignal>

namespace moda {

class StopSignals {
 public:
  StopSignals();
  ~StopSignals();
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;

  static bool requested();
  static int signal_number();  // the first signal received; 0 if none

 private:
  struct sigaction old_int_ {
  }, old_term_{};
};

}  // namespace moda
