file(REMOVE_RECURSE
  "CMakeFiles/loopstall.dir/user/cli.c.o"
  "CMakeFiles/loopstall.dir/user/cli.c.o.d"
  "CMakeFiles/loopstall.dir/user/hist.c.o"
  "CMakeFiles/loopstall.dir/user/hist.c.o.d"
  "CMakeFiles/loopstall.dir/user/main.c.o"
  "CMakeFiles/loopstall.dir/user/main.c.o.d"
  "CMakeFiles/loopstall.dir/user/output.c.o"
  "CMakeFiles/loopstall.dir/user/output.c.o.d"
  "CMakeFiles/loopstall.dir/user/progress.c.o"
  "CMakeFiles/loopstall.dir/user/progress.c.o.d"
  "CMakeFiles/loopstall.dir/user/stall.c.o"
  "CMakeFiles/loopstall.dir/user/stall.c.o.d"
  "CMakeFiles/loopstall.dir/user/symbolize.c.o"
  "CMakeFiles/loopstall.dir/user/symbolize.c.o.d"
  "CMakeFiles/loopstall.dir/user/syscall_names.c.o"
  "CMakeFiles/loopstall.dir/user/syscall_names.c.o.d"
  "CMakeFiles/loopstall.dir/user/targets.c.o"
  "CMakeFiles/loopstall.dir/user/targets.c.o.d"
  "loopstall"
  "loopstall.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/loopstall.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
