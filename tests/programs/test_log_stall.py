#!/usr/bin/env python3
"""Issue 10, "Logs never stall the loop": gmud-server whose stderr nobody reads.

Usage: test_log_stall.py <gmud-server> <gmud-client>

Each refused connection is logged. A server that wrote its log lines
straight to stderr stopped serving everyone once a pipe nobody read was
full: a few hundred refusals were enough. Now the lines go through a
bounded buffer that a thread writes out (programs/log_writer.c), and lines
that repeat are summarised (programs/log_summary.c).

  stuck_stderr      stderr a pipe the test does not read while one thread
                    opens and closes thousands of connections from 127.0.0.x
                    addresses (most of them refused): an honest client on
                    another address gets every echo back promptly, and the
                    server's RSS stays under RSS_LIMIT. Then the test reads
                    the pipe: a "log lines dropped" line or "... and N more
                    like it" summaries come out, and SIGTERM ends the
                    server, status 0, within a few seconds.
  exit_while_stuck  the same flood, then SIGTERM while the pipe is still full
                    and unread: the server exits 0 within a few seconds (its
                    log flush at exit waits about 1 s at most).
  summaries         stderr read: a burst of connections from one address,
                    most refused, writes at most --log-repeat lines a second
                    per event from that address, and the "... and N more
                    like it" counts add up with the lines to every
                    connection.

The servers get a free port found by the test (stderr is not read, so the
"listen" line cannot tell it). Every wait is bounded; a passing run takes
about 10 s. Python 3 standard library only. Exit 0 on success.
"""

import calendar
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import session_attack as sa
from progtest import STEP, Lines, check, check_clean, read_exact, run_tests

SERVER, CLIENT = sys.argv[1], sys.argv[2]
CHILDREN = []           # every server started, killed in the cleanup
HOST = '127.0.0.1'
HONEST = '127.0.0.250'  # the honest client's address; the flood uses others
FLOOD_ADDRS = 240       # 127.0.0.10 .. 127.0.0.249
FLOOD_MAX = 10000       # connections the flood opens at most ...
FLOOD_SECONDS = 4.0     # ... in this long at most
PROBE_LIMIT = 2.0       # seconds an honest echo may take
RSS_LIMIT = 64 << 20
# The flood's connections are refused after the first few from an address.
LIMITS = ['--app', 'echo', '--max-per-addr', '2', '--new-per-addr', '5',
          '--new-per-addr-burst', '5']
LOG_RE = re.compile(r'^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3})Z (error|warn|info|debug) '
                    r'(\S+) ([a-z_]+)(?:: (.*))?$')
MORE_RE = re.compile(r'^\.\.\. and (\d+) more like it$')
DROPPED_RE = re.compile(r'^(\d+) log lines dropped: the log sink was not taking them$')


def free_port():
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def start_server(*args, read_log=False):
    """gmud-server on a free port, stderr a pipe: read (a Lines reader in
    .log) if read_log, else left alone. Returns once the port accepts."""
    port = free_port()
    # Under ASan freed memory waits in a quarantine (256 MiB by default)
    # before it is used again: RSS would measure that, not the server.
    env = dict(os.environ)
    env['ASAN_OPTIONS'] = env.get('ASAN_OPTIONS', '') + ':quarantine_size_mb=4'
    proc = subprocess.Popen([SERVER, '--port', str(port), *args], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env=env)
    CHILDREN.append(proc)
    proc.port = port
    proc.log = Lines(proc.stderr) if read_log else None
    deadline = time.monotonic() + STEP
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            socket.create_connection((HOST, port), timeout=1).close()
            return proc
        except OSError:
            time.sleep(0.05)
    raise RuntimeError('gmud-server %s did not start (status %s)' % (args, proc.poll()))


def kill_all():
    for p in CHILDREN:
        if p.poll() is None:
            p.kill()
        try:
            p.wait(timeout=STEP)
        except subprocess.TimeoutExpired:
            pass
    CHILDREN.clear()


def stop(proc, timeout):
    """SIGTERM; the exit status and the seconds it took (None if it hung)."""
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        status = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return None, time.monotonic() - t0
    return status, time.monotonic() - t0


