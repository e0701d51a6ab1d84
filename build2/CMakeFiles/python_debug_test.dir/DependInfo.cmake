
# Consider dependencies only in project.
set(CMAKE_DEPENDS_IN_PROJECT_ONLY OFF)

# The set of languages for which implicit dependencies are needed:
set(CMAKE_DEPENDS_LANGUAGES
  )

# The set of dependency files which are needed:
set(CMAKE_DEPENDS_DEPENDENCY_FILES
  "/work/wt/cpython/tests/python_debug_test.c" "CMakeFiles/python_debug_test.dir/tests/python_debug_test.c.o" "gcc" "CMakeFiles/python_debug_test.dir/tests/python_debug_test.c.o.d"
  "/work/wt/cpython/user/runtime/python/python_debug.c" "CMakeFiles/python_debug_test.dir/user/runtime/python/python_debug.c.o" "gcc" "CMakeFiles/python_debug_test.dir/user/runtime/python/python_debug.c.o.d"
  )

# Targets to which this target links.
set(CMAKE_TARGET_LINKED_INFO_FILES
  )

# Fortran module output directory.
set(CMAKE_Fortran_TARGET_MODULE_DIR "")
