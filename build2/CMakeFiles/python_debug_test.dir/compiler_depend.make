# Empty compiler generated dependencies file for python_debug_test.
# This may be replaced when dependencies are built.
