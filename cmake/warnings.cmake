# Warnings: the code stays warning-free, and CI proves it with HEADROOM_WERROR=ON (scripts/test.sh turns
# it on). A user's build does not fail on a new compiler's false positive (g++ 12's -Wrestrict in Release).
option(HEADROOM_WERROR "Treat warnings as errors (CI)" OFF)
function(hr_set_warnings target)
  target_compile_options(${target} PRIVATE
    $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -Wpedantic -Wno-missing-field-initializers>
    $<$<COMPILE_LANGUAGE:CUDA>:-lineinfo --expt-relaxed-constexpr>)
  # g++ 12 at -O3 reports impossible memcpy overlaps and bounds inside libstdc++'s inlined string and
  # vector code (`"literal" + std::string&&`, vector::insert of a byte range: GCC bugs 105329, 107852,
  # fixed in 13): both off for that compiler only, so that Release builds with -Werror too. The fuzzers
  # (address sanitizer) keep checking real bounds.
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU" AND CMAKE_CXX_COMPILER_VERSION VERSION_GREATER_EQUAL 12 AND
     CMAKE_CXX_COMPILER_VERSION VERSION_LESS 13)
    target_compile_options(${target} PRIVATE
      $<$<COMPILE_LANGUAGE:CXX>:-Wno-restrict -Wno-array-bounds>)
  endif()
  if(HEADROOM_WERROR)
    target_compile_options(${target} PRIVATE
      $<$<COMPILE_LANGUAGE:CXX>:-Werror>
      $<$<COMPILE_LANGUAGE:CUDA>:-Werror=all-warnings>)
  endif()
endfunction()
