#!/usr/bin/env python3
"""Approach 3: variable-length packets, the client.

Reads the 2-byte little-endian length, then exactly that many bytes, and
prints the text, one line per message.

usage: length_client.py [HOST [PORT]] [--count N] [--pause S]
                        [--send TEXT]... [--timeout S]
--count N: stop after N packets (default: until the server closes).
--send TEXT: send TEXT as <LENGTH.2><DATA> (two send() calls) first.
"""

import socket
import sys
import time

import lecture_args


def recv_all(sock, size):
    data = b''
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            break
        data += chunk
    return data


def main():
    args = lecture_args.parse(sys.argv)

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(args.timeout)
    sock.connect((args.host, args.port))

    for text in args.send:
        data = text.encode()
        sock.send(len(data).to_bytes(2, 'little'))
        sock.send(data)

    if args.pause > 0:
        time.sleep(args.pause)

    received = 0
    while args.count is None or received < args.count:
        header = recv_all(sock, 2)
        if not header:
            break
        size = int.from_bytes(header, 'little')
        data = recv_all(sock, size)
        if len(header) < 2 or len(data) < size:
            print('length_client: connection closed mid-packet', file=sys.stderr)
            return 3
        print(data.decode('utf-8', 'replace'), flush=True)
        received += 1

    sock.close()
    return 0


if __name__ == '__main__':
    try:
        sys.exit(main())
    except socket.timeout:
        print('length_client: timed out', file=sys.stderr)
        sys.exit(4)
    except OSError as e:
        print('length_client: connection error:', e, file=sys.stderr)
        sys.exit(5)
