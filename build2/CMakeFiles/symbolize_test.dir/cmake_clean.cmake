file(REMOVE_RECURSE
  "CMakeFiles/symbolize_test.dir/tests/symbolize_test.c.o"
  "CMakeFiles/symbolize_test.dir/tests/symbolize_test.c.o.d"
  "CMakeFiles/symbolize_test.dir/user/symbolize.c.o"
  "CMakeFiles/symbolize_test.dir/user/symbolize.c.o.d"
  "CMakeFiles/symbolize_test.dir/user/targetfs.c.o"
  "CMakeFiles/symbolize_test.dir/user/targetfs.c.o.d"
  "symbolize_test"
  "symbolize_test.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/symbolize_test.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
