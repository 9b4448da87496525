#!/usr/bin/env python3
"""Approach 6: sequence numbers and sessions, the client.

The first GMUD packet from the server is the welcome,
{"session_id": <id>, "sequence_id": 0}: the client keeps the session id.
Then, for each data packet, it prints it (the length, then "message", as
the approach 4 and 5 clients do), adds one to its own sequence_id, and
replies with
    {"session_id": <id>, "sequence_id": <packets received>, "data": "this is test data"}
so the first reply carries sequence_id 1, the second 2, and so on.
Every packet is <"GMUD"><LENGTH.2 LE><JSON>; a reply goes out as three
send() calls (ID, length, data), as in approach 5.

usage: session_client.py [HOST [PORT]] [--count N] [--pause S]
                         [--label ABCD] [--send-label ABCD] [--data TEXT]
                         [--bad-seq K]... [--bad-session K]... [--nagle]
                         [--show-data] [--timeout S]
--count N: stop after replying to N data packets (default: until the
           server closes).
--data TEXT: the reply's "data" (default "this is test data").
--bad-seq K: the K-th reply (from 1) carries sequence_id K - 1, the number
             a replayed earlier reply would carry. Repeatable.
--bad-session K: the K-th reply carries session_id + 1, another session's
                 id. Repeatable.
--send-label: the ID put on replies (default --label).
--nagle: leave TCP_NODELAY off, as the lecture's code does (slow).
--show-data: after the lines of each packet, print its JSON text exactly as
             received.

Output, per packet: its length on one line, then "message" on the next (the
welcome and any object without "message" are printed whole, json.dumps).

A packet with an "error" field (gmud's error packet) is printed the same
way, is not answered and does not count; the client reads on until the
server closes.

Exit status: 0 ok, 1 Invalid Packet (a packet with another ID; the client
stops there), 2 usage, 3 closed mid-packet, 4 timeout, 5 connection error,
6 bad JSON, 7 the first packet is not a welcome, 8 an error packet arrived.
"""

import json
import socket
import struct
import sys
import time

import lecture_args


class ClosedMidPacket(Exception):
    pass


class NotWelcome(Exception):
    pass


def recv_all(sock, size):
    data = b''
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            break
        data += chunk
    return data


def recv_packet(sock):
    """(ID, data) of the next packet, or None if the server closed between
    packets. Reads exactly 4 + 2 + N bytes."""
    header = recv_all(sock, 4)
    if not header:
        return None
    length = recv_all(sock, 2)
    if len(header) < 4 or len(length) < 2:
        raise ClosedMidPacket()
    size = struct.unpack('<H', length)[0]
    data = recv_all(sock, size)
    if len(data) < size:
        raise ClosedMidPacket()
    return header, data


def show(data, obj, show_data):
    # As gmud_client.py: the length, then "message" (or the whole object).
    print(len(data))
    if isinstance(obj, dict) and 'message' in obj:
        print(obj['message'])
    else:
        print(json.dumps(obj))
    if show_data:
        print(data.decode('utf-8'))
    sys.stdout.flush()


def take_own_options(argv):
    """Removes the options lecture_args does not know from argv; returns the
    rest and a dict of ours."""
    own = {'bad_seq': set(), 'bad_session': set(), 'nagle': False,
           'data': 'this is test data'}
    rest = []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a in ('-h', '--help'):
            print(__doc__)
            sys.exit(0)
        if a == '--nagle':
            own['nagle'] = True
        elif a in ('--bad-seq', '--bad-session', '--data'):
            if i + 1 >= len(argv):
                lecture_args.usage(argv[0], a + ' needs a value')
            value = argv[i + 1]
            if a == '--data':
                own['data'] = value
            else:
                try:
                    k = int(value)
                except ValueError:
                    k = 0
                if k < 1:
                    lecture_args.usage(argv[0], 'bad value for %s: %r' % (a, value))
                own[a[2:].replace('-', '_')].add(k)
            i += 1
        else:
            rest.append(a)
        i += 1
    return rest, own


def main():
    argv, own = take_own_options(sys.argv)
    args = lecture_args.parse(argv)
    if args.send:
        lecture_args.usage(argv[0], '--send is not used here')
    packet_id = args.label.encode('ascii')
    send_id = args.send_label.encode('ascii')

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(args.timeout)
    # TCP_NODELAY for the reason given in session_server.py: three small
    # send() calls per packet in a strict request/reply loop make Nagle's
    # algorithm wait for the peer's delayed ACK on every packet.
    if not own['nagle']:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.connect((args.host, args.port))

    if args.pause > 0:
        time.sleep(args.pause)

    session_id = None
    sequence_id = 0
    got_error = False
    while args.count is None or sequence_id < args.count:
        packet = recv_packet(sock)
        if packet is None:
            break
        header, data = packet
        if header != packet_id:
            print('Invalid Packet', flush=True)
            return 1
        obj = json.loads(data.decode('utf-8'))
        show(data, obj, args.show_data)

        if isinstance(obj, dict) and 'error' in obj:
            got_error = True            # gmud's error packet: not answered
            continue
        if session_id is None:
            # The welcome: keep the session id the server picked.
            if not (isinstance(obj, dict) and isinstance(obj.get('session_id'), int)
                    and obj.get('sequence_id') == 0):
                raise NotWelcome(data.decode('utf-8'))
            session_id = obj['session_id']
            continue

        sequence_id += 1
        reply = {"session_id": session_id, "sequence_id": sequence_id,
                 "data": own['data']}
        # Test hooks: make this one reply wrong on purpose.
        if sequence_id in own['bad_seq']:
            reply['sequence_id'] = sequence_id - 1
        if sequence_id in own['bad_session']:
            reply['session_id'] = session_id + 1
        out = json.dumps(reply).encode('utf-8')
        sock.send(send_id)
        sock.send(struct.pack('<H', len(out)))
        sock.send(out)

    sock.close()
    return 8 if got_error else 0


if __name__ == '__main__':
    try:
        sys.exit(main())
    except ClosedMidPacket:
        print('session_client: connection closed mid-packet', file=sys.stderr)
        sys.exit(3)
    except NotWelcome as e:
        print('session_client: the first packet is not a welcome:', e, file=sys.stderr)
        sys.exit(7)
    except socket.timeout:
        print('session_client: timed out', file=sys.stderr)
        sys.exit(4)
    except ValueError as e:
        print('session_client: bad JSON:', e, file=sys.stderr)
        sys.exit(6)
    except OSError as e:
        print('session_client: connection error:', e, file=sys.stderr)
        sys.exit(5)
