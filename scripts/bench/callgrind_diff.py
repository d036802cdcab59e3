#!/usr/bin/env python3
"""Per-keystroke instructions from two callgrind profiles of one process.

    callgrind_diff.py NAME SHORT.out LONG.out UNITS [TOP [UNIT]]

SHORT and LONG are the same process over two runs that differ only in how
much work went through it (UNITS more in LONG: echo keystrokes, or MiB of
output): start-up, sign-in and the rest cancel out. Prints one Markdown
table row for the totals, then the TOP functions whose own instructions
(not their callees') grew the most, per UNIT ("keystroke" by default).
"""

import re
import subprocess
import sys

LINE = re.compile(r"^\s*([\d,]+)\s+\(\s*[\d.]+%\)\s+(.*)$")


def self_costs(path):
    """Function -> its own instructions, and the program total."""
    out = subprocess.run(
        ["callgrind_annotate", "--auto=no", "--threshold=100", path],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    funcs, total = {}, None
    for line in out.splitlines():
        m = LINE.match(line)
        if not m:
            continue
        n, what = int(m.group(1).replace(",", "")), m.group(2).strip()
        if what.startswith("PROGRAM TOTALS"):
            total = n
            continue
        # "file:function [object]" -> "function"
        what = re.sub(r"\s+\[[^\]]*\]$", "", what)
        func = what.split(":", 1)[1] if ":" in what else what
        funcs[func] = funcs.get(func, 0) + n
    if total is None:
        sys.exit(f"no PROGRAM TOTALS in {path}")
    return funcs, total


def main():
    name, short, long_, units = sys.argv[1:5]
    top = int(sys.argv[5]) if len(sys.argv) > 5 else 8
    unit = sys.argv[6] if len(sys.argv) > 6 else "keystroke"
    units = int(units)
    a, ta = self_costs(short)
    b, tb = self_costs(long_)
    per = (tb - ta) / units
    print(f"| {name} | {per:,.0f} |")
    grown = sorted(((b.get(f, 0) - a.get(f, 0), f) for f in set(a) | set(b)), reverse=True)
    print()
    print(f"Where {name}'s instructions per {unit} go (own instructions, top {top}):")
    print()
    print(f"| instructions per {unit} | function |")
    print("|---:|---|")
    for n, f in grown[:top]:
        if n <= 0:
            break
        f = f if len(f) <= 110 else f[:107] + "..."
        print(f"| {n / units:,.0f} | `{f}` |")
    print()


if __name__ == "__main__":
    main()
