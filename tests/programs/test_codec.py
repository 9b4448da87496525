#!/usr/bin/env python3
"""gmud-codec end to end: its options are the other programs' (options.c),
so the framing options apply together whatever their order.

usage: test_codec.py GMUD-CODEC
"""
import subprocess
import sys

CODEC = sys.argv[1]
failures = []


def run(args, data):
    p = subprocess.run([CODEC] + args, input=data, capture_output=True, timeout=10)
    return p.returncode, p.stdout, p.stderr.decode(errors="replace")


def expect(ok, what):
    if not ok:
        failures.append(what)
        print("FAIL:", what)


# --label before --framing: the label survives (it used to be reset to GMUD).
for args in (["--label", "ABCD", "--framing", "gmud"], ["--framing", "gmud", "--label", "ABCD"]):
    rc, out, err = run(["encode"] + args, b"hi\n")
    expect(rc == 0 and out == b"ABCD\x02\x00hi", f"encode {args}: {rc} {out!r} {err}")
    rc, back, err = run(["decode"] + args, out)
    expect(rc == 0 and back == b"hi\n", f"decode {args}: {rc} {back!r} {err}")

# The same for the line delimiter.
rc, out, err = run(["encode", "--delim", "\\r\\n", "--framing", "line"], b"a\nb\n")
expect(rc == 0 and out == b"a\r\nb\r\n", f"encode --delim before --framing: {rc} {out!r} {err}")

# Bad values: exit status 2, and the option named.
for args, says in ((["--label", "ABC"], "--label"), (["--max-message", "0"], "--max-message"),
                   (["--framing", "bogus"], "--framing"), (["--colour", "x"], "unknown option")):
    rc, out, err = run(["encode"] + args, b"hi\n")
    expect(rc == 2 and says in err and out == b"", f"{args}: {rc} {err!r}")

if failures:
    print(f"test_codec: {len(failures)} failed")
    sys.exit(1)
print("test_codec: ok")
