#!/usr/bin/env python3
"""Approach 6: sequence numbers and sessions, the server.

On accept the server picks a session id with random.randrange (as the
lecture does: a small number, easy to guess) and sends it in the first GMUD
packet, {"session_id": <id>, "sequence_id": 0}. Then it loops, with no pause:
  - send one data packet, the approach-4 object
    {"time": ..., "message": "<n>:<time>", "value": n}, n from 0;
  - add one to its sequence_id;
  - read the client's reply {"session_id": ..., "sequence_id": ..., "data": ...}
    and check both fields against its own:
      session_id different   -> prints "Invalid Packet"
      sequence_id different  -> prints "Session data wrong - replay hack?"
      both equal             -> prints "Client valid"
So the first reply must carry sequence_id 1, the second 2, and so on.

Every packet is <"GMUD"><LENGTH.2 LE><JSON>, the three parts sent with three
send() calls, as in approach 5.

usage: session_server.py [HOST [PORT]] [--count N] [--interval S]
                         [--label ABCD] [--session-id N] [--nagle]
                         [--show-data] [--timeout S]
--count N: send N data packets (reading the reply to each), then close.
           Default: until the client closes.
--interval S: pause between data packets (default 0: the lecture's loop
              has none).
--label ABCD: the packet ID to send and to expect (default GMUD).
--session-id N: use N instead of a random id (for tests).
--nagle: leave TCP_NODELAY off, as the lecture's code does (slow: see below).
--show-data: print each reply as "Received: <JSON text as received>"
             before the verdict line.

Output: "Listening on HOST:PORT" (the port bound: PORT 0 picks a free one),
"Connected by ...", "Sent <JSON>" for the welcome and for each data packet,
and one verdict line per reply.

Differences from the lecture, on purpose: a reply with another packet ID
prints "Invalid Packet" and the server stops (the framing is lost there);
a reply whose session or sequence is wrong is reported and the loop goes on,
as the lecture's does. A client that closes between packets ends the loop.

Exit status: 0 every reply valid, 1 at least one reply was not ("Invalid
Packet" or "Session data wrong"), 2 usage, 3 closed mid-packet, 4 timeout,
5 connection error, 6 bad JSON.
"""

import json
import random
import socket
import struct
import sys
import time

import lecture_args

# The lecture draws the id with random.randrange: a small, guessable number.
# 0 is left out because gmud reads session id 0 as "no session yet".
SESSION_ID_RANGE = (1, 100000)


class ClosedMidPacket(Exception):
    pass


def recv_all(sock, size):
    # recv(n) may return fewer than n bytes: keep asking until we have them
    # all or the peer closes.
    data = b''
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            break
        data += chunk
    return data


def send_packet(conn, packet_id, obj):
    # The lecture's three send() calls: ID, length, data.
    data = json.dumps(obj).encode('utf-8')
    conn.send(packet_id)
    conn.send(struct.pack('<H', len(data)))
    conn.send(data)
    return data


def recv_packet(conn):
    """(ID, data) of the next packet, or None if the client closed between
    packets. Reads exactly 4 + 2 + N bytes."""
    header = recv_all(conn, 4)
    if not header:
        return None
    length = recv_all(conn, 2)
    if len(header) < 4 or len(length) < 2:
        raise ClosedMidPacket()
    size = struct.unpack('<H', length)[0]
    data = recv_all(conn, size)
    if len(data) < size:
        raise ClosedMidPacket()
    return header, data


def take_own_options(argv):
    """Removes the options lecture_args does not know from argv and returns
    them (session_id, nagle); lecture_args parses the rest."""
    session_id = None
    nagle = False
    rest = []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a in ('-h', '--help'):
            print(__doc__)
            sys.exit(0)
        if a == '--nagle':
            nagle = True
        elif a == '--session-id':
            if i + 1 >= len(argv):
                lecture_args.usage(argv[0], '--session-id needs a value')
            try:
                session_id = int(argv[i + 1])
            except ValueError:
                lecture_args.usage(argv[0], 'bad value for --session-id')
            i += 1
        else:
            rest.append(a)
        i += 1
    return rest, session_id, nagle


