#!/usr/bin/env python3
"""The shared library's exported functions against the public headers.

Every function a header in include/gmud declares with GMUD_API must be in
the library's dynamic symbol table, and nothing else named gmud_ may be:
internals (the runtime's gmud_rt_*, the buffers' gmud_buf_*, ...) stay
hidden, so that they never become part of the ABI.

usage: test_exports.py LIBGMUD.so INCLUDE_DIR
"""
import pathlib
import re
import subprocess
import sys


def declared(include_dir):
    names = {}
    for h in sorted(pathlib.Path(include_dir).glob("*.h")):
        text = h.read_text()
        # A declaration may wrap: join it up to its ';' before reading the name.
        for m in re.finditer(r"^GMUD_API\b([^;{]*)", text, re.M):
            sig = " ".join(m.group(1).split())
            name = re.search(r"\b(gmud_\w+)\s*\(", sig)
            if name is None:
                sys.exit(f"{h.name}: cannot read the name in GMUD_API{sig}")
            names[name.group(1)] = h.name
    return names


def exported(lib):
    out = subprocess.run(["nm", "-D", "--defined-only", lib], check=True,
                         capture_output=True, text=True).stdout
    syms = set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] in "TtWDdBbRr":
            syms.add(parts[2])
    return syms


def main():
    lib, include_dir = sys.argv[1], sys.argv[2]
    want = declared(include_dir)
    have = exported(lib)
    gmud = {s for s in have if s.startswith("gmud_")}
    missing = sorted(set(want) - have)
    extra = sorted(gmud - set(want))
    foreign = sorted(s for s in have - gmud if not s.startswith("_"))
    ok = True
    for name in missing:
        print(f"FAIL: {name} ({want[name]}) is declared GMUD_API but not exported")
        ok = False
    for name in extra:
        print(f"FAIL: {name} is exported but no public header declares it")
        ok = False
    for name in foreign:
        print(f"FAIL: {name} is exported and is not gmud's")
        ok = False
    if len(want) < 50:
        print(f"FAIL: only {len(want)} GMUD_API declarations found: the header parse is broken")
        ok = False
    if ok:
        print(f"test_exports: ok, {len(want)} functions exported, nothing else")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
