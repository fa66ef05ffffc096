#!/usr/bin/env python3
"""The house rules that a compiler does not check, measured on the non-test Rust code.

- no function longer than MAX_FN_LINES lines (signature to closing brace, comments included);
- no function handler (`functions/*/src/lib.rs`, fn `handle`) longer than MAX_HANDLER_LINES;
- no `Result<_, String>` (an error is a type, never prose to parse).

Usage: scripts/shape.py [--report]   (--report lists every function over 60 lines too)
Exits 1, naming each place, when a rule is broken. Test code (`#[cfg(test)]` modules, tests/,
benches/) is not measured.
"""
import pathlib
import re
import sys

MAX_FN_LINES = 100
MAX_HANDLER_LINES = 80
ROOTS = ["src", "crates/engine/src", "crates/aws/src", "functions"]
FN = re.compile(r"^\s*(pub(\([^)]*\))?\s+)?(const\s+)?(async\s+)?(unsafe\s+)?fn\s+(\w+)")
STRING_ERROR = re.compile(r"Result<[^;{]*,\s*String\s*>")


def code_only(line, in_block):
    """The line without comments and string contents, so braces inside them are not counted."""
    out, i = [], 0
    while i < len(line):
        if in_block:
            end = line.find("*/", i)
            if end < 0:
                return "".join(out), True
            i, in_block = end + 2, False
            continue
        two = line[i : i + 2]
        if two == "//":
            break
        if two == "/*":
            in_block, i = True, i + 2
            continue
        c = line[i]
        if c == '"':
            j = i + 1
            while j < len(line) and line[j] != '"':
                j += 2 if line[j] == "\\" else 1
            out.append('""')
            i = j + 1
            continue
        if c == "'" and re.match(r"'(\\.|[^\\'])'", line[i:]):
            i += len(re.match(r"'(\\.|[^\\'])'", line[i:]).group(0))
            continue
        out.append(c)
        i += 1
    return "".join(out), in_block


def production_lines(path):
    """(number, raw, code) of each line outside `#[cfg(test)]` items."""
    lines = path.read_text().splitlines()
    result, in_block, skip_depth, depth, pending_test = [], False, None, 0, False
    for number, raw in enumerate(lines, 1):
        code, in_block = code_only(raw, in_block)
        if skip_depth is None and re.match(r"\s*#\[cfg\(test\)\]", raw):
            pending_test = True
        before = depth
        depth += code.count("{") - code.count("}")
        if pending_test and "{" in code:
            skip_depth, pending_test = before, False
        if skip_depth is not None:
            if depth <= skip_depth:
                skip_depth = None
            continue
        if pending_test and code.strip().endswith(";"):
            pending_test = False  # a `#[cfg(test)] mod tests;` or a test-only `use`
            continue
        result.append((number, raw, code))
    return result


def functions(lines):
    """(name, first line, length) of every function, nested ones included."""
    found = []
    for index, (number, raw, code) in enumerate(lines):
        match = FN.match(code)
        if not match:
            continue
        depth, opened = 0, False
        for end_number, _, later in lines[index:]:
            if not opened and ";" in later and "{" not in later:
                break  # a declaration without a body (trait method)
            depth += later.count("{") - later.count("}")
            opened = opened or "{" in later
            if opened and depth <= 0:
                found.append((match.group(6), number, end_number - number + 1))
                break
    return found


def main():
    report = "--report" in sys.argv
    root = pathlib.Path(__file__).resolve().parent.parent
    broken, long_ones, string_errors = [], [], []
    for base in ROOTS:
        for path in sorted((root / base).rglob("*.rs")):
            relative = path.relative_to(root)
            parts = relative.parts
            if "tests" in parts or "benches" in parts or path.name == "tests.rs":
                continue
            lines = production_lines(path)
            for name, start, length in functions(lines):
                handler = parts[0] == "functions" and path.name == "lib.rs" and name == "handle"
                limit = MAX_HANDLER_LINES if handler else MAX_FN_LINES
                if length > limit:
                    broken.append(f"{relative}:{start}: fn {name} is {length} lines (limit {limit})")
                if length > 60:
                    long_ones.append((length, f"{relative}:{start} {name}"))
            for number, raw, code in lines:
                if STRING_ERROR.search(raw):
                    string_errors.append(f"{relative}:{number}: {raw.strip()}")
    if report:
        print("functions over 60 lines:")
        for length, where in sorted(long_ones, reverse=True):
            print(f"  {length:4}  {where}")
    for line in string_errors:
        broken.append(f"{line}  (an error is a type: use thiserror)")
    for line in broken:
        print(line)
    print(
        f"shape: {len(long_ones)} functions over 60 lines, "
        f"{sum(1 for b in broken if 'limit' in b)} over their limit, "
        f"{len(string_errors)} Result<_, String>"
    )
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
