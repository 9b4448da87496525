#!/usr/bin/env python3
"""Approach 1, the lecture's first client: recv(4096) and print what comes.

Each recv() returns whatever bytes have arrived, so after a pause (the
lecture pauses the client in a debugger; here --pause S sleeps before the
first recv) one recv() returns many messages glued together, e.g.
0:Sat Mar 23 15:08:32 20191:Sat Mar 23 15:08:33 2019...
Nothing in the stream says how long a message is or how many arrived.

usage: raw_client.py [HOST [PORT]] [--count N] [--pause S] [--send TEXT]...
                     [--timeout S]
--count N: stop after N recv() calls (there are no messages to count).
--send TEXT: send TEXT with one send() before receiving (repeatable).
Prints one line per recv(), until the server closes.
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
        sock.send(text.encode())

    if args.pause > 0:
        time.sleep(args.pause)

    reads = 0
    while args.count is None or reads < args.count:
        data = sock.recv(4096)
        if not data:
            break
        print(data.decode('utf-8', 'replace'), flush=True)
        reads += 1

    sock.close()
    return 0


if __name__ == '__main__':
    try:
        sys.exit(main())
    except socket.timeout:
        print('raw_client: timed out', file=sys.stderr)
        sys.exit(4)
    except OSError as e:
        print('raw_client: connection error:', e, file=sys.stderr)
        sys.exit(5)