def main():
    argv, session_id, nagle = take_own_options(sys.argv)
    args = lecture_args.parse(argv)
    if '--interval' not in argv:
        args.interval = 0.0         # the lecture's loop has no pause
    if args.recv or args.send:
        lecture_args.usage(argv[0], '--recv and --send are not used here')
    packet_id = args.label.encode('ascii')

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    sock.listen(1)
    sock.settimeout(args.timeout)
    # The port actually bound: with port 0 the system picks a free one.
    print('Listening on %s:%d' % (args.host, sock.getsockname()[1]), flush=True)

    conn, addr = sock.accept()
    conn.settimeout(args.timeout)
    # Why TCP_NODELAY: each packet goes out as three small send() calls and
    # then the server waits for the reply. With Nagle's algorithm on, the
    # second and third send() are held back until the first is ACKed, and
    # the client delays that ACK (up to 40 ms on Linux) because it has
    # nothing to send until it has the whole packet. Every round trip then
    # stalls for the delayed-ACK timer: on Linux loopback 200 packets took
    # 17.6 s with Nagle (88 ms each) and 0.07 s without. The lecture leaves
    # Nagle on; --nagle does too. The bytes of the stream are the same
    # either way, only how they are cut into segments changes.
    if not nagle:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    print('Connected by', addr, flush=True)

    if session_id is None:
        session_id = random.randrange(*SESSION_ID_RANGE)
    sequence_id = 0
    welcome = send_packet(conn, packet_id,
                          {"session_id": session_id, "sequence_id": sequence_id})
    print('Sent', welcome.decode('utf-8'), flush=True)

    all_valid = True
    n = 0
    while args.count is None or n < args.count:
        if n > 0 and args.interval > 0:
            time.sleep(args.interval)
        t = time.ctime()
        try:
            data = send_packet(conn, packet_id,
                               {"time": t, "message": str(n) + ":" + t, "value": n})
        except (BrokenPipeError, ConnectionResetError):
            # Without --count the client decides when to stop.
            print('session_server: client closed', file=sys.stderr, flush=True)
            break
        print('Sent', data.decode('utf-8'), flush=True)
        sequence_id += 1
        n += 1

        try:
            packet = recv_packet(conn)
        except ConnectionResetError:
            packet = None
        if packet is None:
            print('session_server: client closed', file=sys.stderr, flush=True)
            break
        header, data = packet
        if header != packet_id:
            # Not our packet: the bytes after it cannot be trusted to be
            # a length, so stop here (the lecture's server reads on).
            print('Invalid Packet', flush=True)
            return 1
        reply = json.loads(data.decode('utf-8'))
        if args.show_data:
            print('Received:', data.decode('utf-8'), flush=True)
        if not isinstance(reply, dict):
            reply = {}
        if reply.get('session_id') != session_id:
            print('Invalid Packet', flush=True)
            all_valid = False
        elif reply.get('sequence_id') != sequence_id:
            print('Session data wrong - replay hack?', flush=True)
            all_valid = False
        else:
            print('Client valid', flush=True)

    conn.close()
    sock.close()
    return 0 if all_valid else 1


if __name__ == '__main__':
    try:
        sys.exit(main())
    except ClosedMidPacket:
        print('session_server: connection closed mid-packet', file=sys.stderr)
        sys.exit(3)
    except socket.timeout:
        print('session_server: timed out', file=sys.stderr)
        sys.exit(4)
    except ValueError as e:
        print('session_server: bad JSON:', e, file=sys.stderr)
        sys.exit(6)
    except OSError as e:
        print('session_server: connection closed:', e, file=sys.stderr)
        sys.exit(5)
