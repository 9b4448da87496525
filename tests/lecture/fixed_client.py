#!/usr/bin/env python3
"""Approach 2: fixed-length packets, the client.

Reads exactly 100 bytes per message (looping on recv, which may return
fewer) and prints the text with the zero padding removed, one line each.

usage: fixed_client.py [HOST [PORT]] [--count N] [--pause S] [--send TEXT]...
                       [--timeout S]
--count N: stop after N packets (default: until the server closes).
--send TEXT: send TEXT padded with zero bytes to 100 (one send()) first.
"""

import socket
import sys
import time

import lecture_args

PACKET_SIZE = 100


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
        packet = text.encode()
        if len(packet) > PACKET_SIZE:
            print('fixed_client: message longer than %d bytes' % PACKET_SIZE,
                  file=sys.stderr)
            return 2
        packet += b'\0' * (PACKET_SIZE - len(packet))
        sock.send(packet)

    if args.pause > 0:
        time.sleep(args.pause)

    received = 0
    while args.count is None or received < args.count:
        packet = recv_all(sock, PACKET_SIZE)
        if not packet:
            break
        if len(packet) < PACKET_SIZE:
            print('fixed_client: connection closed mid-packet', file=sys.stderr)
            return 3
        print(packet.rstrip(b'\0').decode('utf-8', 'replace'), flush=True)
        received += 1

    sock.close()
    return 0


if __name__ == '__main__':
    try:
        sys.exit(main())
    except socket.timeout:
        print('fixed_client: timed out', file=sys.stderr)
        sys.exit(4)
    except OSError as e:
        print('fixed_client: connection error:', e, file=sys.stderr)
        sys.exit(5)
