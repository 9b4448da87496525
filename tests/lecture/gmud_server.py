#!/usr/bin/env python3
"""Approach 5: packet ID, <ID.4><LENGTH.2><DATA.N>.

"Are these my packets?": each packet starts with the 4 ASCII bytes GMUD,
sent with its own send(), then the 2-byte little-endian length (its own
send()), then the approach-4 JSON object (its own send()).

usage: gmud_server.py [HOST [PORT]] [--count N] [--interval S] [--recv N]
                      [--label ABCD] [--timeout S]
--label: the ID to send and to expect (default GMUD).
--recv N: after sending, read N packets and print each as
          "Received: <the JSON text as received>". A packet with another
          ID prints "Invalid Packet"; the lecture's receiver carries on
          reading (and so loses sync); this one stops there, exit 1.
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
        t = time.ctime()
        data = json.dumps({"time": t, "message": str(n) + ":" + t, "value": n})
        data = data.encode('utf-8')
        conn.send(packet_id)
        conn.send(len(data).to_bytes(2, 'little'))
        conn.send(data)
        print('Sent', data.decode('utf-8'), flush=True)
        n += 1

    for _ in range(args.recv):
        header = recv_all(conn, 4)
        if not header:
            break
        if len(header) < 4:
            print('gmud_server: connection closed mid-packet', file=sys.stderr)
            return 3
        if header != packet_id:
            print('Invalid Packet', flush=True)
            return 1
        length = recv_all(conn, 2)
        size = int.from_bytes(length, 'little')
        data = recv_all(conn, size)
        if len(length) < 2 or len(data) < size:
            print('gmud_server: connection closed mid-packet', file=sys.stderr)
            return 3
        json.loads(data.decode('utf-8'))      # must be JSON
        print('Received:', data.decode('utf-8'), flush=True)

    conn.close()
    sock.close()
    return 0


if __name__ == '__main__':
    try:
        sys.exit(main())
    except socket.timeout:
        print('gmud_server: timed out', file=sys.stderr)
        sys.exit(4)
    except ValueError as e:
        print('gmud_server: bad JSON:', e, file=sys.stderr)
        sys.exit(6)
    except OSError as e:
        print('gmud_server: connection closed:', e, file=sys.stderr)
        sys.exit(5)
