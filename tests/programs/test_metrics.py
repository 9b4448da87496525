#!/usr/bin/env python3
"""gmud-server --metrics (gmud/metrics.h): a scripted exchange over raw
sockets, then a scrape whose every counter is checked against what was
sent, received and refused; promtool checks the exposition; bad, huge, slow
and too many HTTP requests get a 4xx or the close and never disturb the
game's connections. Loopback only.

Usage: test_metrics.py <gmud-server> <gmud-client>

Needs promtool (Debian's prometheus package, which scripts/install-deps.sh
installs). Every wait is bounded (STEP). Exit 0 on success.
"""

import json
import re
import shutil
import socket
import struct
import subprocess
import sys
import time

from progtest import STEP, check, read_exact, run_tests
from test_programs import Server


def frame(payload, label=b'GMUD'):
    return label + struct.pack('<H', len(payload)) + payload


def read_frame(s):
    head = read_exact(s, 6)
    return head + read_exact(s, struct.unpack('<H', head[4:])[0])


def connect(port):
    s = socket.create_connection(('127.0.0.1', port), timeout=STEP)
    return s


def drain(s):
    """Everything until the server closes s."""
    data = b''
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return data
            data += chunk
    except (ConnectionResetError, socket.timeout):
        return data


def http(port, request, timeout=STEP):
    """(status or None, headers text, body) of one request, read to the close."""
    s = socket.create_connection(('127.0.0.1', port), timeout=timeout)
    s.sendall(request)
    raw = drain(s)
    s.close()
    m = re.match(rb'HTTP/1\.1 (\d{3}) [^\r]*\r\n(.*?)\r\n\r\n', raw, re.S)
    if m is None:
        return None, '', raw
    return int(m.group(1)), m.group(2).decode(), raw[m.end():]


def scrape(port):
    status, head, body = http(port, b'GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n')
    check(status == 200 and 'text/plain; version=0.0.4' in head,
          'scrape: 200 with the exposition content type (%s, %r)' % (status, head))
    return body.decode()


def series(text, name):
    m = re.search(r'^%s (\S+)$' % re.escape(name), text, re.M)
    return float(m.group(1)) if m else None


def metrics_server(*args):
    srv = Server('--app', 'echo', '--session', 'off', '--metrics', '0', *args)
    m = srv.log.wait_for(r'metrics on http://127\.0\.0\.1:(\d+)/metrics')
    srv.mport = int(m.group(1)) if m else None
    return srv


def test_counters():
    srv = metrics_server('--max-per-addr', '2')
    sent = received = 0
    a = connect(srv.port)
    for i in range(3):
        f = frame(json.dumps({'n': i}).encode())
        a.sendall(f)
        sent += len(f)
        got = read_frame(a)
        received += len(got)
        check(got == f, 'echo %d' % i)
    bad = frame(b'{bad json')
    a.sendall(bad)
    sent += len(bad)
    err = read_frame(a)
    received += len(err)
    check(b'"bad_json"' in err, 'bad JSON answered with its error packet: %r' % err)
    b = connect(srv.port)
    c = connect(srv.port)  # the third from 127.0.0.1: over --max-per-addr 2
    got = drain(c)
    received += len(got)
    check(b'"addr_limited"' in got, 'the third connection is refused: %r' % got)
    d_bytes = frame(b'{}', label=b'XXXX')
    b.sendall(d_bytes)  # a framing error: b is closed
    sent += len(d_bytes)
    got = drain(b)
    received += len(got)
    check(b'"bad_label"' in got, 'a bad label is answered and closed: %r' % got)
    b.close()  # the server's closes complete with our end of stream
    c.close()
    time.sleep(0.3)
    text = scrape(srv.mport)
    want = {
        'gmud_connections': 1,
        'gmud_connections_accepted_total': 2,
        'gmud_messages_received_total': 3,
        'gmud_bytes_received_total': sent,
        'gmud_bytes_sent_total': received,
        'gmud_rejected_total{code="bad_json"}': 1,
        'gmud_rejected_total{code="bad_label"}': 1,
        'gmud_rejected_total{code="replayed"}': 0,
        'gmud_connections_refused_total{reason="addr_limited"}': 1,
        'gmud_connections_refused_total{reason="server_full"}': 0,
        'gmud_connections_closed_total{reason="protocol_error"}': 1,
        'gmud_connections_closed_total{reason="address_limit"}': 1,
        'gmud_security_refused_total': 0,
        'gmud_queued_bytes': 0,
        'gmud_metrics_scrapes_total': 1,
    }
    for name, value in want.items():
        got = series(text, name)
        check(got == value, '%s is %s (got %s)' % (name, value, got))
    lag = series(text, 'gmud_loop_lag_seconds')
    check(lag is not None and 0 <= lag < 0.5, 'loop lag is a small gauge: %s' % lag)
    for line in text.splitlines():
        m = re.match(r'# TYPE (\S+) (\S+)', line)
        if m:
            check((m.group(2) == 'counter') == m.group(1).endswith('_total'),
                  'counters, and only they, end in _total: %s' % line)
    promtool = shutil.which('promtool')
    if check(promtool is not None, 'promtool is installed (Debian package prometheus)'):
        r = subprocess.run([promtool, 'check', 'metrics'], input=text, capture_output=True,
                           text=True, timeout=STEP)
        check(r.returncode == 0, 'promtool check metrics passes: %s %s' % (r.stdout, r.stderr))
    # The second scrape counts itself, and the counters stay.
    text = scrape(srv.mport)
    check(series(text, 'gmud_metrics_scrapes_total') == 2, 'the second scrape is counted')
    check(series(text, 'gmud_messages_received_total') == 3, 'counters do not reset on a scrape')
    a.close()
    check(srv.stop() == 0, 'counters: server exits 0')


