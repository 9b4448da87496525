#!/usr/bin/env python3
"""A peer written the way the lecture's students write it (Lecture 10,
"Packet Management"), for gmud's interop test (tests/lecture/test_interop.c).

Plain `socket` calls, one send() for each header and another for the data,
`json.dumps` with its default separators, a receiver that reads exactly the
header and then exactly N bytes. Python 3 standard library only.

The socket is an already-connected stream socket inherited as a file
descriptor, so the C test can hand over one end of a socketpair.

Usage:
  lecture_peer.py send <framing> <fd> <count> [<bad_index> [<bad_label>]]
      Sends count lecture messages, value n counting from 0. With bad_index
      (gmud framing only), that packet carries bad_label (default GMUX)
      instead of GMUD.
  lecture_peer.py recv <framing> <fd> <count>
      Reads count messages and prints each on one line: JSON framings print
      json.dumps(obj, sort_keys=True), text framings print the text (fixed:
      trailing zero bytes stripped). A wrong label prints "Invalid Packet"
      and exits 1 (the lecture's client would carry on reading; we must
      not). After count messages the stream must end.
  lecture_peer.py echo <framing> <fd> <count>
      Receives count messages and sends each straight back in the same
      framing; JSON framings go through json.loads and json.dumps, as the
      lecture's programs would, so the echo shows Python's exact bytes.

Framings: fixed (approach 2, 100-byte packets), length (approach 3, text in
<LENGTH.2><DATA.N>), json (approach 4, JSON in <LENGTH.2><DATA.N>), gmud
(approach 5, <ID.4 "GMUD"><LENGTH.2><DATA.N> with JSON).

Exit status: 0 success, 1 Invalid Packet, 2 usage, 3 stream ended early,
4 bytes after the last expected message.
"""

import json
import socket
import struct
import sys
import time

# The lecture's example moment, "Sat Mar 30 11:40:50 2019", fixed so the C
# side can predict every byte. gmtime keeps it independent of TZ.
FIXED_EPOCH = 1553946050
CTIME = time.asctime(time.gmtime(FIXED_EPOCH))

PACKET_SIZE = 100          # approach 2: "other sizes are available"
PACKET_ID = b'GMUD'        # approach 5
FRAMINGS = ('fixed', 'length', 'json', 'gmud')
# A blocking call that never returns would hang the C test until its watchdog
# fires; a timeout makes the peer fail on its own instead.
TIMEOUT_SECONDS = 10


class StreamEnded(Exception):
    pass


def lecture_text(n):
    return str(n) + ":" + CTIME


def lecture_object(n):
    return {"time": CTIME, "message": lecture_text(n), "value": n}


def send_part(sock, data):
    # The lecture calls sock.send() and ignores its result. A blocking stream
    # socket on Linux sends everything anyway, but a test peer must not drop
    # bytes silently if it ever does not, so finish what send() left.
    sent = sock.send(data)
    while sent < len(data):
        sent += sock.send(data[sent:])


def recv_exact(sock, n):
    """recv() may return fewer bytes than asked for: loop until n arrive."""
    data = b''
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise StreamEnded('stream ended with %d of %d bytes' % (len(data), n))
        data += chunk
    return data


def send_message(sock, framing, data, label=PACKET_ID):
    if framing == 'fixed':
        # The text, then zero bytes up to 100, in one send().
        packet = data + bytes(PACKET_SIZE - len(data))
        send_part(sock, packet)
    elif framing == 'length' or framing == 'json':
        send_part(sock, len(data).to_bytes(2, 'little'))
        send_part(sock, data)
    else:
        send_part(sock, label)
        send_part(sock, struct.pack('<H', len(data)))
        send_part(sock, data)


def payload_for(framing, n):
    if framing == 'fixed' or framing == 'length':
        return lecture_text(n).encode('utf-8')
    return json.dumps(lecture_object(n)).encode('utf-8')


def recv_message(sock, framing):
    """One message's data; None after printing Invalid Packet."""
    if framing == 'fixed':
        return recv_exact(sock, PACKET_SIZE)
    if framing == 'gmud':
        packet_id = recv_exact(sock, 4)
        if packet_id != PACKET_ID:
            print('Invalid Packet')
            return None
        size = struct.unpack('<H', recv_exact(sock, 2))[0]
    else:
        size = int.from_bytes(recv_exact(sock, 2), 'little')
    return recv_exact(sock, size)


def show(framing, data):
    if framing == 'fixed':
        return data.rstrip(b'\0').decode('utf-8')
    if framing == 'length':
        return data.decode('utf-8')
    return json.dumps(json.loads(data.decode('utf-8')), sort_keys=True)


def run_send(sock, framing, count, bad_index, bad_label):
    for n in range(count):
        label = bad_label if n == bad_index else PACKET_ID
        send_message(sock, framing, payload_for(framing, n), label)
    return 0


def run_recv(sock, framing, count):
    for _ in range(count):
        data = recv_message(sock, framing)
        if data is None:
            return 1
        print(show(framing, data))
    if sock.recv(1) != b'':
        print('bytes after message %d' % count, file=sys.stderr)
        return 4
    return 0


def run_echo(sock, framing, count):
    for _ in range(count):
        data = recv_message(sock, framing)
        if data is None:
            return 1
        if framing == 'json' or framing == 'gmud':
            data = json.dumps(json.loads(data.decode('utf-8'))).encode('utf-8')
        send_message(sock, framing, data)
    return 0


def usage():
    print(__doc__, file=sys.stderr)
    return 2


def main(argv):
    if len(argv) < 5 or argv[1] not in ('send', 'recv', 'echo') or argv[2] not in FRAMINGS:
        return usage()
    mode, framing = argv[1], argv[2]
    fd, count = int(argv[3]), int(argv[4])
    bad_index, bad_label = -1, PACKET_ID
    if mode == 'send' and len(argv) > 5:
        bad_index = int(argv[5])
        if len(argv) > 6:
            bad_label = argv[6].encode('ascii')
        if framing != 'gmud' or len(bad_label) != 4:
            return usage()
    elif len(argv) > 5:
        return usage()

    sock = socket.socket(fileno=fd)
    sock.settimeout(TIMEOUT_SECONDS)
    try:
        if mode == 'send':
            return run_send(sock, framing, count, bad_index, bad_label)
        if mode == 'recv':
            return run_recv(sock, framing, count)
        return run_echo(sock, framing, count)
    except StreamEnded as e:
        print('lecture_peer: %s' % e, file=sys.stderr)
        return 3
    finally:
        sys.stdout.flush()
        sock.close()


if __name__ == '__main__':
    sys.exit(main(sys.argv))
