file(REMOVE_RECURSE
  "CMakeFiles/python_debug_test.dir/tests/python_debug_test.c.o"
  "CMakeFiles/python_debug_test.dir/tests/python_debug_test.c.o.d"
  "CMakeFiles/python_debug_test.dir/user/runtime/python/python_debug.c.o"
  "CMakeFiles/python_debug_test.dir/user/runtime/python/python_debug.c.o.d"
  "python_debug_test"
  "python_debug_test.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/python_debug_test.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
