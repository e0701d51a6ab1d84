# Empty custom commands generated dependencies file for loopstall_skel.
# This may be replaced when dependencies are built.
