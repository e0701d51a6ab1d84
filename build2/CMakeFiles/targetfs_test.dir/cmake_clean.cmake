file(REMOVE_RECURSE
  "CMakeFiles/targetfs_test.dir/tests/targetfs_test.c.o"
  "CMakeFiles/targetfs_test.dir/tests/targetfs_test.c.o.d"
  "CMakeFiles/targetfs_test.dir/user/targetfs.c.o"
  "CMakeFiles/targetfs_test.dir/user/targetfs.c.o.d"
  "targetfs_test"
  "targetfs_test.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/targetfs_test.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
