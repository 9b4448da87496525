#!/usr/bin/env python3
"""Approach 3: variable-length packets, <LENGTH.2><DATA.N>.

The length is 2 bytes, little-endian, unsigned (0..65535). As in the
lecture, the header and the data go out with two separate send() calls.

usage: length_server.py [HOST [PORT]] [--count N] [--interval S] [--recv N]
                        [--timeout S]
--recv N: after sending, read N packets and print the text of each.
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
        data = message.encode()
        conn.send(len(data).to_bytes(2, 'little'))
        conn.send(data)
        print('Sent', message, flush=True)
        n += 1

    for _ in range(args.recv):
        header = recv_all(conn, 2)
        if not header:
            break
        size = int.from_bytes(header, 'little')
        data = recv_all(conn, size)
        if len(header) < 2 or len(data) < size:
            print('length_server: connection closed mid-packet', file=sys.stderr)
            return 3
        print('Received:', data.decode('utf-8', 'replace'), flush=True)

    conn.close()
    sock.close()
    return 0


if __name__ == '__main__':
    try:
        sys.exit(main())
    except socket.timeout:
        print('length_server: timed out', file=sys.stderr)
        sys.exit(4)
    except OSError as e:
        print('length_server: connection closed:', e, file=sys.stderr)
        sys.exit(5)
