# Empty compiler generated dependencies file for targetfs_test.
# This may be replaced when dependencies are built.
