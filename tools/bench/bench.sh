#!/bin/sh
# //tools/bench: runs bench.py (next to this script in the source tree) with
# python3; `bazel run` passes the loader and mwtest built by Bazel.
exec python3 -B "$(dirname "$(readlink -f "$0")")/bench.py" "$@"
