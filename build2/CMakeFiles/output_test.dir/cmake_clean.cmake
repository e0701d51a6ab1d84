file(REMOVE_RECURSE
  "CMakeFiles/output_test.dir/tests/output_test.c.o"
  "CMakeFiles/output_test.dir/tests/output_test.c.o.d"
  "CMakeFiles/output_test.dir/user/hist.c.o"
  "CMakeFiles/output_test.dir/user/hist.c.o.d"
  "CMakeFiles/output_test.dir/user/output.c.o"
  "CMakeFiles/output_test.dir/user/output.c.o.d"
  "CMakeFiles/output_test.dir/user/sites.c.o"
  "CMakeFiles/output_test.dir/user/sites.c.o.d"
  "CMakeFiles/output_test.dir/user/syscall_names.c.o"
  "CMakeFiles/output_test.dir/user/syscall_names.c.o.d"
  "output_test"
  "output_test.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/output_test.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
