#!/usr/bin/env bash
# Sets up, checks and tests everything that needs no GPU (CI runs this through .ci/run):
#   1. packages (tools/setup.sh)
#   2. formatting: every tracked C++/CUDA file against .clang-format, with Debian's clang-format
#   3. build/ (warnings as errors) and the `cpu` tests
#   4. build-asan/: the CPU build under AddressSanitizer + UndefinedBehaviorSanitizer (CUDA off)
#      and the full `cpu` test set under it
# Each stage prints its wall time. On a GPU machine, `ctest --test-dir build -L gpu` runs the
# CPU-vs-CUDA tests as well. Skip the sanitizer stage with MODA_TEST_SANITIZE=0.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)
timings=()

stage() {  # stage NAME COMMAND...: runs COMMAND, records how long it took
  local name=$1 start=$SECONDS
  shift
  echo "=== $name"
  "$@"
  timings+=("$(printf '%-28s %4d s' "$name" $((SECONDS - start)))")
}

check_format() {
  local files offenders=()
  if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    mapfile -t files < <(git ls-files '*.cpp' '*.h' '*.cu' '*.cuh')
  else
    mapfile -t files < <(find core kernels autograd nn data distributed apps tests cmake \
      -name '*.cpp' -o -name '*.h' -o -name '*.cu' -o -name '*.cuh')
  fi
  # One clang-format run; each offending file shows up as "FILE:LINE:COL: error: ...".
  local out
  if ! out=$(clang-format --dry-run --Werror "${files[@]}" 2>&1); then
    mapfile -t offenders < <(sed -n 's/^\([^:]*\):[0-9]*:[0-9]*: error: .*/\1/p' <<<"$out" | sort -u)
    echo "these files do not follow .clang-format ($(clang-format --version)):"
    printf '  %s\n' "${offenders[@]}"
    [ ${#offenders[@]} -gt 0 ] || head -20 <<<"$out"
    echo "fix with: clang-format -i ${offenders[*]}"
    return 1
  fi
  echo "${#files[@]} files formatted"
}

run_sanitized_tests() {
  # No MODA_WERROR here: GCC 12 warns falsely (-Wmaybe-uninitialized in <regex>) under -fsanitize;
  # the build stage above is the warnings gate.
  # -O1 -g1 (line tables only): half the compile time of RelWithDebInfo's -O2 -g on CI's 2 cores
  # (22-28 s vs 8-13 s for one test file), and still file:line in every sanitizer stack trace.
  cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1" \
    -DMODA_SANITIZE=address,undefined -DMODA_WERROR=OFF ${MODA_CMAKE_ARGS:-} > build-asan.configure.log 2>&1 || { cat build-asan.configure.log; exit 1; }
  cmake --build build-asan -j "$jobs"
  ASAN_OPTIONS=halt_on_error=1:abort_on_error=0:detect_leaks=1:print_stacktrace=1 \
  UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    ctest --test-dir build-asan -L cpu --output-on-failure -j "$jobs"
}

stage "setup (packages)" bash tools/setup.sh
stage "format check" check_format
stage "build" env MODA_CMAKE_ARGS="-DMODA_WERROR=ON ${MODA_CMAKE_ARGS:-}" bash tools/build.sh
stage "cpu tests" ctest --test-dir build -L cpu --output-on-failure -j "$jobs"
if [ "${MODA_TEST_SANITIZE:-1}" != 0 ]; then
  stage "asan+ubsan build and tests" run_sanitized_tests
fi
echo "=== stage times ($jobs cores)"
printf '%s\n' "${timings[@]}"
