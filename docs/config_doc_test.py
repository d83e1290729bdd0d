#!/usr/bin/env python3
"""//docs:config_doc_test: docs/configuration.md against config/default.toml.

Every key of default.toml must have a row `| `section.key` | default | ... |`
in the reference table with its default value, and every row must name a key
default.toml has. Usage: config_doc_test.py DEFAULT_TOML CONFIGURATION_MD
"""
import json
import re
import sys
import tomllib


def keys(table, prefix=""):
    for name, value in table.items():
        if isinstance(value, dict):
            yield from keys(value, f"{prefix}{name}.")
        else:
            yield f"{prefix}{name}", value


def spellings(value):
    """How a default may be written in the table (backticks stripped)."""
    if isinstance(value, bool):
        return {"true" if value else "false"}
    if isinstance(value, (int, float)):
        return {str(value)}
    if isinstance(value, str):
        return {'""'} if value == "" else {f'"{value}"', value}
    return {json.dumps(value), json.dumps(value, separators=(",", ":"))}


def main(toml_path, md_path):
    with open(toml_path, "rb") as f:
        defaults = dict(keys(tomllib.load(f)))
    rows = {}
    row = re.compile(r"^\|\s*`([a-z0-9_]+\.[a-z0-9_]+)`\s*\|\s*([^|]*?)\s*\|")
    with open(md_path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            m = row.match(line)
            if m:
                if m.group(1) in rows:
                    print(f"{md_path}:{n}: {m.group(1)} documented twice")
                    return 1
                rows[m.group(1)] = (n, m.group(2).replace("`", "").strip())
    errors = []
    for key, value in defaults.items():
        if key not in rows:
            errors.append(f"{key} (default {json.dumps(value)}) is in {toml_path} but not documented in {md_path}")
        elif rows[key][1] not in spellings(value):
            errors.append(f"{md_path}:{rows[key][0]}: {key}: documented default {rows[key][1]!r}, "
                          f"{toml_path} says {json.dumps(value)}")
    for key, (n, _) in rows.items():
        if key not in defaults:
            errors.append(f"{md_path}:{n}: {key} is documented but {toml_path} has no such key")
    for e in errors:
        print("FAIL: " + e)
    if not errors:
        print(f"ok: {len(defaults)} keys of {toml_path}, each documented with its default in {md_path}")
    return 1 if errors else 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1], sys.argv[2]))
