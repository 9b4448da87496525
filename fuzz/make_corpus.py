#!/usr/bin/env python3
"""Writes the seed corpus under fuzz/corpus/<target>/ (run from anywhere).

Frame targets take a 10-byte setup header (see fuzz_frame.c), then the
stream; fuzz_json takes one limits byte (see fuzz_json.c), then the payload.
The files are small on purpose: libFuzzer grows its own corpus in the build
tree. Re-running the script rewrites the same files.
"""
import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")

LECTURE = b'{"time": "Sat Mar 30 11:40:50 2019", "message": "2:Sat Mar 30 11:40:50 2019", "value": 2}'
SESSION = b'{"session_id": 4711, "sequence_id": 0}'
REPLY = b'{"session_id": 4711, "sequence_id": 1, "data": "this is test data"}'


def setup(max_message=300, p2=0, p3=b"\0\0\0\0", mode=0, seed=0x1234):
    """max_message 1..300, or 65535 for the 16-bit default."""
    m = 0x8000 if max_message == 65535 else max_message - 1
    return struct.pack("<H", m) + bytes([p2]) + p3.ljust(4, b"\0")[:4] + bytes([mode]) + struct.pack(">H", seed)


def ctime(n):
    return b"%d:Sat Mar 30 11:28:%02d 2019" % (n, 34 + n)


def length_frame(payload):
    return struct.pack("<H", len(payload)) + payload


def gmud_frame(payload, label=b"GMUD"):
    return label + length_frame(payload)


def fixed_frame(payload, size=100):
    return payload.ljust(size, b"\0")


def fixed_setup(size, max_message=300, mode=0):
    v = size - 1  # 1 + v % max_message
    return setup(max_message, v & 0xFF, bytes([v >> 8]), mode)


def line_setup(delim, max_message=300, mode=0):
    return setup(max_message, len(delim) - 1, delim, mode)


MESSAGES = [ctime(i) for i in range(4)]

SEEDS = {
    "fuzz_frame_raw": {
        "glued": setup(300) + b"".join(MESSAGES),
        "one": setup(300, mode=3) + MESSAGES[0],
        "oversize": setup(8, mode=1) + MESSAGES[1],
        "empty": setup(300),
    },
    "fuzz_frame_line": {
        "newline": line_setup(b"\n") + b"".join(m + b"\n" for m in MESSAGES),
        "crlf": line_setup(b"\r\n", mode=2) + b"a\r\nb\rc\r\n\r\n" + LECTURE + b"\r\n",
        "three_byte": line_setup(b"END", mode=0) + b"xEENDyEEENDzENENDEND",
        "overlap": line_setup(b"aab", mode=2) + b"aaab" + b"aaaab" + b"ab",
        "truncated": line_setup(b"\n") + MESSAGES[0] + b"\n" + MESSAGES[1],
        "too_long": line_setup(b"\n", max_message=10) + b"short\n" + MESSAGES[2] + b"\n",
        "nul_delim": line_setup(b"\0", mode=1) + b"one\0two\0\0three\0",
    },
    "fuzz_frame_fixed": {
        "lecture100": fixed_setup(100) + b"".join(fixed_frame(m) for m in MESSAGES[:3]),
        "truncated": fixed_setup(100, mode=1) + fixed_frame(MESSAGES[0]) + MESSAGES[1],
        "size1": fixed_setup(1, mode=2) + b"abc\0d",
        "size7": fixed_setup(7, max_message=65535, mode=3) + b"".join(fixed_frame(m[:7], 7) for m in MESSAGES),
    },
    "fuzz_frame_length": {
        "lecture": setup(300) + b"".join(length_frame(m) for m in MESSAGES),
        "json": setup(65535, mode=1) + length_frame(LECTURE) + length_frame(LECTURE.replace(b"2", b"3")),
        "empty_frames": setup(300, mode=2) + length_frame(b"") + length_frame(b"x") + length_frame(b""),
        "oversize": setup(50) + length_frame(MESSAGES[0]) + struct.pack("<H", 51) + b"y" * 51,
        "huge_length": setup(65535, mode=3) + b"\xff\xff" + b"z" * 20,
        "truncated_header": setup(300) + length_frame(b"ok") + b"\x05",
        "truncated_body": setup(300, mode=1) + struct.pack("<H", 10) + b"abc",
    },
    "fuzz_frame_gmud": {
        "session": setup(65535) + gmud_frame(SESSION) + gmud_frame(LECTURE) + gmud_frame(REPLY),
        "bad_label": setup(300, mode=1) + gmud_frame(MESSAGES[0]) + gmud_frame(MESSAGES[1], b"GMUX"),
        "bad_label_early": setup(300, mode=2) + b"GX",
        "custom_label": setup(300, p2=1, p3=b"ABCD", mode=3) + gmud_frame(b"hi", b"ABCD") + gmud_frame(b"", b"ABCD"),
        "oversize": setup(20) + gmud_frame(b"small") + gmud_frame(MESSAGES[0]),
        "truncated": setup(300, mode=1) + gmud_frame(b"whole") + gmud_frame(b"part")[:8],
    },
}

