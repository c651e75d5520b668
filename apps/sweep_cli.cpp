#include "apps/sweep_cli.h"

#include "apps/exit_codes.h"

namespace moda::app {

std::string take_manifest_argument(std::vector<std::string>& argv) {
  MODA_USAGE_CHECK(!argv.empty() && argv.front().rfind("--", 0) != 0, "missing MANIFEST (the sweep's JSON file), ",
                   "expected as the first argument");
  std::string manifest = argv.front();
  argv.erase(argv.begin());
  return manifest;
}

}  // namespace moda::app
