# Empty dependencies file for symbolize_test.
# This may be replaced when dependencies are built.
