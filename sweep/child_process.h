#pragma once
// Child processes of a sweep: started with posix_spawnp (safe in a process with threads), stdin
// from /dev/null, stdout and stderr appended to a log file, each in its own process group so that
// a Ctrl-C at the terminal reaches only the sweep, which then passes exactly one SIGTERM on (a
// second signal would make `moda train` exit without its checkpoint).
#include <sys/types.h>

#include <string>
#include <vector>

namespace moda::sweep {

// Starts argv[0] (searched in PATH when it has no '/'); throws naming the program on failure.
pid_t spawn_logged(const std::vector<std::string>& argv, const std::string& log_path);

struct Exited {
  pid_t pid = 0;  // 0: no child has ended
  int code = 0;   // exit status, or 128 + signal
};
// A child that has ended, without blocking.
Exited poll_any_child();
// Waits for child `pid` to end; its exit status, or 128 + signal.
int wait_child(pid_t pid);

// The path of the running program (/proc/self/exe resolved, so a launcher can exec it too).
std::string self_executable();

// SIGINT / SIGTERM handlers that only record the signal (the caller polls stop_requested()).
void install_stop_handlers();
int stop_requested();  // the last signal number, 0 when none arrived
int stop_count();      // how many arrived

}  // namespace moda::sweep
