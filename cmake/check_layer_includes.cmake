# Header-level half of the layer check (the link checks in ModaLayers.cmake catch calls; this
# catches a header-only dependency, which never reaches the linker). Run as a CTest test:
#   cmake -DMODA_SOURCE_DIR=<repo> -P cmake/check_layer_includes.cmake
# Fails listing every `#include "<folder>/..."` that points at a folder the including layer may
# not use (docs/architecture.md, "Build layers").

cmake_minimum_required(VERSION 3.24)

set(allowed_core core)
set(allowed_kernels core kernels)
set(allowed_autograd core kernels autograd)
set(allowed_nn core kernels autograd nn)
set(allowed_data core data)
set(allowed_distributed core kernels autograd nn data distributed)
set(allowed_sweep core kernels autograd nn data distributed sweep)
set(layers core kernels autograd nn data distributed sweep apps tests)

set(offenders "")
foreach(layer core kernels autograd nn data distributed sweep)
  file(GLOB_RECURSE files "${MODA_SOURCE_DIR}/${layer}/*.h" "${MODA_SOURCE_DIR}/${layer}/*.cuh"
       "${MODA_SOURCE_DIR}/${layer}/*.cpp" "${MODA_SOURCE_DIR}/${layer}/*.cu")
  foreach(file ${files})
    file(STRINGS "${file}" includes REGEX "^[ \t]*#[ \t]*include[ \t]*\"[a-z_]+/")
    foreach(line ${includes})
      string(REGEX REPLACE "^[^\"]*\"([a-z_]+)/.*$" "\\1" folder "${line}")
      if(folder IN_LIST layers AND NOT folder IN_LIST allowed_${layer})
        file(RELATIVE_PATH rel "${MODA_SOURCE_DIR}" "${file}")
        string(APPEND offenders "  ${rel}: ${line}  (${layer}/ may use: ${allowed_${layer}})\n")
      endif()
    endforeach()
  endforeach()
endforeach()

if(offenders)
  message(FATAL_ERROR "wrong-way includes (a layer may use only the layers below it):\n${offenders}")
endif()
message(STATUS "layer includes ok")
