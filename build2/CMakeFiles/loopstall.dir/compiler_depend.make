# Empty compiler generated dependencies file for loopstall.
# This may be replaced when dependencies are built.
