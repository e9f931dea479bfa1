#!/usr/bin/env python3
"""Sorts the rows of `duplicates` into what they share.

    duplicates --repo . --most 200 --seconds 120 | python3 scripts/dupclass.py [-v]

The tool passes import lines over, but it reads the lines of a grouped Go
import block ("context", "fmt", ...) as code, so two files that import the
same packages make a pair. Each row is counted once, in the first class
that fits:
  import       at least half of either side's lines lie in an `import (...)` block
  boilerplate  the tool marked it so (thin lines, or a shape common in its folder)
  migration    SQL migrations, which are never edited once released
  code         the rest: code written twice
Prints the counts; -v also lists the code rows. Run it from the tree's root.
"""
import re
import sys

ROW = re.compile(r'^(D\d+) (\S+):(\d+)-(\d+) ~ (\S+):(\d+)-(\d+)(.*)$')


def import_blocks(path):
    """The (first, last) line numbers of the file's import blocks."""
    try:
        with open(path, encoding='utf-8') as f:
            lines = f.read().split('\n')
    except OSError:
        return []
    blocks, start = [], None
    for i, line in enumerate(lines, 1):
        if start is None and line == 'import (':
            start = i
        elif start is not None and line.strip() == ')':
            blocks.append((start, i))
            start = None
    return blocks


def mostly_imports(path, first, last):
    inside = sum(max(0, min(last, e) - max(first, s) + 1) for s, e in import_blocks(path))
    return 2 * inside >= last - first + 1


def main():
    verbose = '-v' in sys.argv[1:]
    counts = {'import': 0, 'boilerplate': 0, 'migration': 0, 'code': 0}
    for line in sys.stdin:
        m = ROW.match(line.strip())
        if not m:
            continue
        _, p1, a1, b1, p2, a2, b2, rest = m.groups()
        if mostly_imports(p1, int(a1), int(b1)) or mostly_imports(p2, int(a2), int(b2)):
            kind = 'import'
        elif 'boilerplate' in rest:
            kind = 'boilerplate'
        elif p1.endswith('.sql') and p2.endswith('.sql'):
            kind = 'migration'
        else:
            kind = 'code'
        counts[kind] += 1
        if verbose and kind == 'code':
            print(line.strip())
    print(' '.join(f'{k} {v}' for k, v in counts.items()))


if __name__ == '__main__':
    main()
