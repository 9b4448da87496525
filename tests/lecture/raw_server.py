#!/usr/bin/env python3
"""Approach 1, the lecture's first server: no framing at all.

Once a second (--interval) it sends str(n) + ":" + time.ctime() to the one
client it accepted, with ONE send() per message and nothing around it. The
receiver cannot tell where one message ends and the next begins: that is the
problem the lecture starts from.

usage: raw_server.py [HOST [PORT]] [--count N] [--interval S] [--recv N]
                     [--timeout S]
--recv N: after sending, do N recv(4096) calls and print what each returns.
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
        conn.send(message.encode())
        print('Sent', message, flush=True)
        n += 1

    for _ in range(args.recv):
        data = conn.recv(4096)
        if not data:
            break
        print('Received:', data.decode('utf-8', 'replace'), flush=True)

    conn.close()
    sock.close()
    return 0


if __name__ == '__main__':
    try:
        sys.exit(main())
    except socket.timeout:
        print('raw_server: timed out', file=sys.stderr)
        sys.exit(4)
    except OSError as e:
        print('raw_server: connection closed:', e, file=sys.stderr)
        sys.exit(5)
