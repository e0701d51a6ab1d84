CMakeFiles/loopstall.dir/user/syscall_names.c.o: \
 /work/main/user/syscall_names.c /usr/include/stdc-predef.h \
 /usr/lib/gcc/x86_64-linux-gnu/12/include/stddef.h \
 /work/main/user/syscall_names.h
