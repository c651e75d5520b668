# Compiler warnings and sanitizers, shared by the libraries, `moda` and the tests.
#   MODA_WERROR=ON             warnings become errors (C++, and the host code of .cu files)
#   MODA_SANITIZE=address,undefined   CPU build under the given -fsanitize= list (CUDA is off)

include_guard(GLOBAL)

option(MODA_WERROR "Treat compiler warnings as errors" OFF)
set(MODA_SANITIZE "" CACHE STRING "Comma-separated -fsanitize= list for the CPU build, e.g. address,undefined")

# -Wno-unused-parameter: kernels and backward closures keep a uniform signature on purpose.
set(MODA_CXX_WARNINGS -Wall -Wextra -Wno-unused-parameter)

function(moda_warnings target)
  set(cxx ${MODA_CXX_WARNINGS})
  if(NOT MODA_CUDA)
    # A CPU-only build drops the CUDA branch of each dispatch (MODA_IF_CUDA expands to nothing),
    # leaving that branch's `using T = decltype(t);` unused.
    list(APPEND cxx -Wno-unused-local-typedefs)
  endif()
  list(JOIN MODA_CXX_WARNINGS "," host)
  set(cuda -Xcompiler=${host})
  if(MODA_WERROR)
    list(APPEND cxx -Werror)
    # nvcc's own diagnostics and the host compiler's both stop the build.
    list(APPEND cuda -Xcompiler=-Werror --Werror=all-warnings)
  endif()
  target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:CXX>:${cxx}> $<$<COMPILE_LANGUAGE:CUDA>:${cuda}>)
endfunction()

if(MODA_SANITIZE)
  set(MODA_SANITIZE_FLAGS -fsanitize=${MODA_SANITIZE} -fno-sanitize-recover=all -fno-omit-frame-pointer)
  # No $<COMPILE_LANGUAGE:CXX> filter: a sanitized build has no CUDA (root CMakeLists.txt), and
  # add_compile_options would split the generator expression at the list separators.
  add_compile_options(${MODA_SANITIZE_FLAGS})
  add_link_options(-fsanitize=${MODA_SANITIZE})
  message(STATUS "moda: sanitizers ${MODA_SANITIZE}")
endif()
