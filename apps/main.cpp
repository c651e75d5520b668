// The `moda` program: dispatches to the subcommands registered in apps/cmd_*.cpp.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdio>
#include <exception>

#include "apps/command.h"

namespace moda::app {
std::vector<Command>& command_registry() {
  static std::vector<Command> commands;
  return commands;
}
}  // namespace moda::app

static void print_usage() {
  auto commands = moda::app::command_registry();
  std::sort(commands.begin(), commands.end(), [](auto& a, auto& b) { return a.name < b.name; });
  std::printf("usage: moda <command> [options]\n\ncommands:\n");
  for (const auto& c : commands) std::printf("  %-18s %s\n", c.name.c_str(), c.summary.c_str());
}

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    print_usage();
    return args.empty() ? 2 : 0;
  }
  const moda::app::Command* found = nullptr;
  size_t words = 0;
  for (const auto& c : moda::app::command_registry()) {
    if (args.size() >= 2 && c.name == args[0] + " " + args[1]) {
      found = &c, words = 2;
      break;
    }
    if (c.name == args[0] && words < 1) found = &c, words = 1;
  }
  if (!found) {
    std::fprintf(stderr, "moda: unknown command '%s'\n\n", args[0].c_str());
    print_usage();
    return 2;
  }
  try {
    return found->run(std::vector<std::string>(args.begin() + words, args.end()));
  } catch (const std::exception& e) {
    spdlog::error("{}", e.what());
    return 1;
  }
}
