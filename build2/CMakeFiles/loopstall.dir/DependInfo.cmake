
# Consider dependencies only in project.
set(CMAKE_DEPENDS_IN_PROJECT_ONLY OFF)

# The set of languages for which implicit dependencies are needed:
set(CMAKE_DEPENDS_LANGUAGES
  )

# The set of dependency files which are needed:
set(CMAKE_DEPENDS_DEPENDENCY_FILES
  "/work/wt/cpython/user/cli.c" "CMakeFiles/loopstall.dir/user/cli.c.o" "gcc" "CMakeFiles/loopstall.dir/user/cli.c.o.d"
  "/work/wt/cpython/user/export.c" "CMakeFiles/loopstall.dir/user/export.c.o" "gcc" "CMakeFiles/loopstall.dir/user/export.c.o.d"
  "/work/wt/cpython/user/fleet.c" "CMakeFiles/loopstall.dir/user/fleet.c.o" "gcc" "CMakeFiles/loopstall.dir/user/fleet.c.o.d"
  "/work/wt/cpython/user/hints.c" "CMakeFiles/loopstall.dir/user/hints.c.o" "gcc" "CMakeFiles/loopstall.dir/user/hints.c.o.d"
  "/work/wt/cpython/user/hist.c" "CMakeFiles/loopstall.dir/user/hist.c.o" "gcc" "CMakeFiles/loopstall.dir/user/hist.c.o.d"
  "/work/wt/cpython/user/in_app.c" "CMakeFiles/loopstall.dir/user/in_app.c.o" "gcc" "CMakeFiles/loopstall.dir/user/in_app.c.o.d"
  "/work/wt/cpython/user/main.c" "CMakeFiles/loopstall.dir/user/main.c.o" "gcc" "CMakeFiles/loopstall.dir/user/main.c.o.d"
  "/work/wt/cpython/user/output.c" "CMakeFiles/loopstall.dir/user/output.c.o" "gcc" "CMakeFiles/loopstall.dir/user/output.c.o.d"
  "/work/wt/cpython/user/privileges.c" "CMakeFiles/loopstall.dir/user/privileges.c.o" "gcc" "CMakeFiles/loopstall.dir/user/privileges.c.o.d"
  "/work/wt/cpython/user/progress.c" "CMakeFiles/loopstall.dir/user/progress.c.o" "gcc" "CMakeFiles/loopstall.dir/user/progress.c.o.d"
  "/work/wt/cpython/user/runtime/node/jsmap.c" "CMakeFiles/loopstall.dir/user/runtime/node/jsmap.c.o" "gcc" "CMakeFiles/loopstall.dir/user/runtime/node/jsmap.c.o.d"
  "/work/wt/cpython/user/runtime/node/node_runtime.c" "CMakeFiles/loopstall.dir/user/runtime/node/node_runtime.c.o" "gcc" "CMakeFiles/loopstall.dir/user/runtime/node/node_runtime.c.o.d"
  "/work/wt/cpython/user/runtime/node/v8.c" "CMakeFiles/loopstall.dir/user/runtime/node/v8.c.o" "gcc" "CMakeFiles/loopstall.dir/user/runtime/node/v8.c.o.d"
  "/work/wt/cpython/user/runtime/node/v8heap.c" "CMakeFiles/loopstall.dir/user/runtime/node/v8heap.c.o" "gcc" "CMakeFiles/loopstall.dir/user/runtime/node/v8heap.c.o.d"
  "/work/wt/cpython/user/runtime/node/v8meta.c" "CMakeFiles/loopstall.dir/user/runtime/node/v8meta.c.o" "gcc" "CMakeFiles/loopstall.dir/user/runtime/node/v8meta.c.o.d"
  "/work/wt/cpython/user/runtime/python/linetable.c" "CMakeFiles/loopstall.dir/user/runtime/python/linetable.c.o" "gcc" "CMakeFiles/loopstall.dir/user/runtime/python/linetable.c.o.d"
  "/work/wt/cpython/user/runtime/python/pycode.c" "CMakeFiles/loopstall.dir/user/runtime/python/pycode.c.o" "gcc" "CMakeFiles/loopstall.dir/user/runtime/python/pycode.c.o.d"
  "/work/wt/cpython/user/runtime/python/python.c" "CMakeFiles/loopstall.dir/user/runtime/python/python.c.o" "gcc" "CMakeFiles/loopstall.dir/user/runtime/python/python.c.o.d"
  "/work/wt/cpython/user/runtime/python/python_debug.c" "CMakeFiles/loopstall.dir/user/runtime/python/python_debug.c.o" "gcc" "CMakeFiles/loopstall.dir/user/runtime/python/python_debug.c.o.d"
  "/work/wt/cpython/user/runtime/python/python_runtime.c" "CMakeFiles/loopstall.dir/user/runtime/python/python_runtime.c.o" "gcc" "CMakeFiles/loopstall.dir/user/runtime/python/python_runtime.c.o.d"
  "/work/wt/cpython/user/runtime/runtimes.c" "CMakeFiles/loopstall.dir/user/runtime/runtimes.c.o" "gcc" "CMakeFiles/loopstall.dir/user/runtime/runtimes.c.o.d"
  "/work/wt/cpython/user/sites.c" "CMakeFiles/loopstall.dir/user/sites.c.o" "gcc" "CMakeFiles/loopstall.dir/user/sites.c.o.d"
  "/work/wt/cpython/user/stall.c" "CMakeFiles/loopstall.dir/user/stall.c.o" "gcc" "CMakeFiles/loopstall.dir/user/stall.c.o.d"
  "/work/wt/cpython/user/symbolize.c" "CMakeFiles/loopstall.dir/user/symbolize.c.o" "gcc" "CMakeFiles/loopstall.dir/user/symbolize.c.o.d"
  "/work/wt/cpython/user/syscall_names.c" "CMakeFiles/loopstall.dir/user/syscall_names.c.o" "gcc" "CMakeFiles/loopstall.dir/user/syscall_names.c.o.d"
  "/work/wt/cpython/user/targetfs.c" "CMakeFiles/loopstall.dir/user/targetfs.c.o" "gcc" "CMakeFiles/loopstall.dir/user/targetfs.c.o.d"
  "/work/wt/cpython/user/targets.c" "CMakeFiles/loopstall.dir/user/targets.c.o" "gcc" "CMakeFiles/loopstall.dir/user/targets.c.o.d"
  )

# Targets to which this target links.
set(CMAKE_TARGET_LINKED_INFO_FILES
  )

# Fortran module output directory.
set(CMAKE_Fortran_TARGET_MODULE_DIR "")
