#!/usr/bin/env python3
"""Approach 5: packet ID, the client.

Reads the 4-byte ID; another ID than GMUD (--label) prints "Invalid Packet".
The lecture's client then carries on reading, which loses sync with the
stream (the next bytes it takes for an ID are the middle of a packet): this
one stops there instead, with exit status 1. Otherwise it reads the length
and the data and prints, as in approach 4, the length, then "message" (an
object without "message" is printed whole with json.dumps).

usage: gmud_client.py [HOST [PORT]] [--count N] [--pause S] [--send JSON]...
                      [--label ABCD] [--send-label ABCD] [--show-data]
                      [--timeout S]
--count N: stop after N packets (default: until the server closes).
--send JSON: parse JSON and send json.dumps of it as a GMUD packet, ID,
             length and data with three send() calls.
--send-label: the ID put on packets sent (default --label), to test how a
              peer handles packets that are not its own.
--show-data: after the message line, print the JSON text exactly as received.
"""

import json
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
    packet_id = args.label.encode('ascii')

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(args.timeout)
    sock.connect((args.host, args.port))

    for text in args.send:
        data = json.dumps(json.loads(text)).encode('utf-8')
        sock.send(args.send_label.encode('ascii'))
        sock.send(len(data).to_bytes(2, 'little'))
        sock.send(data)

    if args.pause > 0:
        time.sleep(args.pause)

    received = 0
    while args.count is None or received < args.count:
        header = recv_all(sock, 4)
        if not header:
            break
        if len(header) < 4:
            print('gmud_client: connection closed mid-packet', file=sys.stderr)
            return 3
        if header != packet_id:
            print('Invalid Packet', flush=True)
            return 1
        length = recv_all(sock, 2)
        size = int.from_bytes(length, 'little')
        data = recv_all(sock, size)
        if len(length) < 2 or len(data) < size:
            print('gmud_client: connection closed mid-packet', file=sys.stderr)
            return 3
        obj = json.loads(data.decode('utf-8'))
        print(size)
        if isinstance(obj, dict) and 'message' in obj:
            print(obj['message'])
        else:
            print(json.dumps(obj))
        if args.show_data:
            print(data.decode('utf-8'))
        sys.stdout.flush()
        received += 1

    sock.close()
    return 0


if __name__ == '__main__':
    try:
        sys.exit(main())
    except socket.timeout:
        print('gmud_client: timed out', file=sys.stderr)
        sys.exit(4)
    except ValueError as e:
        print('gmud_client: bad JSON:', e, file=sys.stderr)
        sys.exit(6)
    except OSError as e:
        print('gmud_client: connection error:', e, file=sys.stderr)
        sys.exit(5)
