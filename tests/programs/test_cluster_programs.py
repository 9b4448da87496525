#!/usr/bin/env python3
"""Three gmud-server nodes on one Redis (gmud-server --cluster), clients
on each, real processes over loopback: chat crosses nodes whole and in
each sender's order, who answers across nodes, joins and leaves are
announced everywhere; a node killed with SIGKILL drops out of the others'
presence within the TTL; Redis paused for seconds leaves local chat
working, drops and counts cross-node traffic, keeps memory bounded, and
cross-node chat comes back by itself; garbage another Redis client
publishes on the bus is refused and counted.

Usage: test_cluster_programs.py <gmud-server> <gmud-client>

The test starts redis-server (Debian's package, scripts/install-deps.sh)
on a free loopback port without persistence, and stops it.
"""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

from progtest import STEP, check, run_tests
from test_metrics import scrape, series
from test_programs import Server, finish, start_client

TTL_MS = 1200
PROCS = []


def free_port():
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Redis:
    def __init__(self, port=None):
        self.port = port or free_port()
        self.proc = subprocess.Popen(
            ['redis-server', '--port', str(self.port), '--bind', '127.0.0.1', '--save', '',
             '--appendonly', 'no', '--loglevel', 'warning'],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        PROCS.append(self.proc)
        deadline = time.monotonic() + STEP
        while time.monotonic() < deadline:
            try:
                socket.create_connection(('127.0.0.1', self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError('redis-server did not start')

    def command(self, *args):
        """One command in RESP; the first line of the reply."""
        out = b'*%d\r\n' % len(args)
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out += b'$%d\r\n%s\r\n' % (len(a), a)
        s = socket.create_connection(('127.0.0.1', self.port), timeout=STEP)
        s.sendall(out)
        reply = s.recv(65536)
        s.close()
        return reply

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
        self.proc.wait()


def node(redis, name, *args):
    srv = Server('--app', 'chat', '--cluster', 'redis://127.0.0.1:%d' % redis.port,
                 '--node', name, '--cluster-ttl', str(TTL_MS / 1000), *args)
    PROCS.append(srv.proc)
    check(srv.log.wait_for(r'up: subscribed and registered') is not None,
          '%s: the cluster link comes up: %s' % (name, srv.log.all[-5:]))
    return srv


class Player:
    def __init__(self, srv):
        self.p = start_client(srv.port, '--wait', '0.3')
        PROCS.append(self.p)

    def say(self, obj):
        self.p.stdin.write(json.dumps(obj) + '\n')
        self.p.stdin.flush()

    def next(self, pred, timeout=STEP):
        """The next JSON object for which pred holds (others skipped)."""
        return self.p.out.next_json(pred, timeout)

    def join(self, room):
        self.say({'cmd': 'join', 'room': room})
        obj = self.next(lambda o: o.get('event') == 'join' and o.get('room') == room)
        return obj

    def who(self, room, want, timeout=STEP):
        """Asks who until the answer has want players (or time is up)."""
        deadline = time.monotonic() + timeout
        obj = None
        while time.monotonic() < deadline:
            self.say({'cmd': 'who', 'room': room})
            obj = self.next(lambda o: o.get('event') == 'who', timeout=2)
            if obj is not None and len(obj.get('players', [])) == want:
                return obj
            time.sleep(0.05)
        return obj

    def close(self):
        return finish(self.p)


def three_nodes(redis, *args):
    return [node(redis, 'n%d' % i, *args) for i in (1, 2, 3)]


def test_cross_node_chat():
    redis = Redis()
    nodes = three_nodes(redis)
    players = [Player(n) for n in nodes]
    me = [p.join('tavern') for p in players]
    check(all(m is not None and m.get('node') == 'n%d' % (i + 1) for i, m in enumerate(me)),
          'each join is confirmed with its node: %r' % me)
    ids = [(m or {}).get('player') for m in me]
    w = players[0].who('tavern', 3)
    got = sorted((x.get('node'), x.get('player')) for x in (w or {}).get('players', []))
    check(got == sorted(('n%d' % (i + 1), ids[i]) for i in range(3)),
          'who across nodes lists all three players: %r' % w)
    check(w is not None and not w.get('partial'), 'who is not partial while linked: %r' % w)
    # Two senders at once; each receiver gets each sender's messages whole
    # and in order.
    count = 100
    for k in range(count):
        players[0].say({'seq': k, 's': 'a' * 50})
        players[1].say({'seq': k, 's': 'b' * 50})
    for r in (2, 1, 0):
        heard = {}
        expect = 2 * count if r == 2 else count
        for _ in range(expect):
            obj = players[r].next(lambda o: 'seq' in o)
            if obj is None:
                break
            heard.setdefault(obj.get('node'), []).append(obj['seq'])
            check(obj.get('from') in ids and len(obj.get('s', '')) == 50,
                  'relay carries from and the whole message: %r' % obj)
        for s in ({0, 1} - {r}):
            name = 'n%d' % (s + 1)
            check(heard.get(name) == list(range(count)),
                  'player on n%d hears all of %s in order (%d)' %
                  (r + 1, name, len(heard.get(name, []))))
    # A leave on n2 is announced on n1 and n3.
    players[1].say({'cmd': 'leave'})
    for r in (0, 2):
        obj = players[r].next(lambda o: o.get('event') == 'leave')
        check(obj is not None and obj.get('node') == 'n2' and obj.get('player') == ids[1]
              and obj.get('room') == 'tavern',
              'n%d hears the leave on n2: %r' % (r + 1, obj))
    # Chat stays in its room across nodes: n2's player is in the lobby now.
    players[0].say({'only': 'tavern'})
    obj = players[2].next(lambda o: 'only' in o)
    check(obj is not None, 'n3 hears tavern chat from n1')
    stray = players[1].next(lambda o: 'only' in o, timeout=0.5)
    check(stray is None, 'the lobby on n2 does not hear tavern chat: %r' % stray)
    for p in players:
        p.close()
    for n in nodes:
        check(n.stop() == 0, 'node exits 0')
    redis.stop()


def test_sigkill_node():
    redis = Redis()
    nodes = three_nodes(redis)
    players = [Player(n) for n in nodes]
    for p in players:
        p.join('tavern')
    check(players[0].who('tavern', 3) is not None, 'three in the tavern')
    t0 = time.monotonic()
    nodes[2].proc.kill()
    nodes[2].proc.wait()
    left = players[0].next(lambda o: o.get('event') == 'leave' and o.get('node') == 'n3',
                           timeout=TTL_MS / 1000 + STEP)
    took = time.monotonic() - t0
    check(left is not None, 'n1 hears that n3\'s player left: %r' % left)
    # Within the TTL, with 300 ms for process scheduling on a loaded machine.
    if took > TTL_MS / 1000 + 0.3:
        nodes[0].log.wait_for('left the', 0.5)  # what n1 logged, to say why
    check(took <= TTL_MS / 1000 + 0.3, 'within the TTL (%.2fs, TTL %.1fs): %s' %
          (took, TTL_MS / 1000, [l for l in nodes[0].log.all if 'cluster' in l][-4:]))
    print('  SIGKILL to leave: %.3fs (TTL %.1fs)' % (took, TTL_MS / 1000))
    w = players[1].who('tavern', 2)
    check(w is not None and len(w['players']) == 2, 'n2 sees two left: %r' % w)
    for p in players[:2]:
        p.close()
    for n in nodes[:2]:
        check(n.stop() == 0, 'node exits 0')
    redis.stop()


def rss_kb(pid):
    with open('/proc/%d/status' % pid) as f:
        m = re.search(r'VmRSS:\s+(\d+)', f.read())
    return int(m.group(1)) if m else 0


def test_redis_outage():
    redis = Redis()
    # Rates high enough that 3000 messages in a second are not shaped.
    n1 = node(redis, 'n1', '--metrics', '0', '--rate-msgs', '100000', '--rate-msgs-burst',
              '100000', '--rate-bytes', '100000000', '--rate-bytes-burst', '100000000')
    found = [re.search(r'metrics on http://127\.0\.0\.1:(\d+)/metrics', l) for l in n1.log.all]
    found = [m for m in found if m]
    mport = int(found[0].group(1) if found else
                n1.log.wait_for(r'metrics on http://127\.0\.0\.1:(\d+)/metrics').group(1))
    n2 = node(redis, 'n2')
    a, b, c = Player(n1), Player(n1), Player(n2)
    for p in (a, b, c):
        p.join('tavern')
    check(a.who('tavern', 3) is not None, 'three in the tavern')
    rss0 = rss_kb(n1.proc.pid)
    redis.proc.send_signal(signal.SIGSTOP)
    try:
        check(n1.log.wait_for(r'down: ', timeout=STEP) is not None, 'n1 sees the link go down')
        # Local chat never stops, and much is said during the outage.
        for k in range(3000):
            a.say({'out': k, 'pad': 'x' * 200})
        heard = 0
        while heard < 3000:
            if b.next(lambda o: 'out' in o, timeout=STEP) is None:
                break
            heard += 1
        check(heard == 3000, 'local chat during the outage: %d of 3000' % heard)
        w = a.who('tavern', 3, timeout=1)
        check(w is not None and w.get('partial') is True,
              'who during the outage says partial: %r' % w)
        rss1 = rss_kb(n1.proc.pid)
        check(rss1 - rss0 < 16 * 1024, 'memory bounded: %d KiB more' % (rss1 - rss0))
        text = scrape(mport)
        dropped = series(text, 'gmud_cluster_publish_dropped_total') or 0
        check(dropped >= 2900, 'the counters say what was dropped: %s' % dropped)
        check(series(text, 'gmud_cluster_up') == 0, 'gmud_cluster_up is 0')
        time.sleep(1)
    finally:
        redis.proc.send_signal(signal.SIGCONT)
    check(n1.log.wait_for(r'up: subscribed and registered', timeout=STEP) is not None,
          'n1 comes back by itself')
    deadline = time.monotonic() + STEP
    got = None
    while got is None and time.monotonic() < deadline:
        a.say({'back': 1})
        got = c.next(lambda o: 'back' in o, timeout=0.3)
    check(got is not None and got.get('node') == 'n1', 'cross-node chat resumes: %r' % got)
    text = scrape(mport)
    check((series(text, 'gmud_cluster_reconnects_total') or 0) >= 1, 'a reconnect is counted')
    # Garbage on the bus from another client of the same Redis.
    redis.command('PUBLISH', 'gmud:bus', b'\x00garbage')
    redis.command('PUBLISH', 'gmud:bus', b'GMC1' + b'\xff' * 40)
    deadline = time.monotonic() + STEP
    bad = 0
    while time.monotonic() < deadline and bad < 2:
        m = re.search(r'^gmud_cluster_refused_total\{reason="malformed"\} (\S+)$', scrape(mport),
                      re.M)
        bad = float(m.group(1)) if m else 0
        time.sleep(0.05)
    check(bad >= 2, 'garbage on the bus is refused and counted: %s' % bad)
    check(n1.log.wait_for(r'bus envelope refused', timeout=1) is not None or
          any('bus envelope refused' in l for l in n1.log.all), 'and logged')
    for p in (a, b, c):
        p.close()
    check(n1.stop() == 0 and n2.stop() == 0, 'nodes exit 0')
    redis.stop()


def cleanup():
    for p in PROCS:
        if p.poll() is None:
            try:
                p.send_signal(signal.SIGCONT)
            except OSError:
                pass
            p.kill()
            p.wait()
    PROCS.clear()


if __name__ == '__main__':
    if subprocess.run(['sh', '-c', 'command -v redis-server'], capture_output=True).returncode:
        print('FAIL: redis-server is not installed (scripts/install-deps.sh installs it)')
        sys.exit(1)
    sys.exit(run_tests([test_cross_node_chat, test_sigkill_node, test_redis_outage], cleanup))
