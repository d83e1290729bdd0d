#!/bin/sh
# Runs config_doc_test.py with the system python3 (3.11: tomllib).
exec python3 "$@"
