#!/bin/sh
# Stand-in for Bazel's downloaded coverage tools (see third_party/README.md).
echo "meshwire: no coverage report tools offline (third_party/remote_coverage_tools is a stub)" >&2
exit 1