def rss(pid):
    """VmRSS of pid in bytes, or None once it is gone."""
    try:
        with open('/proc/%d/status' % pid) as f:
            for line in f:
                if line.startswith('VmRSS:'):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def connect_from(addr, port, timeout):
    s = socket.socket()
    s.settimeout(timeout)
    try:
        s.bind((addr, 0))
        s.connect((HOST, port))
    except OSError:
        s.close()
        raise
    return s


class Flood:
    """One thread opening and closing connections, a different 127.0.0.x
    address each time (of addrs from 127.0.0.first), until limit (at most
    FLOOD_MAX a FLOOD_SECONDS) or FLOOD_SECONDS or stop()."""

    def __init__(self, port, addrs=FLOOD_ADDRS, first=10, limit=FLOOD_MAX):
        self.port, self.addrs, self.first, self.limit = port, addrs, first, limit
        self.opened = self.failed = 0
        self.done = threading.Event()
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        start = time.monotonic()
        n = 0
        while n < self.limit and time.monotonic() < start + FLOOD_SECONDS and \
                not self.done.is_set():
            # Paced to spread FLOOD_MAX over FLOOD_SECONDS, for the honest
            # client to try all along.
            ahead = start + n * FLOOD_SECONDS / FLOOD_MAX - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)
            addr = '127.0.0.%d' % (self.first + n % self.addrs)
            n += 1
            try:
                connect_from(addr, self.port, 0.5).close()
                self.opened += 1
            except OSError:
                self.failed += 1
        self.done.set()

    def stop(self):
        self.done.set()
        self.t.join(timeout=STEP)


def echo_once(port, k):
    """One honest round trip in mode on (the server's default): the welcome,
    a message with the session header, its echo. Seconds taken, or raises."""
    t0 = time.monotonic()
    with connect_from(HONEST, port, PROBE_LIMIT) as s:
        head = read_exact(s, 6)
        welcome = json.loads(read_exact(s, int.from_bytes(head[4:], 'little')))
        sid = welcome['session_id']
        msg = json.dumps({'probe': k}).encode()
        s.sendall(sa.session_frame(sid, 0, msg))
        head = read_exact(s, 6)
        reply = sa.Frame(0, head[:4], read_exact(s, int.from_bytes(head[4:], 'little')))
        got = reply.session()
        if got is None or got[0] != sid or got[2] != msg:
            raise ValueError('probe %d: echo %r for %r' % (k, reply.payload, msg))
    return time.monotonic() - t0


def watch(proc, flood):
    """While the flood runs: an honest echo every 0.2 s, and the server's
    RSS. Returns (echo times, failures, the largest RSS)."""
    times, failures, top = [], [], 0
    k = 0
    while not flood.done.is_set():
        try:
            times.append(echo_once(proc.port, k))
        except (OSError, ValueError, EOFError, KeyError) as e:
            failures.append('probe %d: %r' % (k, e))
        k += 1
        top = max(top, rss(proc.pid) or 0)
        time.sleep(0.2)
    return times, failures, top


def flood_stuck(proc, what):
    """The flood with proc's stderr unread, watched by the honest client."""
    flood = Flood(proc.port)
    times, failures, top = watch(proc, flood)
    flood.stop()
    print('%s: %d connections opened (%d failed), %d echoes, slowest %.3fs, RSS %.1f MiB'
          % (what, flood.opened, flood.failed, len(times), max(times, default=0),
             top / 1048576.0), flush=True)
    check(flood.opened >= 500, '%s: the flood got %d connections through' % (what, flood.opened))
    check(not failures, '%s: every honest echo came back: %s' % (what, failures[:3]))
    check(len(times) >= 5 and max(times) < PROBE_LIMIT,
          '%s: honest echoes within %gs: %d, slowest %.3fs'
          % (what, PROBE_LIMIT, len(times), max(times, default=0)))
    check(0 < top < RSS_LIMIT, '%s: RSS %d bytes, under %d' % (what, top, RSS_LIMIT))
    return flood


# ---- the tests ---------------------------------------------------------------

