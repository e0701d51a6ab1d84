
# Consider dependencies only in project.
set(CMAKE_DEPENDS_IN_PROJECT_ONLY OFF)

# The set of languages for which implicit dependencies are needed:
set(CMAKE_DEPENDS_LANGUAGES
  )

# The set of dependency files which are needed:
set(CMAKE_DEPENDS_DEPENDENCY_FILES
  "/work/wt/cpython/tests/output_test.c" "CMakeFiles/output_test.dir/tests/output_test.c.o" "gcc" "CMakeFiles/output_test.dir/tests/output_test.c.o.d"
  "/work/wt/cpython/user/hist.c" "CMakeFiles/output_test.dir/user/hist.c.o" "gcc" "CMakeFiles/output_test.dir/user/hist.c.o.d"
  "/work/wt/cpython/user/output.c" "CMakeFiles/output_test.dir/user/output.c.o" "gcc" "CMakeFiles/output_test.dir/user/output.c.o.d"
  "/work/wt/cpython/user/sites.c" "CMakeFiles/output_test.dir/user/sites.c.o" "gcc" "CMakeFiles/output_test.dir/user/sites.c.o.d"
  "/work/wt/cpython/user/syscall_names.c" "CMakeFiles/output_test.dir/user/syscall_names.c.o" "gcc" "CMakeFiles/output_test.dir/user/syscall_names.c.o.d"
  )

# Targets to which this target links.
set(CMAKE_TARGET_LINKED_INFO_FILES
  )

# Fortran module output directory.
set(CMAKE_Fortran_TARGET_MODULE_DIR "")
