file(REMOVE_RECURSE
  "CMakeFiles/hints_test.dir/tests/hints_test.c.o"
  "CMakeFiles/hints_test.dir/tests/hints_test.c.o.d"
  "CMakeFiles/hints_test.dir/user/hints.c.o"
  "CMakeFiles/hints_test.dir/user/hints.c.o.d"
  "hints_test"
  "hints_test.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/hints_test.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
