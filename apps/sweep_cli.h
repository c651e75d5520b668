#pragma once
// What the three `moda sweep` commands share on the command line: the manifest is the one
// positional argument (`moda sweep run MANIFEST --parallel 2`), the options follow.
#include <string>
#include <vector>

namespace moda::app {

// Removes and returns the first argument that does not start with "--"; a usage error when there
// is none or more than one.
std::string take_manifest_argument(std::vector<std::string>& argv);

}  // namespace moda::app
