#!/usr/bin/env python3
"""A TCP proxy for tests that splits and merges the byte stream.

usage: proxy.py LISTEN_PORT TARGET_PORT [--host H] [--target-host H]
                [--max-chunk N] [--max-delay S] [--seed N] [--lifetime S]

Accepts connections on H:LISTEN_PORT (default 127.0.0.1; port 0 picks a free
one), connects each to TARGET_HOST:TARGET_PORT and forwards both directions.
Each direction reads whatever has arrived (merging several of the sender's
writes: reads go on while more bytes are waiting) and writes it back out in
chunks of random size, with TCP_NODELAY and small random pauses between
them, so that frames straddle the receiver's reads: a header split in two, a
frame in several pieces, the end of one frame glued to the start of the next.
Chunk sizes: half the time 1..8 bytes, otherwise 1..--max-chunk (default
256). Pauses: 30% of the writes are followed by 0..--max-delay seconds
(default 0.002). The random generator of each direction of each connection
is seeded from --seed (default 1), the connection number and the direction.

An end of stream in one direction is passed on with shutdown(SHUT_WR); the
other direction carries on. A reset closes both sides. The proxy prints
"proxy listening on H:PORT" (flushed) when ready and exits by itself after
--lifetime seconds (default 120), so a test can never leave it behind.
"""

import random
import select
import socket
import sys
import threading
import time


def usage(message):
    print('proxy.py: ' + message, file=sys.stderr)
    print(__doc__, file=sys.stderr)
    sys.exit(2)


def parse(argv):
    opts = {'host': '127.0.0.1', 'target_host': '127.0.0.1', 'max_chunk': 256,
            'max_delay': 0.002, 'seed': 1, 'lifetime': 120.0}
    types = {'--host': str, '--target-host': str, '--max-chunk': int,
             '--max-delay': float, '--seed': int, '--lifetime': float}
    positional = []
    i = 1
    while i < len(argv):
        a = argv[i]
        if a in ('-h', '--help'):
            print(__doc__)
            sys.exit(0)
        if a in types:
            if i + 1 >= len(argv):
                usage(a + ' needs a value')
            try:
                opts[a[2:].replace('-', '_')] = types[a](argv[i + 1])
            except ValueError:
                usage('bad value for ' + a)
            i += 2
            continue
        if a.startswith('--'):
            usage('unknown option ' + a)
        positional.append(a)
        i += 1
    if len(positional) != 2:
        usage('need LISTEN_PORT and TARGET_PORT')
    try:
        opts['listen_port'] = int(positional[0])
        opts['target_port'] = int(positional[1])
    except ValueError:
        usage('ports must be numbers')
    if opts['max_chunk'] < 1:
        usage('--max-chunk must be at least 1')
    return opts


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.writes = 0
        self.bytes = 0


def pump(src, dst, rng, opts, deadline, stats, name):
    """Forward src -> dst in random chunks until src ends."""
    buf = bytearray()
    src_open = True
    try:
        while src_open or buf:
            if time.monotonic() > deadline:
                break
            if src_open:
                # Block for data when we have none; otherwise just take what
                # is already waiting (that is what glues frames together).
                wait = 0.2 if not buf else 0
                readable, _, _ = select.select([src], [], [], wait)
                if readable:
                    data = src.recv(65536)
                    if data:
                        buf += data
                    else:
                        src_open = False
                if not buf:
                    continue
            if rng.random() < 0.5:
                size = rng.randint(1, min(8, opts['max_chunk']))
            else:
                size = rng.randint(1, opts['max_chunk'])
            size = min(size, len(buf))
            dst.sendall(bytes(buf[:size]))
            del buf[:size]
            with stats.lock:
                stats.writes += 1
                stats.bytes += size
            if rng.random() < 0.3:
                time.sleep(rng.uniform(0, opts['max_delay']))
        if not src_open:
            try:
                dst.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            return True
    except OSError as e:
        print('proxy: %s: %s' % (name, e), file=sys.stderr, flush=True)
    # Reset or lifetime over: tear down both sides.
    for s in (src, dst):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
    return False


def serve(client, number, opts, deadline, stats):
    try:
        server = socket.create_connection((opts['target_host'],
                                           opts['target_port']), timeout=5)
    except OSError as e:
        print('proxy: connection %d: cannot reach target: %s' % (number, e),
              file=sys.stderr, flush=True)
        client.close()
        return
    server.settimeout(None)
    client.settimeout(None)
    for s in (client, server):
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    up = random.Random(opts['seed'] * 1000 + number * 2)
    down = random.Random(opts['seed'] * 1000 + number * 2 + 1)
    t = threading.Thread(target=pump, daemon=True,
                         args=(server, client, down, opts, deadline, stats,
                               'connection %d down' % number))
    t.start()
    pump(client, server, up, opts, deadline, stats, 'connection %d up' % number)
    t.join(max(0.0, deadline - time.monotonic()))
    client.close()
    server.close()


def main():
    opts = parse(sys.argv)
    deadline = time.monotonic() + opts['lifetime']
    stats = Stats()

    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((opts['host'], opts['listen_port']))
    listener.listen(16)
    listener.settimeout(0.2)
    port = listener.getsockname()[1]
    print('proxy listening on %s:%d' % (opts['host'], port), flush=True)

    number = 0
    while time.monotonic() < deadline:
        try:
            client, _ = listener.accept()
        except socket.timeout:
            continue
        threading.Thread(target=serve, daemon=True,
                         args=(client, number, opts, deadline, stats)).start()
        number += 1
    with stats.lock:
        print('proxy: lifetime over after %d connections, %d writes, %d bytes'
              % (number, stats.writes, stats.bytes), file=sys.stderr, flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
