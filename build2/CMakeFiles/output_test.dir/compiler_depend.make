# Empty compiler generated dependencies file for output_test.
# This may be replaced when dependencies are built.
