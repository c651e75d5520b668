# Test case names CTest can run. catch_discover_tests turns each Catch2 TEST_CASE into a CTest
# entry whose name is also the filter passed back to the binary; a ';' splits it (a CMake list)
# and a backslash is read as an escape, so such an entry runs nothing and fails with "No test
# cases matched" (--warn NoTests), which does not say why. This check names the test case instead.
# Run as a CTest test:
#   cmake -DMODA_SOURCE_DIR=<repo> -P cmake/check_test_names.cmake

cmake_minimum_required(VERSION 3.24)

file(GLOB files "${MODA_SOURCE_DIR}/tests/cpu/*.cpp" "${MODA_SOURCE_DIR}/tests/gpu/*.cpp")
set(offenders "")
foreach(file ${files})
  file(STRINGS "${file}" lines REGEX "TEST_CASE\\(\"")
  foreach(line IN LISTS lines)
    if(line MATCHES "TEST_CASE\\(\"[^\"]*[;\\]")
      file(RELATIVE_PATH rel "${MODA_SOURCE_DIR}" "${file}")
      string(STRIP "${line}" line)
      list(APPEND offenders "  ${rel}: ${line}")
    endif()
  endforeach()
endforeach()

if(offenders)
  list(JOIN offenders "\n" text)
  message(FATAL_ERROR "test case names with ';' or a backslash (CTest cannot run them; rename):\n${text}")
endif()
