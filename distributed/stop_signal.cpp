#include "distributed/stop_signal.h"

#include <unistd.h>

#include <cstring>

#include "core/error.h"

namespace moda {
namespace {

volatile std::sig_atomic_t g_first_signal = 0;

void on_signal(int sig) {
  if (g_first_signal != 0) {
    // Second signal: leave now. Only async-signal-safe calls here.
    static const char msg[] = "\nsecond signal: exiting without saving\n";
    ssize_t ignored = ::write(STDERR_FILENO, msg, sizeof msg - 1);
    (void)ignored;
    ::_exit(128 + sig);
  }
  g_first_signal = sig;
  static const char msg[] = "\nsignal received: finishing this step, then saving a checkpoint (again to exit now)\n";
  ssize_t ignored = ::write(STDERR_FILENO, msg, sizeof msg - 1);
  (void)ignored;
}

}  // namespace

StopSignals::StopSignals() {
  g_first_signal = 0;
  struct sigaction sa;
  std::memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  MODA_CHECK(sigaction(SIGINT, &sa, &old_int_) == 0 && sigaction(SIGTERM, &sa, &old_term_) == 0,
             "cannot install the SIGINT/SIGTERM handlers");
}

StopSignals::~StopSignals() {
  sigaction(SIGINT, &old_int_, nullptr);
  sigaction(SIGTERM, &old_term_, nullptr);
  g_first_signal = 0;
}

bool StopSignals::requested() { return g_first_signal != 0; }
int StopSignals::signal_number() { return g_first_signal; }

}  // namespace moda
