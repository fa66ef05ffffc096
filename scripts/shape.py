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
ROOTS = ["src", "crates", "functions"]
FN = re.compile(
    r"^\s*(pub(\([^)]*\))?\s+)?(const\s+)?(async\s+)?(unsafe\s+)?(?:extern\s+\"[^\"]*\"\s+)?fn\s+(\w+)"
)
STRING_ERROR = re.compile(r"Result<[^;{]*?,\s*String\s*,?\s*>", re.S)


def code_lines(text):
    """Each line with comments removed and string and char literals emptied, so braces and
    semicolons inside them are not counted. Block comments, normal strings and raw strings
    (`r#"..."#`) may span lines."""
    out, line, state, i, n = [], [], None, 0, len(text)
    hashes = 0
    while i < n:
        c = text[i]
        if c == "\n":
            out.append("".join(line))
            line = []
            if state == "line-comment":
                state = None
            i += 1
            continue
        if state == "line-comment":
            i += 1
        elif state == "block-comment":
            if text.startswith("*/", i):
                state, i = None, i + 2
            else:
                i += 1
        elif state == "string":
            if c == "\\":
                i += 2
            elif c == '"':
                line.append('"')
                state, i = None, i + 1
            else:
                i += 1
        elif state == "raw":
            closing = '"' + "#" * hashes
            if text.startswith(closing, i):
                line.append('"')
                state, i = None, i + len(closing)
            else:
                i += 1
        elif text.startswith("//", i):
            state, i = "line-comment", i + 2
        elif text.startswith("/*", i):
            state, i = "block-comment", i + 2
        else:
            raw = re.match(r'b?r(#*)"', text[i:i + 40])
            if raw and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
                hashes = len(raw.group(1))
                line.append('"')
                state, i = "raw", i + len(raw.group(0))
            elif c == '"':
                line.append('"')
                state, i = "string", i + 1
            elif c == "'" and re.match(r"'(\\.|[^\\'])'", text[i:i + 12]):
                i += len(re.match(r"'(\\.|[^\\'])'", text[i:i + 12]).group(0))
            else:
                line.append(c)
                i += 1
    out.append("".join(line))
    return out


def production_lines(path):
    """(number, raw, code) of each line outside `#[cfg(test)]` items."""
    raw_lines = path.read_text().splitlines()
    codes = code_lines(path.read_text())
    result, skip_depth, depth, pending_test = [], None, 0, False
    for number, raw in enumerate(raw_lines, 1):
        code = codes[number - 1] if number - 1 < len(codes) else ""
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


def test_modules(root):
    """Files that are test modules declared elsewhere (`#[cfg(test)] mod testkit;`)."""
    found = set()
    for path in root.rglob("*.rs"):
        text = path.read_text()
        for name in re.findall(r"#\[cfg\(test\)\]\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+(\w+)\s*;", text):
            folder = path.parent if path.name in ("lib.rs", "main.rs", "mod.rs") else path.parent / path.stem
            found.add(folder / f"{name}.rs")
            found.add(folder / name / "mod.rs")
    return found


def functions(lines):
    """(name, first line, length) of every function with a body, nested ones included. The
    signature ends at the first `{` or `;` outside brackets (`[u8; 32]` is no end)."""
    found = []
    for index, (number, raw, code) in enumerate(lines):
        match = FN.match(code)
        if not match:
            continue
        depth, opened, brackets = 0, False, 0
        for end_number, _, later in lines[index:]:
            declaration = False
            for c in later:
                if not opened:
                    if c in "([":
                        brackets += 1
                    elif c in ")]":
                        brackets -= 1
                    elif c == ";" and brackets == 0:
                        declaration = True
                        break
                    elif c == "{" and brackets == 0:
                        opened = True
                if opened:
                    depth += (c == "{") - (c == "}")
            if declaration:
                break
            if opened and depth <= 0:
                found.append((match.group(6), number, end_number - number + 1))
                break
    return found


def main():
    report = "--report" in sys.argv
    root = pathlib.Path(__file__).resolve().parent.parent
    broken, long_ones, string_errors = [], [], []
    skipped = test_modules(root / "crates") | test_modules(root / "src") | test_modules(root / "functions")
    for base in ROOTS:
        for path in sorted((root / base).rglob("*.rs")):
            relative = path.relative_to(root)
            parts = relative.parts
            if (
                "tests" in parts
                or "benches" in parts
                or "target" in parts
                or path.name == "tests.rs"
                or path in skipped
            ):
                continue
            lines = production_lines(path)
            for name, start, length in functions(lines):
                handler = parts[0] == "functions" and path.name == "lib.rs" and name == "handle"
                limit = MAX_HANDLER_LINES if handler else MAX_FN_LINES
                if length > limit:
                    broken.append(f"{relative}:{start}: fn {name} is {length} lines (limit {limit})")
                if length > 60:
                    long_ones.append((length, f"{relative}:{start} {name}"))
            # Across lines, as rustfmt wraps a long `Result<\n T,\n String,\n>`.
            code = "\n".join(code for _, _, code in lines)
            for match in STRING_ERROR.finditer(code):
                number = lines[code.count("\n", 0, match.start())][0]
                string_errors.append(f"{relative}:{number}: {' '.join(match.group(0).split())}")
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
