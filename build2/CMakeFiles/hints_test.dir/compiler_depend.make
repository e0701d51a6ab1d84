# Empty compiler generated dependencies file for hints_test.
# This may be replaced when dependencies are built.