def test_stuck_stderr():
    proc = start_server(*LIMITS)
    flood_stuck(proc, 'stuck stderr')
    # Now read: the writer catches up and says what it dropped or summarised.
    proc.log = Lines(proc.stderr)
    m = proc.log.wait_for(r' warn - log: \d+ log lines dropped|: \.\.\. and \d+ more like it$')
    check(m is not None, 'stuck stderr: once read, a drop count or a summary comes out')
    status, took = stop(proc, STEP)
    check(status == 0 and took < 5, 'stuck stderr: SIGTERM ends the server, status 0, in '
          '%.2fs (got %s)' % (took, status))
    lines = proc.log.drain()
    check_clean('\n'.join(lines), 'server with stuck stderr')
    parsed = [LOG_RE.match(l) for l in lines]
    check(all(parsed), 'stuck stderr: every line in the log format: %r'
          % [l for l, m in zip(lines, parsed) if not m][:3])
    reasons = [m.group(5) or '' for m in parsed if m]
    dropped = [DROPPED_RE.match(r) for r in reasons]
    print('stuck stderr: %d lines read, %d dropped, %d summaries'
          % (len(lines), sum(int(m.group(1)) for m in dropped if m),
             sum(1 for r in reasons if MORE_RE.match(r))))
    check(any(' shutdown' in l for l in lines), 'stuck stderr: the shutdown is logged')


def test_exit_while_stuck():
    proc = start_server(*LIMITS)
    flood_stuck(proc, 'exit while stuck')
    status, took = stop(proc, STEP)
    check(status == 0 and took < 5, 'exit while stuck: SIGTERM with stderr full and unread '
          'ends the server, status 0, in %.2fs (got %s)' % (took, status))
    lines = Lines(proc.stderr).drain()
    check(len(lines) > 100, 'exit while stuck: the pipe held lines: %d' % len(lines))
    check_clean('\n'.join(lines), 'server exiting with stuck stderr')


def key_of(m):
    """A log line's (event, address): the peer without its port."""
    peer = m.group(3)
    host = peer.rsplit(':', 1)[0] if re.search(r':\d+$', peer) else peer
    return m.group(4), host


def log_time(m):
    return calendar.timegm(time.strptime(m.group(1)[:19], '%Y-%m-%dT%H:%M:%S')) + \
        int(m.group(1)[20:]) / 1000.0


def test_summaries():
    """200 connections at once from 127.0.0.3 (5 admitted, the rest refused):
    per event from that address at most 5 lines a window of a second, and
    the summaries' counts with the lines make every connection."""
    proc = start_server(*LIMITS, read_log=True)
    n = 200
    flood = Flood(proc.port, addrs=1, first=3, limit=n)
    flood.t.join(timeout=STEP)
    check(flood.opened == n, 'summaries: %d connections from 127.0.0.3' % flood.opened)
    # Every connection is answered (closed) before the server's next window.
    time.sleep(1.5)
    status, _ = stop(proc, STEP)
    check(status == 0, 'summaries: server exits 0')
    lines = proc.log.drain()
    check_clean('\n'.join(lines), 'server summarising')
    shown, held, times = {}, {}, {}
    for line in lines:
        m = LOG_RE.match(line)
        if not check(m is not None, 'summaries: a log line: %r' % line):
            continue
        key = key_of(m)
        if key[1] != '127.0.0.3':
            continue
        more = MORE_RE.match(m.group(5) or '')
        if more:
            check(m.group(3) == '127.0.0.3', 'summaries: named by the address: %r' % line)
            held[key] = held.get(key, 0) + int(more.group(1))
        else:
            shown[key] = shown.get(key, 0) + 1
            times.setdefault(key, []).append(log_time(m))
    print('summaries: lines %s, held back %s' % (shown, held))
    for event in ('accept', 'reject'):
        key = (event, '127.0.0.3')
        span = times[key][-1] - times[key][0] if times.get(key) else 0
        check(shown.get(key, 0) <= 5 * (int(span) + 2),
              'summaries: %s: %d lines in %.2fs, 5 a second at most'
              % (event, shown.get(key, 0), span))
    total = sum(shown.get((e, '127.0.0.3'), 0) + held.get((e, '127.0.0.3'), 0)
                for e in ('accept', 'reject'))
    check(total == n, 'summaries: accepted and refused, written or counted, make %d: %d'
          % (n, total))
    check(held.get(('reject', '127.0.0.3'), 0) > 0, 'summaries: refusals summarised')
    closes = shown.get(('close', '127.0.0.3'), 0) + held.get(('close', '127.0.0.3'), 0)
    check(closes == n, 'summaries: every close written or counted: %d of %d' % (closes, n))


TESTS = [test_stuck_stderr, test_exit_while_stuck, test_summaries]


def main():
    return run_tests(TESTS, cleanup=kill_all)


if __name__ == '__main__':
    sys.exit(main())
