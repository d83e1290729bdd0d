#!/bin/sh
# Runs a docs test script (config_doc_test.py, paths_test.py) with the system
# python3 (3.11: tomllib).
exec python3 -B "$@"
