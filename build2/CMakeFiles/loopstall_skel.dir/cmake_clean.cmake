file(REMOVE_RECURSE
  "CMakeFiles/loopstall_skel"
  "loopstall.bpf.o"
  "loopstall.skel.h"
)

# Per-language clean rules from dependency scanning.
foreach(lang )
  include(CMakeFiles/loopstall_skel.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
