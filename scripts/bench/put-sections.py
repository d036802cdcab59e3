#!/usr/bin/env python3
"""Merges a benchmark report into BENCHMARKS.md: every `## Title` section of
the report replaces the section of the same title in the file (or is
appended), and a preamble before the first `## ` replaces the file's
preamble. Sections written by other benchmark scripts are kept.

    put-sections.py FILE < report.md
"""
import re
import sys


def split(text):
    parts = re.split(r'(?m)^(?=## )', text)
    preamble = parts[0] if not parts[0].startswith('## ') else ''
    sections = [p for p in parts if p.startswith('## ')]
    return preamble, [(s.splitlines()[0].strip(), s.rstrip('\n') + '\n') for s in sections]


def main():
    path = sys.argv[1]
    report = sys.stdin.read()
    try:
        current = open(path, encoding='utf-8').read()
    except FileNotFoundError:
        current = ''
    old_pre, old_secs = split(current)
    new_pre, new_secs = split(report)
    pre = new_pre if new_pre.strip() else old_pre
    merged = list(old_secs)
    for title, body in new_secs:
        for i, (t, _) in enumerate(merged):
            if t == title:
                merged[i] = (title, body)
                break
        else:
            merged.append((title, body))
    out = pre.rstrip('\n') + '\n\n' + '\n'.join(body for _, body in merged)
    open(path, 'w', encoding='utf-8').write(out)


if __name__ == '__main__':
    main()