def test_bad_requests():
    srv = metrics_server()
    game = connect(srv.port)
    cases = [
        (b'GARBAGE\r\n\r\n', 400),
        (b'GET / HTTP/1.1\r\n\r\n', 404),
        (b'POST /metrics HTTP/1.1\r\n\r\n', 405),
        (b'GET /metrics HTTP/2.0\r\n\r\n', 505),
        (b'GET /metrics HTTP/1.1\r\nX: ' + b'a' * 5000 + b'\r\n\r\n', 431),
        (b'\x16\x03\x01\x00\x05hello\r\n\r\n', 400),
    ]
    for req, want in cases:
        status, _, _ = http(srv.mport, req)
        check(status == want, 'request %r...: %s (got %s)' % (req[:20], want, status))
    status, head, body = http(srv.mport, b'HEAD /metrics HTTP/1.1\r\n\r\n')
    check(status == 200 and body == b'' and 'Content-Length: ' in head, 'HEAD: headers, no body')
    # A slow request: the game and other scrapes go on; it is closed at the
    # request timeout (5 s).
    slow = socket.create_connection(('127.0.0.1', srv.mport), timeout=STEP)
    slow.sendall(b'GET /metr')
    t0 = time.monotonic()
    f = frame(b'{"during":"slow"}')
    game.sendall(f)
    check(read_frame(game) == f and time.monotonic() - t0 < 1, 'the game answers meanwhile')
    check(series(scrape(srv.mport), 'gmud_messages_received_total') == 1,
          'another scrape is answered meanwhile')
    rest = drain(slow)
    took = time.monotonic() - t0
    check(rest == b'' and 4 <= took < 7.5, 'the slow request is closed at its timeout '
          '(%.1f s, %r)' % (took, rest))
    # More scrapers than max_clients (8): the ninth is closed unanswered.
    # (On a busy machine the server may not have accepted all eight when the
    # ninth comes: then the ninth is answered, and the test tries again.)
    # The eight are opened again when they near the request timeout (5 s),
    # after which the server closes them and frees their slots; then the
    # test waits a second for the server to have seen the closes.
    def eight():
        return [socket.create_connection(('127.0.0.1', srv.mport), timeout=STEP)
                for _ in range(8)]
    idle, opened = eight(), time.monotonic()
    deadline = time.monotonic() + 2 * STEP
    while True:
        time.sleep(0.2)
        status, _, raw = http(srv.mport, b'GET /metrics HTTP/1.1\r\n\r\n')
        if (status is None and raw == b'') or time.monotonic() > deadline:
            break
        if time.monotonic() - opened > 3.5:
            for s in idle:
                s.close()
            time.sleep(1)
            idle, opened = eight(), time.monotonic()
    check(status is None and raw == b'', 'the ninth scraper at once is closed: %s %r'
          % (status, raw[:40]))
    for s in idle:
        s.close()
    time.sleep(0.2)
    check(series(scrape(srv.mport), 'gmud_connections') == 1, 'then scrapes are served again')
    game.sendall(f)
    check(read_frame(game) == f, 'the game connection is untouched')
    game.close()
    check(srv.stop() == 0, 'bad requests: server exits 0')


def test_options():
    bad = subprocess.run([sys.argv[1], '--port', '0', '--metrics', 'tls:127.0.0.1:9'],
                         capture_output=True, text=True, timeout=STEP, stdin=subprocess.DEVNULL)
    check(bad.returncode == 2 and '--metrics' in bad.stderr,
          '--metrics tls:...: refused, exit 2 (%s, %s)' % (bad.returncode, bad.stderr.strip()))
    srv = Server('--app', 'echo', '--metrics', '[::1]:0')
    m = srv.log.wait_for(r'metrics on http://\[::1\]:(\d+)/metrics')
    if check(m is not None, '--metrics [::1]:0 listens on IPv6 loopback'):
        s = socket.create_connection(('::1', int(m.group(1))), timeout=STEP)
        s.sendall(b'GET /metrics HTTP/1.0\r\n\r\n')
        check(drain(s).startswith(b'HTTP/1.1 200 OK'), 'scraped over IPv6')
        s.close()
    check(srv.stop() == 0, 'options: server exits 0')


if __name__ == '__main__':
    sys.exit(run_tests([test_counters, test_bad_requests, test_options]))
