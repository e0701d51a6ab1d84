
# Consider dependencies only in project.
set(CMAKE_DEPENDS_IN_PROJECT_ONLY OFF)

# The set of languages for which implicit dependencies are needed:
set(CMAKE_DEPENDS_LANGUAGES
  )

# The set of dependency files which are needed:
set(CMAKE_DEPENDS_DEPENDENCY_FILES
  "/work/wt/cpython/tests/hints_test.c" "CMakeFiles/hints_test.dir/tests/hints_test.c.o" "gcc" "CMakeFiles/hints_test.dir/tests/hints_test.c.o.d"
  "/work/wt/cpython/user/hints.c" "CMakeFiles/hints_test.dir/user/hints.c.o" "gcc" "CMakeFiles/hints_test.dir/user/hints.c.o.d"
  )

# Targets to which this target links.
set(CMAKE_TARGET_LINKED_INFO_FILES
  )

# Fortran module output directory.
set(CMAKE_Fortran_TARGET_MODULE_DIR "")
