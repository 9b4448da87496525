#!/usr/bin/env python3
"""Approach 1, "data parsing": read chunks, cut them at each '\n'.

recv(4096) returns any number of bytes: part of a line, several lines, or
both. The client keeps what it has not used yet in a buffer and prints one
line per complete line, so gluing and splitting no longer matter.

usage: line_client.py [HOST [PORT]] [--count N] [--pause S] [--send TEXT]...
                      [--timeout S]
--count N: stop after N lines (default: until the server closes).
--send TEXT: send TEXT + '\n' with one send() before receiving.
A connection closed in the middle of a line is an error (exit 3).
"""

import socket
import sys
import time

import lecture_args


def main():
    args = lecture_args.parse(sys.argv)

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(args.timeout)
    sock.connect((args.host, args.port))

    for text in args.send:
        sock.send((text + '\n').encode())

    if args.pause > 0:
        time.sleep(args.pause)

    buffer = b''
    lines = 0
    while args.count is None or lines < args.count:
        if b'\n' in buffer:
            line, buffer = buffer.split(b'\n', 1)
            print(line.decode('utf-8', 'replace'), flush=True)
            lines += 1
            continue
        data = sock.recv(4096)
        if not data:
            if buffer:
                print('line_client: connection closed mid-line', file=sys.stderr)
                return 3
            break
        buffer += data

    sock.close()
    return 0


if __name__ == '__main__':
    try:
        sys.exit(main())
    except socket.timeout:
        print('line_client: timed out', file=sys.stderr)
        sys.exit(4)
    except OSError as e:
        print('line_client: connection error:', e, file=sys.stderr)
        sys.exit(5)
