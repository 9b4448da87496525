#!/usr/bin/env python3
"""Approach 2: fixed-length packets.

Every message is exactly 100 bytes: the text, then zero bytes up to 100,
sent with one send(). The receiver reads 100 bytes per message.

usage: fixed_server.py [HOST [PORT]] [--count N] [--interval S] [--recv N]
                       [--timeout S]
--recv N: after sending, read N packets and print the text of each.
"""

import socket
import sys
import time

import lecture_args

PACKET_SIZE = 100


def recv_all(sock, size):
    # recv(100) may return fewer than 100 bytes: keep asking.
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
        packet = message.encode()
        packet += b'\0' * (PACKET_SIZE - len(packet))
        conn.send(packet)
        print('Sent', message, flush=True)
        n += 1

    for _ in range(args.recv):
        packet = recv_all(conn, PACKET_SIZE)
        if not packet:
            break
        if len(packet) < PACKET_SIZE:
            print('fixed_server: connection closed mid-packet', file=sys.stderr)
            return 3
        print('Received:', packet.rstrip(b'\0').decode('utf-8', 'replace'),
              flush=True)

    conn.close()
    sock.close()
    return 0


if __name__ == '__main__':
    try:
        sys.exit(main())
    except socket.timeout:
        print('fixed_server: timed out', file=sys.stderr)
        sys.exit(4)
    except OSError as e:
        print('fixed_server: connection closed:', e, file=sys.stderr)
        sys.exit(5)