# fuzz_json: limits byte (bits 0-1 depth-1, 2-3 keys-1, 4-6 (string-1)/4,
# bit 7 object required), then the payload.
DEEP_OBJ = b'{"a":' * 40 + b"1" + b"}" * 40
DEEP_ARR = b"[" * 2100 + b"]" * 2100
SEEDS["fuzz_json"] = {
    "lecture": b"\xff" + LECTURE,
    "lecture_tiny": b"\x80" + LECTURE,
    "session": b"\xfb" + SESSION,
    "reply": b"\xff" + REPLY,
    "deep_object": b"\xff" + DEEP_OBJ,
    "deep_array": b"\x7f" + DEEP_ARR,
    "duplicate_key": b"\xff" + b'{"value": 1, "value": 2}',
    "error_packet": b"\xff" + b'{"error":"bad packet label at stream byte 0","code":"bad_label"}',
    "bad_utf8": b"\xff" + b'{"message": "\xff\xfe"}',
    "overlong_utf8": b"\xff" + b'{"m": "\xc0\xaf"}',
    "surrogate_utf8": b"\xff" + b'{"m": "\xed\xa0\x80"}',
    "nul_escape": b"\xff" + b'{"m": "a\\u0000b"}',
    "escapes": b"\xff" + b'{"s": "\\" \\\\ \\/ \\b\\f\\n\\r\\t \\u00e9 \\ud83d\\ude00 caf\xc3\xa9"}',
    "numbers": b"\xff" + b'{"big": 1e400, "int": 123456789012345678901234567890, "r": -0.0, "e": 1E2}',
    "scalars": b"\x7f" + b'"just a string"',
    "array": b"\x7f" + b"[1, 2.5, true, false, null, {}, []]",
    "unterminated": b"\xff" + b'{"time": "Sat Mar 30',
    "trailing": b"\xff" + b'{"a": 1} x',
    "empty": b"\xff",
    # Found by fuzz_json: jansson drops a raw NUL after a number (see
    # tests/core/test_fuzz_regress.c); kept as a seed so a regression shows at once.
    "nul_after_number": b"\xff" + b'{"a":1\0}',
}

# fuzz_proxy: PROXY protocol headers (v1 text, v2 binary) and range lists.
PP2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"
SEEDS["fuzz_proxy"] = {
    "v1_tcp4": b"PROXY TCP4 203.0.113.7 192.0.2.1 51000 8222\r\nGMUD",
    "v1_tcp6": b"PROXY TCP6 2001:db8::7 2001:db8::1 1234 80\r\n",
    "v1_unknown": b"PROXY UNKNOWN\r\n",
    "v2_tcp4": PP2_SIG + b"\x21\x11\x00\x0c" + bytes([203, 0, 113, 7, 192, 0, 2, 1, 0xc7, 0x38, 0x20, 0x1e]),
    "v2_tcp6_tlv": PP2_SIG + b"\x21\x21\x00\x28" + b"\x20\x01\x0d\xb8" + b"\0" * 11 + b"\x07"
                   + b"\x20\x01\x0d\xb8" + b"\0" * 11 + b"\x01" + b"\x12\x34\x00\x50" + b"\x04\x00\x01\x00",
    "v2_local": PP2_SIG + b"\x20\x00\x00\x00",
    "cidrs": b"10.0.0.0/8, [2001:db8::]/32 192.0.2.1 ::1",
}

# fuzz_http: requests to the metrics endpoint.
SEEDS["fuzz_http"] = {
    "get": b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:9100\r\nAccept: text/plain\r\n\r\n",
    "head": b"HEAD /metrics?x=1 HTTP/1.0\r\n\r\n",
    "post": b"POST /metrics HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc",
    "partial": b"GET /metr",
}

# fuzz_cluster: bus envelopes; the first byte's low bit: with the secret.
def _env(kind, flags, node, room, player, payload, inc=1, seq=1, ver=0):
    import struct
    return (b"GMC1" + kind + bytes([flags, len(node)]) + node + struct.pack("<QQQ", inc, seq, ver)
            + bytes([len(room)]) + room + struct.pack("<QI", player, len(payload)) + payload)


def _mac(env):
    """env with its HMAC-SHA256 under fuzz_cluster.c's key."""
    import hashlib
    import hmac
    return env + hmac.new(b"fuzzing-secret-0123", env, hashlib.sha256).digest()


SEEDS["fuzz_cluster"] = {
    "message_json": b"\x00" + _env(b"M", 2, b"n1", b"tavern", 7, b'{"a":1}', 9, 5, 3),
    "message_text": b"\x00" + _env(b"M", 0, b"node-2", b"lobby", 1, b"hello"),
    "join": b"\x00" + _env(b"J", 0, b"a", b"x", 3, b"", 2, 2, 1),
    "heartbeat": b"\x00" + _env(b"H", 0, b"a", b"", 0, b"12345678"),
    "bye_mac_flag": b"\x01" + _env(b"B", 1, b"a", b"", 0, b"") + b"\0" * 32,
    "message_mac": b"\x01" + _mac(_env(b"M", 3, b"n1", b"tavern", 7, b'{"a":1}', 9, 6, 3)),
    "leave_mac": b"\x01" + _mac(_env(b"L", 1, b"n1", b"tavern", 7, b"", 9, 7, 4)),
}


def main():
    total = 0
    for target, seeds in SEEDS.items():
        d = os.path.join(CORPUS, target)
        os.makedirs(d, exist_ok=True)
        for name, data in seeds.items():
            with open(os.path.join(d, name), "wb") as f:
                f.write(data)
            total += len(data)
    json.loads(LECTURE)  # the lecture's object, as Python's json.dumps writes it
    print("wrote %d bytes of seeds" % total)


if __name__ == "__main__":
    main()
