#!/usr/bin/env python3
"""Every repository path named in the tree's comments and docs exists.

Scans the files git tracks (every file below the root when it is not a git
checkout) for paths that start with one of the repository's top folders
(`loader/src/datapath/tc.rs`, `bpf/lib/`, `test/README.md` ...) and fails
naming each that is neither a tracked file nor a folder. Placeholders
(`bpf/bpf_<family>.c`, `seeds/<target>/`, globs) are not paths and are
passed over; so are the outputs a command writes, listed in GENERATED.

    paths_test.py [ROOT]     ROOT: the checkout this file is in (its real path)
"""
import os
import re
import subprocess
import sys

TOP = ("loader", "bpf", "test", "docs", "tools", "cni", "api", "config", "fuzz", "deploy", "packaging", "third_party")
# Not in the tree on purpose: what a command writes.
GENERATED = {
    "docs/benchmark-quick.md": "written by `bazel run //tools/bench -- --quick`",
    "docs/benchmark-scale.md": "written by `bazel run //tools/bench -- --mode scale`",
    "docs/benchmark-runtime.md": "written by `bazel run //tools/bench -- --mode runtime`",
}
# A path starts after a character that cannot be part of a longer path or URL.
PATH = re.compile(r"(?<![\w./$-])((?:%s)/[\w./<>*{}$@%%-]*)" % "|".join(TOP))
PLACEHOLDER = re.compile(r"[<>*{}$@%]")


def tree_files(root):
    try:
        out = subprocess.run(["git", "-C", root, "ls-files", "-z"], capture_output=True, check=True).stdout
        return [f for f in out.decode().split("\0") if f]
    except (OSError, subprocess.CalledProcessError):
        files = []
        for d, subdirs, names in os.walk(root):
            subdirs[:] = [s for s in subdirs if not (s.startswith((".", "bazel-")) or s in ("target", "__pycache__"))]
            files += [os.path.relpath(os.path.join(d, n), root) for n in names]
        return files


def main(root):
    files = tree_files(root)
    known = set(files) | set(GENERATED)
    for f in files:
        parts = f.split("/")
        known.update("/".join(parts[:i]) for i in range(1, len(parts)))
    missing = []
    for f in files:
        try:
            with open(os.path.join(root, f), encoding="utf-8") as fh:
                lines = fh.read().split("\n")
        except (UnicodeDecodeError, OSError):
            continue  # binary, or a link to nothing
        for n, line in enumerate(lines, 1):
            for m in PATH.finditer(line):
                path = m.group(1)
                if PLACEHOLDER.search(path):
                    continue
                path = path.rstrip(".").rstrip("/")
                if path not in known:
                    missing.append(f"{f}:{n}: {path}")
    if not files:
        print(f"paths_test: no files found under {root}")
        return 1
    for m in missing:
        print(f"FAIL: {m} does not exist")
    print(f"{len(files)} files read, {len(missing)} paths that do not exist")
    return 1 if missing else 0


if __name__ == "__main__":
    here = os.path.dirname(os.path.realpath(__file__))
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(here)))
