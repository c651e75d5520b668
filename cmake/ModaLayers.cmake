# One static library per folder, linked only to the layers below it (docs/architecture.md,
# "Build layers"). Static libraries never fail on an undefined symbol, so each layer also gets a
# link check: a tiny program that links the WHOLE archive of the layer against nothing but the
# layers it declares. A call from a lower layer into a higher one (core -> nn, say) leaves an
# undefined reference there and the build stops. `moda` and the test programs depend on every
# check, so building any of them runs all checks.

include_guard(GLOBAL)

# moda_layer(<target> SOURCES <files...> [USES <lower layer targets...>])
function(moda_layer target)
  cmake_parse_arguments(arg "" "" "SOURCES;USES" ${ARGN})
  add_library(${target} STATIC ${arg_SOURCES})
  target_include_directories(${target} PUBLIC ${PROJECT_SOURCE_DIR})
  target_link_libraries(${target} PUBLIC ${arg_USES})
  moda_warnings(${target})
  if(MODA_CUDA)
    target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:CUDA>:--expt-relaxed-constexpr -lineinfo -Xptxas=-v>)
    set_target_properties(${target} PROPERTIES CUDA_SEPARABLE_COMPILATION OFF)
  endif()

  set(check ${target}_link_check)
  add_executable(${check} ${PROJECT_SOURCE_DIR}/cmake/link_check_main.cpp)
  target_link_libraries(${check} PRIVATE "$<LINK_LIBRARY:WHOLE_ARCHIVE,${target}>")
  set_property(GLOBAL APPEND PROPERTY MODA_LINK_CHECKS ${check})
endfunction()

# Makes <target> wait for every layer's link check (call after the last moda_layer).
function(moda_after_link_checks target)
  get_property(checks GLOBAL PROPERTY MODA_LINK_CHECKS)
  add_dependencies(${target} ${checks})
endfunction()
