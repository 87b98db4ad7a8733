# The sanitizer build's test fixture (SLIM_SANITIZE, `make test-asan`): the sanitizers write each
# report to DIR/report.<pid>. MODE=reset empties DIR before the suites run; MODE=check, run after
# them, fails and prints every report, including those of `slim` runs whose failure a test
# expected.
# Usage: cmake -DDIR=build-asan/sanitizer_reports -DMODE=reset|check -P reports.cmake
cmake_policy(VERSION 3.18)
if(MODE STREQUAL "reset")
  file(REMOVE_RECURSE ${DIR})
  file(MAKE_DIRECTORY ${DIR})
elseif(MODE STREQUAL "check")
  file(GLOB reports ${DIR}/report.*)
  if(reports)
    foreach(f ${reports})
      message(NOTICE "==== ${f}")
      # Copied through as written: message() would re-wrap the stack traces.
      execute_process(COMMAND ${CMAKE_COMMAND} -E cat ${f})
    endforeach()
    list(LENGTH reports n)
    message(FATAL_ERROR "${n} sanitizer report(s) in ${DIR}, printed above")
  endif()
  message(STATUS "no sanitizer reports in ${DIR}")
else()
  message(FATAL_ERROR "MODE must be reset or check, not '${MODE}'")
endif()
