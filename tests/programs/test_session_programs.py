#!/usr/bin/env python3
"""Sessions end to end: gmud-server and gmud-client against the lecture's
approach 6 (tests/lecture/session_*.py) and against replay and tampering
(tests/programs/session_attack.py).

Usage: test_session_programs.py <gmud-server> <gmud-client>

  1. mode lecture, the lecture's approach 6 byte for byte, in both roles:
     a. session_server.py          <-> gmud-client --session lecture
     b. gmud-server --session lecture --app clock <-> session_client.py
     c. session_client.py --bad-seq / --bad-session against gmud-server,
        with and without --session-carry-on; a reply from ahead (skipped)
     d. gmud-client --reply-data: json.dumps' escaping, byte for byte
     e. the same exchanges through tests/lecture/proxy.py (random splits)
  2. mode on (gmud's own, the default) with gmud-server --app chat:
     a. a recorded client stream replayed verbatim into a new connection
     b. the recording edited (duplicate, reorder, skip, another session's id)
        and sent under the new connection's own session id
  3. mismatched modes fail clearly and within a bounded time.

docs/PROTOCOL.md sections 6 (sessions) and 7 (spam limits) say what is
expected. gmud-servers bind --port 0 and the test reads the port from their
"listen" log line; the lecture's server and the proxies are given port 0
and print the port they bound. Every wait is bounded (STEP, 10 s, unless
said otherwise); a passing run takes a few seconds. Python 3 standard
library only. Exit 0 on success. GMUD_TEST_ONLY=<part of a test's name>
runs only the matching tests.
"""

import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

from progtest import CTIME_RE, STEP, check, check_clean, read_exact, run_tests

import session_attack as sa

SERVER, CLIENT = sys.argv[1], sys.argv[2]
HERE = os.path.dirname(os.path.abspath(__file__))
LECTURE = os.path.join(HERE, '..', 'lecture')
PYTHON = sys.executable
ATTACK = os.path.join(HERE, 'session_attack.py')
MAX_SESSION_ID = 2 ** 53 - 1
DEFAULT_REPLY_DATA = 'this is test data'
VALID = 'Client valid'
WRONG_SEQ = 'Session data wrong - replay hack?'
WRONG_ID = 'Invalid Packet'
# How long a mismatched client may take to give up (test 3b): its stdin at
# its end (--wait is 1 s), and its stdin left open (it has nothing to go on
# but a time limit of its own).
MISMATCH_LIMIT = 5.0
MISMATCH_LIMIT_OPEN_STDIN = STEP + 2

CHILDREN = []
OPEN = object()      # Proc(stdin=OPEN): a pipe left open
# The lecture programs import lecture_args: keep __pycache__ out of the tree.
ENV = dict(os.environ, PYTHONDONTWRITEBYTECODE='1', PYTHONIOENCODING='utf-8')


# ---- processes ---------------------------------------------------------------

