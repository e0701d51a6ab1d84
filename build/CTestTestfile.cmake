# CMake generated Testfile for 
# Source directory: /work/main
# Build directory: /work/main/build
# 
# This file includes the relevant testing commands required for 
# testing this directory and lists subdirectories to be tested as well.
add_test(symbolize "/work/main/build/symbolize_test")
set_tests_properties(symbolize PROPERTIES  SKIP_RETURN_CODE "77" _BACKTRACE_TRIPLES "/work/main/CMakeLists.txt;67;add_test;/work/main/CMakeLists.txt;0;")
add_test(end_to_end "/usr/bin/python3" "-m" "pytest" "-v" "/work/main/tests")
set_tests_properties(end_to_end PROPERTIES  ENVIRONMENT "LOOPSTALL=/work/main/build/loopstall" TIMEOUT "3000" WORKING_DIRECTORY "/work/main" _BACKTRACE_TRIPLES "/work/main/CMakeLists.txt;70;add_test;/work/main/CMakeLists.txt;0;")
