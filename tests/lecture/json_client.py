#!/usr/bin/env python3
"""Approach 4: JSON inside the length frame, the client.

For each packet it prints the length, then the object's "message" (as the
lecture's client does). An object without "message" (an echo, an error
packet) is printed whole with json.dumps instead.

usage: json_client.py [HOST [PORT]] [--count N] [--pause S] [--send JSON]...
                      [--show-data] [--timeout S]
--count N: stop after N packets (default: until the server closes).
--send JSON: parse JSON and send json.dumps of it in a length frame.
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

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(args.timeout)
    sock.connect((args.host, args.port))

    for text in args.send:
        data = json.dumps(json.loads(text)).encode('utf-8')
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
            print('json_client: connection closed mid-packet', file=sys.stderr)
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
        print('json_client: timed out', file=sys.stderr)
        sys.exit(4)
    except ValueError as e:
        print('json_client: bad JSON:', e, file=sys.stderr)
        sys.exit(6)
    except OSError as e:
        print('json_client: connection error:', e, file=sys.stderr)
        sys.exit(5)
