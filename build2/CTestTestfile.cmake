# CMake generated Testfile for 
# Source directory: /work/wt/cpython
# Build directory: /work/wt/cpython/build2
# 
# This file includes the relevant testing commands required for 
# testing this directory and lists subdirectories to be tested as well.
add_test(symbolize "/work/wt/cpython/build2/symbolize_test")
set_tests_properties(symbolize PROPERTIES  SKIP_RETURN_CODE "77" _BACKTRACE_TRIPLES "/work/wt/cpython/CMakeLists.txt;73;add_test;/work/wt/cpython/CMakeLists.txt;0;")
add_test(python_debug "/work/wt/cpython/build2/python_debug_test")
set_tests_properties(python_debug PROPERTIES  SKIP_RETURN_CODE "77" _BACKTRACE_TRIPLES "/work/wt/cpython/CMakeLists.txt;81;add_test;/work/wt/cpython/CMakeLists.txt;0;")
add_test(hints "/work/wt/cpython/build2/hints_test" "/work/wt/cpython/docs/hints.md")
set_tests_properties(hints PROPERTIES  _BACKTRACE_TRIPLES "/work/wt/cpython/CMakeLists.txt;87;add_test;/work/wt/cpython/CMakeLists.txt;0;")
add_test(targetfs "/work/wt/cpython/build2/targetfs_test")
set_tests_properties(targetfs PROPERTIES  SKIP_RETURN_CODE "77" _BACKTRACE_TRIPLES "/work/wt/cpython/CMakeLists.txt;94;add_test;/work/wt/cpython/CMakeLists.txt;0;")
add_test(output "/work/wt/cpython/build2/output_test")
set_tests_properties(output PROPERTIES  _BACKTRACE_TRIPLES "/work/wt/cpython/CMakeLists.txt;103;add_test;/work/wt/cpython/CMakeLists.txt;0;")
add_test(fuzz "/work/wt/cpython/tests/fuzz/run" "20")
set_tests_properties(fuzz PROPERTIES  _BACKTRACE_TRIPLES "/work/wt/cpython/CMakeLists.txt;105;add_test;/work/wt/cpython/CMakeLists.txt;0;")
add_test(valgrind "/work/wt/cpython/tools/valgrind-check" "/work/wt/cpython/build2/loopstall")
set_tests_properties(valgrind PROPERTIES  ENVIRONMENT "VALGRIND_CHECK_DIR=/work/wt/cpython/build2/valgrind-check" SKIP_RETURN_CODE "77" TIMEOUT "900" _BACKTRACE_TRIPLES "/work/wt/cpython/CMakeLists.txt;109;add_test;/work/wt/cpython/CMakeLists.txt;0;")
add_test(end_to_end "/usr/bin/python3" "-m" "pytest" "-v" "/work/wt/cpython/tests")
set_tests_properties(end_to_end PROPERTIES  ENVIRONMENT "LOOPSTALL=/work/wt/cpython/build2/loopstall" TIMEOUT "3000" WORKING_DIRECTORY "/work/wt/cpython" _BACKTRACE_TRIPLES "/work/wt/cpython/CMakeLists.txt;113;add_test;/work/wt/cpython/CMakeLists.txt;0;")
