#pragma once
// Subcommand registry: each apps/cmd_*.cpp registers itself, so adding a command touches one file.
// Names may have two words ("bench ops"); the dispatcher prefers the two-word match. The usage text
// lives here, not in the command, so that `moda CMD --help` answers before any argument is parsed
// (a command that fails on a missing required option still explains itself).
#include <functional>
#include <string>
#include <vector>

namespace moda::app {

using CommandFn = std::function<int(const std::vector<std::string>& args)>;

struct Command {
  std::string name;     // "train", "bench ops"
  std::string summary;  // one line for `moda --help`
  std::string usage;    // full text for `moda NAME --help`: a "usage: moda NAME ..." line, then the options
  CommandFn run;        // receives the arguments after the name; returns the exit code
};

std::vector<Command>& command_registry();

struct RegisterCommand {
  RegisterCommand(std::string name, std::string summary, std::string usage, CommandFn fn) {
    command_registry().push_back({std::move(name), std::move(summary), std::move(usage), std::move(fn)});
  }
};

}  // namespace moda::app

#define MODA_CONCAT_INNER(a, b) a##b
#define MODA_CONCAT(a, b) MODA_CONCAT_INNER(a, b)
#define MODA_COMMAND(name, summary, usage, fn) \
  static ::moda::app::RegisterCommand MODA_CONCAT(moda_command_, __LINE__)(name, summary, usage, fn)
