
# Consider dependencies only in project.
set(CMAKE_DEPENDS_IN_PROJECT_ONLY OFF)

# The set of languages for which implicit dependencies are needed:
set(CMAKE_DEPENDS_LANGUAGES
  )

# The set of dependency files which are needed:
set(CMAKE_DEPENDS_DEPENDENCY_FILES
  "/work/main/user/cli.c" "CMakeFiles/loopstall.dir/user/cli.c.o" "gcc" "CMakeFiles/loopstall.dir/user/cli.c.o.d"
  "/work/main/user/hist.c" "CMakeFiles/loopstall.dir/user/hist.c.o" "gcc" "CMakeFiles/loopstall.dir/user/hist.c.o.d"
  "/work/main/user/main.c" "CMakeFiles/loopstall.dir/user/main.c.o" "gcc" "CMakeFiles/loopstall.dir/user/main.c.o.d"
  "/work/main/user/output.c" "CMakeFiles/loopstall.dir/user/output.c.o" "gcc" "CMakeFiles/loopstall.dir/user/output.c.o.d"
  "/work/main/user/progress.c" "CMakeFiles/loopstall.dir/user/progress.c.o" "gcc" "CMakeFiles/loopstall.dir/user/progress.c.o.d"
  "/work/main/user/stall.c" "CMakeFiles/loopstall.dir/user/stall.c.o" "gcc" "CMakeFiles/loopstall.dir/user/stall.c.o.d"
  "/work/main/user/symbolize.c" "CMakeFiles/loopstall.dir/user/symbolize.c.o" "gcc" "CMakeFiles/loopstall.dir/user/symbolize.c.o.d"
  "/work/main/user/syscall_names.c" "CMakeFiles/loopstall.dir/user/syscall_names.c.o" "gcc" "CMakeFiles/loopstall.dir/user/syscall_names.c.o.d"
  "/work/main/user/targets.c" "CMakeFiles/loopstall.dir/user/targets.c.o" "gcc" "CMakeFiles/loopstall.dir/user/targets.c.o.d"
  )

# Targets to which this target links.
set(CMAKE_TARGET_LINKED_INFO_FILES
  )

# Fortran module output directory.
set(CMAKE_Fortran_TARGET_MODULE_DIR "")