class Proc:
    """A child process; its stdout and stderr lines are collected by threads
    so that every wait has a timeout. stdin: None (/dev/null), a str written
    and then closed, or OPEN (a pipe left open until close_stdin())."""

    def __init__(self, name, argv, stdin=None):
        self.name = name
        self.argv = [str(a) for a in argv]
        self.out, self.err = [], []
        self.ended = {'out': False, 'err': False}
        self.cond = threading.Condition()
        self.timed_out = False
        self.p = subprocess.Popen(
            self.argv, env=ENV,
            stdin=subprocess.DEVNULL if stdin is None else subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        CHILDREN.append(self)
        for key, pipe, lines in (('out', self.p.stdout, self.out),
                                 ('err', self.p.stderr, self.err)):
            threading.Thread(target=self._read, args=(key, pipe, lines), daemon=True).start()
        if isinstance(stdin, str):
            try:
                self.p.stdin.write(stdin.encode('utf-8'))
                self.p.stdin.close()
            except OSError:
                pass

    def _read(self, key, pipe, lines):
        for raw in iter(pipe.readline, b''):
            with self.cond:
                lines.append(raw.decode('utf-8', 'replace').rstrip('\n'))
                self.cond.notify_all()
        pipe.close()
        with self.cond:
            self.ended[key] = True
            self.cond.notify_all()

    def wait_line(self, pattern, stream='out', start=0, timeout=STEP):
        """(index, match) of the first line from index start of stdout (or
        stderr) that matches pattern; (None, None) at the timeout or the
        stream's end without one."""
        rx = re.compile(pattern)
        lines = self.out if stream == 'out' else self.err
        deadline = time.monotonic() + timeout
        with self.cond:
            i = start
            while True:
                while i < len(lines):
                    m = rx.search(lines[i])
                    if m:
                        return i, m
                    i += 1
                left = deadline - time.monotonic()
                if left <= 0 or self.ended[stream]:
                    return None, None
                self.cond.wait(min(left, 0.05))

    def lines_matching(self, pattern, stream='err'):
        rx = re.compile(pattern)
        with self.cond:
            return [l for l in (self.out if stream == 'out' else self.err) if rx.search(l)]

    def close_stdin(self):
        try:
            self.p.stdin.close()
        except (OSError, AttributeError):
            pass

    def wait(self, timeout=STEP):
        """The exit status, or None if the process had to be killed after
        timeout seconds. Its output is complete when this returns."""
        try:
            self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            self.timed_out = True
            self.p.kill()
            self.p.wait(STEP)
        with self.cond:
            self.cond.wait_for(lambda: all(self.ended.values()), STEP)
        if self.name.startswith('gmud'):
            check_clean('\n'.join(self.err), self.name)
        return None if self.timed_out else self.p.returncode

    def stop(self):
        """SIGTERM (a gmud-server flushes and exits 0); the exit status."""
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
        return self.wait()

    def describe(self):
        text = '\n  $ %s\n    exit status: %s%s\n' % (
            ' '.join(self.argv), self.p.poll(), ' (killed: timed out)' if self.timed_out else '')
        with self.cond:
            text += ''.join('    out| %s\n' % l for l in self.out[-40:])
            text += ''.join('    err| %s\n' % l for l in self.err[-40:])
        return text


def report(*procs):
    return ''.join(p.describe() for p in procs)


def kill_all():
    for p in CHILDREN:
        if p.p.poll() is None:
            p.p.kill()
            p.p.wait()
    CHILDREN.clear()


def gmud_server(*args):
    """gmud-server on a port of its choosing; .port is read from its log.
    Every log line is written (--log-repeat 0): the tests look for them."""
    srv = Proc('gmud-server', [SERVER, '--port', '0', '--log-repeat', '0', *args])
    _, m = srv.wait_line(r'listen.* port (\d+)', stream='err')
    if m is None:
        raise RuntimeError('gmud-server %s did not start:%s' % (args, srv.describe()))
    srv.port = int(m.group(1))
    return srv


def gmud_client(port, *args, stdin=None):
    return Proc('gmud-client', [CLIENT, '--port', port, *args], stdin=stdin)


def lecture_server(*args):
    """The lecture's approach-6 server, session_server.py, on port 0."""
    srv = Proc('session_server.py', [PYTHON, os.path.join(LECTURE, 'session_server.py'),
                                     '127.0.0.1', '0', '--timeout', STEP, *args])
    _, m = srv.wait_line(r'^Listening on [\d.]+:(\d+)$')
    if m is None:
        raise RuntimeError('session_server.py did not start:%s' % srv.describe())
    srv.port = int(m.group(1))
    return srv


def lecture_client(port, *args):
    return Proc('session_client.py', [PYTHON, os.path.join(LECTURE, 'session_client.py'),
                                      '127.0.0.1', port, '--timeout', '5', *args])


def splitting_proxy(target_port, seed, max_chunk):
    """tests/lecture/proxy.py: re-chunks both directions at random points."""
    px = Proc('proxy.py', [PYTHON, os.path.join(LECTURE, 'proxy.py'), '0', target_port,
                           '--seed', seed, '--max-chunk', max_chunk, '--lifetime', '30'])
    _, m = px.wait_line(r'^proxy listening on [\d.]+:(\d+)$')
    if m is None:
        raise RuntimeError('proxy.py did not start:%s' % px.describe())
    px.port = int(m.group(1))
    return px


# ---- reading the lecture programs' output --------------------------------------

def lecture_server_output(srv):
    """What session_server.py printed: the welcome object, the data packets
    and replies as raw JSON text, the verdict lines and any other line."""
    welcome, sent, received, verdicts, other = None, [], [], [], []
    for line in srv.out:
        if line.startswith('Sent '):
            text = line[len('Sent '):]
            if welcome is None:
                welcome = json.loads(text)
            else:
                sent.append(text)
        elif line.startswith('Received: '):
            received.append(line[len('Received: '):])
        elif line in (VALID, WRONG_SEQ, WRONG_ID):
            verdicts.append(line)
        elif not (line.startswith('Listening on ') or line.startswith('Connected by ')):
            other.append(line)
    return welcome, sent, received, verdicts, other


def lecture_client_packets(cl):
    """session_client.py --show-data prints each packet as three lines: its
    length, its message (or the object), its JSON text as received. Returns
    [(length, second line, raw text)]."""
    out = cl.out
    if len(out) % 3:
        return None
    return [(out[i], out[i + 1], out[i + 2]) for i in range(0, len(out), 3)]


def check_welcome_text(raw, what):
    """The welcome, byte for byte as json.dumps writes it (6.2)."""
    try:
        obj = json.loads(raw)
        sid = obj['session_id']
    except (ValueError, KeyError, TypeError):
        return check(False, '%s: not a welcome: %r' % (what, raw)) and None
    ok = check(isinstance(sid, int) and 1 <= sid <= MAX_SESSION_ID,
               '%s: session id %r out of 1..2^53-1' % (what, sid))
    ok = check(raw == json.dumps({'session_id': sid, 'sequence_id': 0}),
               "%s: welcome is not json.dumps' bytes: %r" % (what, raw)) and ok
    return sid if ok else None


def check_clock_text(raw, n, what):
    """The lecture's approach-4 object as json.dumps writes it, value n."""
    try:
        obj = json.loads(raw)
    except ValueError:
        return check(False, '%s: not JSON: %r' % (what, raw))
    ok = check(isinstance(obj, dict) and set(obj) == {'time', 'message', 'value'},
               '%s: not the lecture object: %r' % (what, raw))
    if not ok:
        return False
    ok = check(raw == json.dumps({'time': obj['time'], 'message': obj['message'],
                                  'value': obj['value']}),
               "%s: not json.dumps' bytes: %r" % (what, raw))
    ok = check(obj['value'] == n, '%s: value %r, expected %d' % (what, obj['value'], n)) and ok
    ok = check(CTIME_RE.match(str(obj['time'])) is not None
               and obj['message'] == '%d:%s' % (n, obj['time']),
               '%s: message %r is not value:ctime' % (what, obj['message'])) and ok
    return ok


def lecture_reply(sid, n, data=DEFAULT_REPLY_DATA):
    return json.dumps({'session_id': sid, 'sequence_id': n, 'data': data})


def security_line(srv, code, expected, got, start=0, timeout=STEP):
    """The server's security log line for code, naming the expected and
    received values (6.5 step 2); the line, or None."""
    _, m = srv.wait_line(r'\bsecurity: %s\b.*\bexpected\D*\b%s\b.*\bgot\D*\b%s\b'
                         % (code, expected, got), stream='err', start=start, timeout=timeout)
    return m.string if m else None


# ---- 1. mode lecture: the lecture's approach 6 ---------------------------------

def check_gmud_client_clock_lines(cl, sent, count, what):
    """gmud-client printed count compact JSON lines, the server's objects."""
    ok = check(len(cl.out) == count and len(sent) == count,
               '%s: expected %d messages printed and sent:%s' % (what, count, report(cl)))
    for n, (line, raw) in enumerate(zip(cl.out, sent)):
        try:
            obj = json.loads(line)
        except ValueError:
            ok = check(False, '%s: gmud-client printed non-JSON %r' % (what, line))
            continue
        ok = check(obj == json.loads(raw) and obj.get('value') == n,
                   '%s: message %d is %r, the server sent %r' % (what, n, line, raw)) and ok
        ok = check(line == json.dumps(obj, separators=(',', ':'), ensure_ascii=False),
                   '%s: not compact JSON: %r' % (what, line)) and ok
    return ok


def test_lecture_server_to_gmud_client():
    """1a. The lecture's approach-6 server (session_server.py --count 5)
    against gmud-client --session lecture: gmud-client takes the welcome,
    prints the 5 data packets (compact JSON, values 0..4) and exits 0 when
    the server closes; the server prints "Client valid" 5 times and nothing
    else, and each reply it received is exactly json.dumps({"session_id":
    <its id>, "sequence_id": n, "data": "this is test data"}), n = 1..5."""
    srv = lecture_server('--count', '5', '--show-data')
    cl = gmud_client(srv.port, '--session', 'lecture', '--wait', '5')
    status = cl.wait()
    sstatus = srv.wait()
    check(status == 0, '1a: gmud-client exits 0:%s' % report(cl, srv))
    check(sstatus == 0 and srv.err == [], '1a: session_server.py exits 0, quietly:%s'
          % report(srv))
    welcome, sent, received, verdicts, other = lecture_server_output(srv)
    check(verdicts == [VALID] * 5 and other == [],
          '1a: the server prints "Client valid" 5 times and nothing else:%s' % report(srv))
    if check(welcome is not None, '1a: the server sent its welcome'):
        sid = welcome['session_id']
        expected = [lecture_reply(sid, n) for n in range(1, 6)]
        check(received == expected, "1a: the replies are json.dumps' bytes:\n  got      %r"
              "\n  expected %r" % (received, expected))
    check_gmud_client_clock_lines(cl, sent, 5, '1a')


def test_gmud_server_to_lecture_client():
    """1b. gmud-server --app clock --session lecture --interval 0 --count 5
    against the lecture's approach-6 client (session_client.py): the client
    gets the welcome (json.dumps' bytes, an id in 1..2^53-1) and 5 data
    packets, the lecture's object with value 0..4 as json.dumps writes it,
    and sees the server close; gmud-server prints "Client valid" 5 times on
    stdout, logs no security event and exits 0 by itself."""
    srv = gmud_server('--app', 'clock', '--session', 'lecture', '--interval', '0',
                      '--count', '5')
    cl = lecture_client(srv.port, '--show-data')
    status = cl.wait()
    sstatus = srv.wait()
    check(status == 0, '1b: session_client.py exits 0:%s' % report(cl, srv))
    check(sstatus == 0, '1b: gmud-server exits 0 after --count 5:%s' % report(srv))
    check(srv.out == [VALID] * 5, '1b: gmud-server prints "Client valid" 5 times:%s'
          % report(srv))
    check(srv.lines_matching(r'\bsecurity:') == [], '1b: no security event:%s' % report(srv))
    packets = lecture_client_packets(cl)
    if not check(packets is not None and len(packets) == 6,
                 '1b: the client got a welcome and 5 packets:%s' % report(cl)):
        return
    check_welcome_text(packets[0][2], '1b')
    for n, (length, message, raw) in enumerate(packets[1:]):
        check_clock_text(raw, n, '1b: packet %d' % n)
        check(length == str(len(raw.encode('utf-8'))) and message == json.loads(raw)['message'],
              '1b: the client printed length and message for packet %d: %r %r'
              % (n, length, message))


def test_lecture_tampering():
    """1c. session_client.py sends one wrong reply (the 2nd) to gmud-server
    in mode lecture. --bad-seq 2 (the 2nd reply carries sequence_id 1, as a
    replayed reply would) is refused as replayed, --bad-session 2 (session
    id + 1) as bad_session. Without --session-carry-on the server logs a
    security event naming the code with the value expected and the value
    received, prints the lecture's line ("Session data wrong - replay hack?"
    or "Invalid Packet") after one "Client valid", sends an error packet with
    that code and closes: the client has exactly welcome, data 0, data 1,
    the error packet, then the end (exit 8: an error packet arrived). With
    --session-carry-on the server prints the lecture's lines (Client valid,
    the verdict, Client valid x3), sends no error packet and the exchange
    completes: the client gets values 0..4 and the server exits 0."""
    cases = [('--bad-seq', WRONG_SEQ, 'replayed'), ('--bad-session', WRONG_ID, 'bad_session')]
    for opt, verdict, code in cases:
        for carry_on in (False, True):
            what = '1c %s 2%s' % (opt, ' --session-carry-on' if carry_on else '')
            srv = gmud_server('--app', 'clock', '--session', 'lecture', '--interval', '0',
                              '--count', '5', *(['--session-carry-on'] if carry_on else []))
            cl = lecture_client(srv.port, '--show-data', opt, '2')
            status = cl.wait()
            packets = lecture_client_packets(cl) or []
            sid = check_welcome_text(packets[0][2], what) if packets else None
            if code == 'replayed':
                expected, got = 2, 1
            else:
                expected, got = sid, (sid or 0) + 1
            log = security_line(srv, code, expected, got)
            check(log is not None, '%s: a security line naming %s, expected %s, got %s:%s'
                  % (what, code, expected, got, report(srv)))
            if carry_on:
                sstatus = srv.wait()
                check(status == 0, '%s: the client completes, exit 0:%s' % (what, report(cl)))
                check(sstatus == 0, '%s: gmud-server exits 0 after --count 5:%s'
                      % (what, report(srv)))
                check(srv.out == [VALID, verdict, VALID, VALID, VALID],
                      "%s: the lecture's lines:%s" % (what, report(srv)))
                ok = check(len(packets) == 6, '%s: welcome and 5 data packets, no error:%s'
                           % (what, report(cl)))
                for n, p in enumerate(packets[1:] if ok else []):
                    check_clock_text(p[2], n, '%s: packet %d' % (what, n))
                check(not srv.lines_matching(r'session violation'),
                      '%s: the connection is not closed for it:%s' % (what, report(srv)))
            else:
                _, closed = srv.wait_line(r'close: .*session violation', stream='err')
                check(closed is not None, '%s: the connection is closed as a session '
                      'violation:%s' % (what, report(srv)))
                sstatus = srv.stop()        # serves others: still running
                check(sstatus == 0, '%s: gmud-server exits 0 on SIGTERM:%s' % (what, report(srv)))
                check(srv.out == [VALID, verdict],
                      '%s: gmud-server prints "Client valid", then "%s":%s'
                      % (what, verdict, report(srv)))
                check(status == 8, '%s: the client sees an error packet and the end '
                      '(exit 8; 4 is its timeout):%s' % (what, report(cl)))
                ok = check(len(packets) == 4, '%s: welcome, data 0, data 1, the error '
                           'packet, nothing after:%s' % (what, report(cl)))
                if ok:
                    for n in (0, 1):
                        check_clock_text(packets[n + 1][2], n, '%s: packet %d' % (what, n))
                    err = json.loads(packets[3][2])
                    check(isinstance(err.get('error'), str) and err.get('code') == code,
                          '%s: an error packet with code %s: %r' % (what, code, packets[3][2]))


def read_frame(sock):
    """One GMUD frame's payload, read the lecture's way; None at the end."""
    try:
        head = read_exact(sock, 6)
    except EOFError as e:
        if e.args[0] == 0:
            return None
        raise
    check(head[:4] == b'GMUD', 'a GMUD label: %r' % head)
    return read_exact(sock, struct.unpack('<H', head[4:])[0])


def test_lecture_reply_from_ahead():
    """1c (skipped). A reply that answers a data packet not yet sent: to the
    first data packet, sequence_id 2 instead of 1 (written by hand: the
    lecture's client has no option for it). gmud-server in mode lecture
    prints "Session data wrong - replay hack?", logs a security line naming
    skipped, expected 1, got 2, sends an error packet with code skipped and
    closes."""
    srv = gmud_server('--app', 'clock', '--session', 'lecture', '--interval', '0',
                      '--count', '5')
    with socket.create_connection(('127.0.0.1', srv.port), timeout=STEP) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        welcome = read_frame(s)
        sid = check_welcome_text(welcome.decode('utf-8'), '1c skipped')
        check_clock_text(read_frame(s).decode('utf-8'), 0, '1c skipped: packet 0')
        s.sendall(sa.frame(lecture_reply(sid, 2).encode('utf-8')))
        err = read_frame(s)
        end = read_frame(s)
    try:
        obj = json.loads(err)
    except (TypeError, ValueError):
        obj = None
    check(isinstance(obj, dict) and obj.get('code') == 'skipped' and 'error' in obj,
          '1c skipped: an error packet with code skipped: %r' % (err,))
    check(end is None, '1c skipped: then the end of the stream: %r' % (end,))
    check(security_line(srv, 'skipped', 1, 2) is not None,
          '1c skipped: a security line naming skipped, expected 1, got 2:%s' % report(srv))
    check(srv.stop() == 0 and srv.out == [WRONG_SEQ],
          '1c skipped: gmud-server prints "%s" only, exits 0:%s' % (WRONG_SEQ, report(srv)))


def test_lecture_reply_data():
    """1d. gmud-client --session lecture --reply-data TEXT: the lecture's
    server receives replies whose data is TEXT escaped exactly as json.dumps
    escapes it (6.4): 'hello é' arrives as "hello \\u00e9"; quotes,
    backslash, tab, DEL and a character above U+FFFF (a surrogate pair) as
    json.dumps writes them."""
    for text in ('hello \u00e9', 'tab\t"q" \\ \U0001F600 \x7f ~'):
        what = '1d --reply-data %r' % text
        srv = lecture_server('--count', '2', '--show-data')
        cl = gmud_client(srv.port, '--session', 'lecture', '--reply-data', text)
        status = cl.wait()
        sstatus = srv.wait()
        check(status == 0 and sstatus == 0, '%s: both exit 0:%s' % (what, report(cl, srv)))
        welcome, _, received, verdicts, _ = lecture_server_output(srv)
        if not check(welcome is not None and verdicts == [VALID] * 2,
                     '%s: two valid replies:%s' % (what, report(srv))):
            continue
        expected = [lecture_reply(welcome['session_id'], n, text) for n in (1, 2)]
        check(received == expected, "%s: json.dumps' escaping:\n  got      %r\n  expected %r"
              % (what, received, expected))
        if text.startswith('hello'):
            check(all('"data": "hello \\u00e9"' in r for r in received),
                  '%s: é as \\u00e9: %r' % (what, received))


def test_lecture_through_proxy():
    """1e. Mode lecture through tests/lecture/proxy.py, which cuts both
    directions at random points (down to 1-byte writes): gmud-server and
    gmud-client still do the 5 exchanges (5 messages 0..4 printed, 5
    "Client valid", both exit 0); so do the lecture's server with
    gmud-client and gmud-server with the lecture's client."""
    for seed, max_chunk in ((1, 256), (2, 8)):
        what = '1e gmud<->gmud seed %d max-chunk %d' % (seed, max_chunk)
        srv = gmud_server('--app', 'clock', '--session', 'lecture', '--interval', '0',
                          '--count', '5')
        px = splitting_proxy(srv.port, seed, max_chunk)
        cl = gmud_client(px.port, '--session', 'lecture', '--wait', '5')
        status = cl.wait()
        sstatus = srv.wait()
        px.stop()
        check(status == 0 and sstatus == 0, '%s: both exit 0:%s' % (what, report(cl, srv)))
        check(srv.out == [VALID] * 5, '%s: 5 x "Client valid":%s' % (what, report(srv)))
        values = []
        for line in cl.out:
            try:
                values.append(json.loads(line).get('value'))
            except (ValueError, AttributeError):
                values.append(line)
        check(values == [0, 1, 2, 3, 4], '%s: messages 0..4 printed:%s' % (what, report(cl)))

    what = '1e session_server.py<->gmud-client'
    srv = lecture_server('--count', '5', '--show-data')
    px = splitting_proxy(srv.port, 3, 8)
    cl = gmud_client(px.port, '--session', 'lecture', '--wait', '5')
    status = cl.wait()
    sstatus = srv.wait()
    px.stop()
    welcome, sent, received, verdicts, _ = lecture_server_output(srv)
    check(status == 0 and sstatus == 0 and verdicts == [VALID] * 5,
          '%s: 5 valid exchanges:%s' % (what, report(cl, srv)))
    check_gmud_client_clock_lines(cl, sent, 5, what)

    what = '1e gmud-server<->session_client.py'
    srv = gmud_server('--app', 'clock', '--session', 'lecture', '--interval', '0',
                      '--count', '5')
    px = splitting_proxy(srv.port, 4, 8)
    cl = lecture_client(px.port, '--show-data')
    status = cl.wait()
    sstatus = srv.wait()
    px.stop()
    packets = lecture_client_packets(cl) or []
    check(status == 0 and sstatus == 0 and srv.out == [VALID] * 5 and len(packets) == 6,
          '%s: 5 valid exchanges:%s' % (what, report(cl, srv)))


# ---- 2. mode on: replay and tampering ------------------------------------------

def observer(port):
    """A gmud-client connected straight to the chat server, stdin left open:
    it prints every message relayed to it. .sid is its session id (from its
    "welcomed" log line)."""
    obs = gmud_client(port, '--wait', '0.1', stdin=OPEN)
    _, m = obs.wait_line(r'session: welcomed: session (\d+), on mode', stream='err')
    if m is None:
        raise RuntimeError('the observer was not welcomed:%s' % obs.describe())
    obs.sid = int(m.group(1))
    return obs


def barrier(port, obs, token):
    """Sends {"barrier": token} from a fresh direct client and waits until
    the observer prints it; the index of that line. The server relays in
    order into the observer's one connection, so every message relayed
    before (from connections already closed) has been printed by then."""
    b = gmud_client(port, '--wait', '0', stdin='{"barrier": "%s"}\n' % token)
    check(b.wait() == 0, 'barrier client exits 0:%s' % report(b))
    i, _ = obs.wait_line(r'"barrier":"%s"' % token)
    if i is None:
        raise RuntimeError('the observer never printed barrier %s:%s' % (token, obs.describe()))
    return i


def record(port, lines, out_dir):
    """A gmud-client sends lines through session_attack.py's recording
    proxy; returns (client->server bytes, server->client bytes, the path of
    the client->server recording)."""
    px = Proc('session_attack.py proxy', [PYTHON, ATTACK, 'proxy', port, '--out', out_dir,
                                          '--connections', '1', '--lifetime', '30'])
    _, m = px.wait_line(r'^proxy listening on [\d.]+:(\d+)$')
    if m is None:
        raise RuntimeError('recording proxy did not start:%s' % px.describe())
    talker = gmud_client(int(m.group(1)), '--wait', '0.1',
                         stdin=''.join(l + '\n' for l in lines))
    check(talker.wait() == 0, 'the recorded client exits 0:%s' % report(talker))
    check(px.wait() == 0, 'the recording proxy ends after one connection:%s' % report(px))
    up_path = os.path.join(out_dir, 'conn-0.up')
    with open(up_path, 'rb') as f:
        up = f.read()
    with open(os.path.join(out_dir, 'conn-0.down'), 'rb') as f:
        down = f.read()
    return up, down, up_path


def replay(port, path, *args):
    """session_attack.py replay: a NEW connection, the stream sent into it;
    its JSON report."""
    r = Proc('session_attack.py replay', [PYTHON, ATTACK, 'replay', port, path,
                                          '--read-time', '3', *args])
    status = r.wait()
    if not check(status == 0, 'session_attack.py replay runs:%s' % report(r)):
        return None
    return json.loads('\n'.join(r.out))


def check_refused(r, code, what):
    """A replay report: the new connection's welcome, then one error packet
    with code, carrying the session header of the new session and the
    server's next sequence, 1; then the server closed."""
    if not check(r is not None, '%s: a replay report' % what):
        return False
    ok = check(r['errors'] == [code], '%s: one error packet, code %s: %s'
               % (what, code, json.dumps(r['frames'])))
    ok = check(r['closed'] and not r['open'], '%s: the server closed the connection: '
               'closed %s, reset %s, open %s' % (what, r['closed'], r['reset'], r['open'])) and ok
    frames = r['frames']
    ok = check(len(frames) == 2 and frames[0].get('kind') == 'welcome'
               and frames[1].get('session_id') == r['session_id']
               and frames[1].get('sequence') == 1,
               '%s: welcome, then the error packet under the new session, sequence 1: %s'
               % (what, json.dumps(frames))) and ok
    return ok


def relayed_between(obs, start, end):
    """The non-barrier objects the observer printed in out[start:end]."""
    got = []
    for line in obs.out[start:end]:
        try:
            obj = json.loads(line)
        except ValueError:
            got.append({'unparsed': line})
            continue
        if 'barrier' not in obj:
            got.append(obj)
    return got


def test_replay_new_connection():
    """2a. The issue's test. A gmud-client sends one chat message through
    the recording proxy to gmud-server --app chat (mode on, the default); an
    observing gmud-client connected directly prints it once. The recorded
    client->server stream, replayed verbatim into a NEW connection, carries
    the recorded connection's session id: the server refuses it (bad_session)
    with an error packet under the new session's header and closes; the
    observer still has the message exactly once; the server logs a security
    line naming bad_session, expected <the new id>, got <the recorded id>."""
    srv = gmud_server('--app', 'chat')
    obs = observer(srv.port)
    token = 'replay-me-%d' % os.getpid()
    with tempfile.TemporaryDirectory(prefix='gmud-replay-') as tmp:
        up, down, up_path = record(srv.port, ['{"say": "%s"}' % token], tmp)
        recorded_sid = sa.session_id_of(down)
        frames = sa.frames_of(up)
        check(len(frames) == 1 and frames[0].session() is not None
              and frames[0].session()[:2] == (recorded_sid, 0),
              '2a: one packet recorded, session %d, sequence 0: %r' % (recorded_sid, frames))
        first = barrier(srv.port, obs, 'b1')
        seen = [l for l in obs.out if token in l]
        check(len(seen) == 1, '2a: the observer prints the message once: %r' % obs.out)

        r = replay(srv.port, up_path)
        if check_refused(r, 'bad_session', '2a verbatim replay'):
            check(r['session_id'] != recorded_sid, '2a: the new connection has a new id')
            log = security_line(srv, 'bad_session', r['session_id'], recorded_sid)
            check(log is not None, '2a: a security line naming bad_session, expected %s, '
                  'got %s:%s' % (r['session_id'], recorded_sid, report(srv)))
        second = barrier(srv.port, obs, 'b2')
        check(relayed_between(obs, first + 1, second) == [],
              '2a: nothing relayed from the replay: %r' % obs.out[first + 1:second])
        check([l for l in obs.out if token in l] == seen,
              '2a: the observer still has the message exactly once: %r' % obs.out)
    obs.close_stdin()
    check(obs.wait() == 0, '2a: the observer was left alone (exit 0):%s' % report(obs))
    check(srv.stop() == 0, '2a: gmud-server exits 0:%s' % report(srv))


def test_tampered_stream():
    """2b. An attacker who can read the welcome (it is not encrypted) replays
    a recorded 3-message stream (sequences 0, 1, 2) under the new
    connection's own id (--adopt-session). Unedited, it is accepted: the
    session id alone does not stop it, which shows what each edit is refused
    for. Edited, each is refused, with the server's error packet, close and
    security log line: duplicate:1 (0 1 1 2) replayed, expected 2 got 1;
    swap:1:2 (0 2 1) skipped, expected 1 got 2; skip:1 (0 2) skipped,
    expected 1 got 2; cross:1:<the observer's live session id> bad_session,
    expected <new id> got <observer's id>. The observer sees from each
    attack only the packets before the refused one, in order: never a
    duplicate, never out of order."""
    srv = gmud_server('--app', 'chat')
    obs = observer(srv.port)
    says = ['m%d-%d' % (i, os.getpid()) for i in range(3)]
    cases = [
        # op, code, the recorded messages relayed, (expected, got) in the log
        ('duplicate:1', 'replayed', [0, 1], (2, 1)),
        ('swap:1:2', 'skipped', [0], (1, 2)),
        ('skip:1', 'skipped', [0], (1, 2)),
        ('cross:1:%d' % obs.sid, 'bad_session', [0], ('NEW', obs.sid)),
    ]
    with tempfile.TemporaryDirectory(prefix='gmud-tamper-') as tmp:
        up, _, up_path = record(srv.port, ['{"say": "%s"}' % s for s in says], tmp)
        check([f.session()[1] for f in sa.frames_of(up)] == [0, 1, 2],
              '2b: three packets recorded, sequences 0, 1, 2')
        mark = barrier(srv.port, obs, 'start')

        # The control: all three accepted and relayed in order.
        r = replay(srv.port, up_path, '--adopt-session', '--read-time', '0.5')
        check(r is not None and r['errors'] == [] and r['open'],
              '2b: the adopted stream, unedited, is accepted: %s' % json.dumps(r))
        end = barrier(srv.port, obs, 'control')
        got = relayed_between(obs, mark + 1, end)
        check([o.get('say') for o in got] == says and len({o.get('from') for o in got}) == 1,
              '2b control: the observer gets the three messages once, in order: %r' % got)
        mark = end

        for op, code, accepted, (expected, got_value) in cases:
            what = '2b %s' % op
            r = replay(srv.port, up_path, '--adopt-session', '--op', op)
            if check_refused(r, code, what):
                if expected == 'NEW':
                    expected = r['session_id']
                log = security_line(srv, code, expected, got_value)
                check(log is not None, '%s: a security line naming %s, expected %s, got %s:%s'
                      % (what, code, expected, got_value, report(srv)))
            end = barrier(srv.port, obs, 'after-' + op.split(':')[0])
            got = relayed_between(obs, mark + 1, end)
            check([o.get('say') for o in got] == [says[i] for i in accepted]
                  and len({o.get('from') for o in got}) <= 1,
                  '%s: the observer gets only %s, once each, in order: %r'
                  % (what, [says[i] for i in accepted], got))
            mark = end
    deadline = time.monotonic() + STEP  # the last close may still be on its way
    while (len(srv.lines_matching(r'close: .*session violation')) < len(cases)
           and time.monotonic() < deadline):
        time.sleep(0.05)
    check(len(srv.lines_matching(r'close: .*session violation')) == len(cases),
          '2b: each refused connection closed as a session violation:%s' % report(srv))
    obs.close_stdin()
    check(obs.wait() == 0, '2b: the observer was left alone (exit 0):%s' % report(obs))
    check(srv.stop() == 0, '2b: gmud-server exits 0:%s' % report(srv))


# ---- 3. mismatched modes --------------------------------------------------------

def test_mismatch_off_client_on_server():
    """3a. gmud-client --session off against a default gmud-server (mode
    on): the client takes the welcome for a message; what it sends has no
    session header and is refused (6.6). The run must end within
    MISMATCH_LIMIT seconds, and be a visible error on both sides: the server
    logs the refusal (bad_session or missing_field), and the client, seeing
    a welcome first, says the server runs sessions and exits non-zero."""
    srv = gmud_server('--app', 'chat')
    cl = gmud_client(srv.port, '--session', 'off', '--wait', '2',
                     stdin='{"move":"north"}\n')
    status = cl.wait(MISMATCH_LIMIT)
    check(status is not None, '3a: gmud-client --session off against mode on ends within '
          '%g s:%s' % (MISMATCH_LIMIT, report(cl, srv)))
    # The client may exit before the server's log line has been read.
    refused, _ = srv.wait_line(r'\bsecurity: (bad_session|missing_field)\b', stream='err')
    check(refused is not None, '3a: the server logs the refusal:%s' % report(cl, srv))
    says = cl.lines_matching(r'^gmud-client: the server sent a session welcome: .*--session on')
    check(status not in (0, None) and says,
          '3a: the client exits non-zero and says the server runs sessions:%s'
          % report(cl, srv))
    check(srv.stop() == 0, '3a: gmud-server exits 0:%s' % report(srv))


def test_mismatch_on_client_off_server():
    """3b. gmud-client --session on against gmud-server --session off --app
    echo: no welcome ever comes (the echo server waits for the client to
    speak, the client sends nothing before a welcome, 6.6). The client must
    still fail clearly in bounded time: exit non-zero with a message on
    stderr, within MISMATCH_LIMIT seconds when its stdin has ended, and
    within MISMATCH_LIMIT_OPEN_STDIN seconds when stdin stays open (an
    interactive user)."""
    srv = gmud_server('--app', 'echo', '--session', 'off')
    started = time.monotonic()      # both run at once
    # The client gives up after --welcome-timeout (5 s by default).
    ended = gmud_client(srv.port, '--session', 'on', '--welcome-timeout', '1',
                        stdin='{"a": 1}\n')
    interactive = gmud_client(srv.port, '--session', 'on', '--welcome-timeout', '1',
                              stdin=OPEN)
    for cl, limit, what in ((ended, MISMATCH_LIMIT, 'stdin ended'),
                            (interactive, MISMATCH_LIMIT_OPEN_STDIN, 'stdin open')):
        status = cl.wait(max(0.0, started + limit - time.monotonic()))
        if check(status is not None, '3b (%s): gmud-client --session on against a mode-off '
                 'server ends within %g s (it hung; killed):%s' % (what, limit, report(cl))):
            check(status != 0 and cl.lines_matching(r'^gmud-client: | (error|warn) '),
                  '3b (%s): gmud-client exits non-zero with a message:%s' % (what, report(cl)))
    interactive.close_stdin()
    check(srv.stop() == 0, '3b: gmud-server exits 0:%s' % report(srv))


TESTS = [test_lecture_server_to_gmud_client, test_gmud_server_to_lecture_client,
         test_lecture_tampering, test_lecture_reply_from_ahead, test_lecture_reply_data,
         test_lecture_through_proxy, test_replay_new_connection, test_tampered_stream,
         test_mismatch_off_client_on_server, test_mismatch_on_client_off_server]


def main():
    return run_tests(TESTS, cleanup=kill_all, width=38)

if __name__ == '__main__':
    sys.exit(main())
