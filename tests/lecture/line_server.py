#!/usr/bin/env python3
"""Approach 1, "data parsing", in its general form: a terminator.

The lecture's data has no terminator, so the lecture moves on; this is the
same server with a newline after each message (one send() each), which a
receiver can parse, C-string style, by looking for the terminator.

usage: line_server.py [HOST [PORT]] [--count N] [--interval S] [--recv N]
                      [--timeout S]
--recv N: after sending, read N lines and print each.
"""

import socket
import sys
import time

import lecture_args


def main():
    args = lecture_args.parse(sys.argv)

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    sock.listen(1)
    sock.settimeout(args.timeout)
    print('Listening on %s:%d' % (args.host, args.port), flush=True)

    conn, addr = sock.accept()
    conn.settimeout(args.timeout)
    print('Connected by', addr, flush=True)

    n = 0
    while args.count is None or n < args.count:
        if n > 0:
            time.sleep(args.interval)
        message = str(n) + ':' + time.ctime()
        conn.send((message + '\n').encode())
        print('Sent', message, flush=True)
        n += 1

    # Read lines: keep a buffer, cut it at each '\n'.
    buffer = b''
    lines = 0
    while lines < args.recv:
        if b'\n' in buffer:
            line, buffer = buffer.split(b'\n', 1)
            print('Received:', line.decode('utf-8', 'replace'), flush=True)
            lines += 1
            continue
        data = conn.recv(4096)
        if not data:
            break
        buffer += data

    conn.close()
    sock.close()
    return 0


if __name__ == '__main__':
    try:
        sys.exit(main())
    except socket.timeout:
        print('line_server: timed out', file=sys.stderr)
        sys.exit(4)
    except OSError as e:
        print('line_server: connection closed:', e, file=sys.stderr)
        sys.exit(5)
