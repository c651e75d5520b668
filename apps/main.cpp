// The `moda` program: dispatches to the subcommands registered in apps/cmd_*.cpp.
// Streams: results (decoded text, tables, --json) go to stdout; logs and errors go to stderr, so
// `moda ... > out` captures only data. Exit statuses: apps/exit_codes.h.
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdio>
#include <exception>
#include <memory>
#include <string>
#include <vector>

#include "apps/command.h"
#include "apps/exit_codes.h"

namespace moda::app {

std::vector<Command>& command_registry() {
  static std::vector<Command> commands;
  return commands;
}

namespace {

bool is_help(const std::string& a) { return a == "--help" || a == "-h"; }

// Commands whose name starts with `prefix` ("" for all, "tokenize" for its three), sorted.
std::vector<const Command*> commands_under(const std::string& prefix) {
  std::vector<const Command*> out;
  for (const auto& c : command_registry())
    if (prefix.empty() || c.name.rfind(prefix + " ", 0) == 0) out.push_back(&c);
  std::sort(out.begin(), out.end(), [](auto* a, auto* b) { return a->name < b->name; });
  return out;
}

void print_overview(std::FILE* to, const std::string& prefix) {
  std::fprintf(to, "usage: moda %s<command> [options]\n\ncommands:\n", prefix.empty() ? "" : (prefix + " ").c_str());
  int width = 18;  // the summaries start in one column, two spaces or more after every name
  for (const Command* c : commands_under(prefix)) width = std::max(width, static_cast<int>(c->name.size()) + 1);
  for (const Command* c : commands_under(prefix))
    std::fprintf(to, "  %-*s %s\n", width, c->name.c_str(), c->summary.c_str());
  std::fprintf(to,
               "\n'moda <command> --help' shows a command's options. Exit status: 0 success, 1 runtime error,\n"
               "2 usage error (unknown command or option, missing or malformed option value).\n");
}

void print_usage(const Command& c) {
  std::fputs(c.usage.c_str(), stdout);
  if (c.usage.empty() || c.usage.back() != '\n') std::fputc('\n', stdout);
}

// The registered command named by the first one or two words of `args` (two-word names win).
const Command* find_command(const std::vector<std::string>& args, size_t& words) {
  const Command* found = nullptr;
  for (const auto& c : command_registry()) {
    if (args.size() >= 2 && c.name == args[0] + " " + args[1]) {
      words = 2;
      return &c;
    }
    if (c.name == args[0]) found = &c, words = 1;
  }
  return found;
}

// Logs (spdlog's default logger) go to stderr; colours only when stderr is a terminal.
void log_to_stderr() {
  auto sink = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
  spdlog::set_default_logger(std::make_shared<spdlog::logger>("", sink));  // unnamed, like spdlog's own default
}

int dispatch(std::vector<std::string> args) {
  if (args.empty()) {
    print_overview(stderr, "");
    return kExitUsage;
  }
  if (is_help(args[0]) || args[0] == "help") {
    if (args.size() == 1 || args[0] != "help") {
      print_overview(stdout, "");
      return kExitOk;
    }
    args.erase(args.begin());  // `moda help train` is `moda train --help`
    args.push_back("--help");
  }
  size_t words = 0;
  const Command* cmd = find_command(args, words);
  if (!cmd) {
    // A group word alone (`moda tokenize`, `moda bench --help`) lists the group's commands.
    const bool group = !commands_under(args[0]).empty();
    if (group && (args.size() == 1 || is_help(args[1]))) {
      std::FILE* to = args.size() == 1 ? stderr : stdout;
      print_overview(to, args[0]);
      return args.size() == 1 ? kExitUsage : kExitOk;
    }
    const std::string name = group ? args[0] + " " + args[1] : args[0];
    std::fprintf(stderr, "moda: unknown command '%s'\n\n", name.c_str());
    print_overview(stderr, group ? args[0] : "");
    return kExitUsage;
  }
  const std::vector<std::string> rest(args.begin() + words, args.end());
  if (std::any_of(rest.begin(), rest.end(), is_help)) {
    print_usage(*cmd);
    return kExitOk;
  }
  try {
    return cmd->run(rest);
  } catch (const UsageError& e) {
    std::fprintf(stderr, "moda %s: %s\n(see 'moda %s --help')\n", cmd->name.c_str(), e.what(), cmd->name.c_str());
    return kExitUsage;
  } catch (const std::exception& e) {
    spdlog::error("moda {}: {}", cmd->name, e.what());
    return kExitFailure;
  }
}

}  // namespace
}  // namespace moda::app

int main(int argc, char** argv) {
  moda::app::log_to_stderr();
  return moda::app::dispatch(std::vector<std::string>(argv + 1, argv + argc));
}
