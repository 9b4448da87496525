#!/usr/bin/env python3
"""gmud against the lecture's own Python programs (tests/lecture/).

usage: test_lecture.py [GMUD_SERVER GMUD_CLIENT] [unittest options]

Without the two program paths (or when they do not exist) only the Python
programs are tested against each other, directly and through the splitting
proxy; the gmud tests are skipped.

What is tested (../shared/LECTURE.md, issue 3):
- the lecture's Python programs with each other, directly and through
  tests/lecture/proxy.py, for every approach (checks the tools themselves);
- approaches 2-5 (plus the newline form of approach 1), both roles:
  * the lecture's Python server with gmud-client: gmud-client prints the
    server's messages, one line each, exactly (text) or as equal JSON;
  * gmud-client sending stdin lines to the lecture's Python server, which
    prints what it received;
  * gmud-server --app clock with the lecture's Python client: message numbers
    0, 1, 2 in order, the time in Python's time.ctime() format and close to
    now; for json, the bytes are exactly what Python's json.dumps makes;
  * gmud-server --app echo with the lecture's Python client sending,
    including the edge sizes: empty data, a full 100-byte fixed packet,
    65535 bytes in a length or gmud frame (the JSON one a single string:
    gmud's JSON string bound is as large as a frame, docs/PROTOCOL.md);
- approach 5 packet IDs: a label other than the receiver's is refused on
  every side (Python prints "Invalid Packet"; gmud-client fails; gmud-server
  answers a wrong label with an error packet, then closes);
- gmud-server --app chat relaying between two Python clients (json);
- gmud-client against gmud-server --app echo through the proxy for each
  framing (line, fixed:100, length text, length json, gmud json): every line
  comes back identical, in order; the lecture's clients against
  gmud-server echo, and the lecture's servers against gmud-client, through
  the proxy (approaches 2-5).

Approach 1 (raw): TCP keeps no message boundaries, so what each recv()
returns depends on timing: one message, part of one, or several glued
together. Only the deterministic parts are checked: the concatenation of
everything received equals the concatenation of everything sent; and a
client that pauses (the lecture's debugger pause) until all three messages
have been sent gets them glued together in its first recv(4096).

Every process and socket has a timeout. Ports: a free port is found by
binding port 0 first; readiness of a server is read from /proc/net/tcp (a
LISTEN socket on the port), so no probe connection disturbs the server.
"""

import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
LECTURE = HERE  # the lecture's programs sit beside this test
PYTHON = sys.executable

GMUD_SERVER = None
GMUD_CLIENT = None

CTIME = r'\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4}'
CTIME_RE = re.compile('^' + CTIME + '$')
TEXT_RE = re.compile(r'^(\d+):(' + CTIME + ')$')
PROC_TIMEOUT = 20
INTERVAL = '0.1'

# approach -> (lecture program prefix, gmud --framing, gmud --payload)
APPROACHES = {
    'line': ('line', 'line', 'text'),
    'fixed': ('fixed', 'fixed:100', 'text'),
    'length': ('length', 'length', 'text'),
    'json': ('json', 'length', 'json'),
    'gmud': ('gmud', 'gmud', 'json'),
}
FRAMED = ('fixed', 'length', 'json', 'gmud')       # approaches 2-5
JSON_APPROACHES = ('json', 'gmud')


def have_gmud():
    return bool(GMUD_SERVER and GMUD_CLIENT and os.access(GMUD_SERVER, os.X_OK)
                and os.access(GMUD_CLIENT, os.X_OK))


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
    s.close()
    return port


def listening(port):
    """True when /proc/net/tcp{,6} shows a LISTEN socket on port."""
    found_proc = False
    for name in ('/proc/net/tcp', '/proc/net/tcp6'):
        try:
            with open(name) as f:
                lines = f.readlines()[1:]
        except OSError:
            continue
        found_proc = True
        for line in lines:
            parts = line.split()
            if len(parts) > 3 and parts[3] == '0A' and \
                    int(parts[1].rsplit(':', 1)[1], 16) == port:
                return True
    return None if not found_proc else False


def connections_to(port):
    """Established client-side sockets whose remote port is port."""
    n = 0
    for name in ('/proc/net/tcp', '/proc/net/tcp6'):
        try:
            with open(name) as f:
                lines = f.readlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if len(parts) > 3 and parts[3] == '01' and \
                    int(parts[2].rsplit(':', 1)[1], 16) == port:
                n += 1
    return n


def lecture(name):
    return os.path.join(LECTURE, name)


class Proc:
    """A subprocess whose output is collected line by line in threads."""

    def __init__(self, argv, stdin_data=None):
        self.argv = [str(a) for a in argv]
        self.out = []
        self.err = []
        self.timed_out = False
        self.out_done = False
        self.cond = threading.Condition()
        self.p = subprocess.Popen(
            self.argv,
            stdin=subprocess.PIPE if stdin_data is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.threads = [
            threading.Thread(target=self._read, args=(self.p.stdout, self.out), daemon=True),
            threading.Thread(target=self._read, args=(self.p.stderr, self.err), daemon=True)]
        if stdin_data is not None:
            self.threads.append(threading.Thread(target=self._write,
                                                 args=(stdin_data,), daemon=True))
        for t in self.threads:
            t.start()

    def _read(self, pipe, lines):
        for raw in iter(pipe.readline, b''):
            with self.cond:
                lines.append(raw.decode('utf-8', 'replace').rstrip('\n'))
                self.cond.notify_all()
        pipe.close()
        with self.cond:
            if lines is self.out:
                self.out_done = True
            self.cond.notify_all()

    def _write(self, data):
        try:
            self.p.stdin.write(data)
        except OSError:
            pass
        try:
            self.p.stdin.close()
        except OSError:
            pass

    def wait_line(self, pattern, timeout=5):
        """The first stdout line matching pattern (a match object), or None
        once the timeout passes or stdout has ended without one."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for line in self.out:
                    m = regex.search(line)
                    if m:
                        return m
                left = deadline - time.monotonic()
                if left <= 0 or self.out_done:
                    return None
                self.cond.wait(min(0.05, left))

    def finish(self, timeout=PROC_TIMEOUT):
        try:
            self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            self.timed_out = True
            self.p.kill()
            self.p.wait(5)
        for t in self.threads:
            t.join(5)
        return self.p.returncode

    def stop(self):
        """SIGTERM, then SIGKILL; for servers that may run on."""
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(5)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(5)
        for t in self.threads:
            t.join(5)
        return self.p.returncode

    def describe(self):
        rc = self.p.poll()
        text = '$ %s\n  exit status: %s%s\n' % (
            ' '.join(self.argv), rc, ' (killed after timeout)' if self.timed_out else '')
        text += '  stdout:\n' + ''.join('    | %s\n' % l for l in self.out)
        text += '  stderr:\n' + ''.join('    | %s\n' % l for l in self.err[-30:])
        return text


class Base(unittest.TestCase):
    def setUp(self):
        self.procs = []

    def tearDown(self):
        for p in self.procs:
            p.stop()

    def start(self, argv, stdin_data=None):
        p = Proc(argv, stdin_data)
        self.procs.append(p)
        return p

    def report(self):
        return '\n' + '\n'.join(p.describe() for p in self.procs)

    def check(self, cond, message):
        if not cond:
            self.fail(message + self.report())

    def wait_listening(self, port, proc, timeout=5):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = listening(port)
            if state is None:           # no /proc: give it a moment
                time.sleep(0.5)
                return
            if state:
                return
            if proc.p.poll() is not None:
                break
            time.sleep(0.02)
        self.fail('server not listening on port %d' % port + self.report())

    # -- starting things -------------------------------------------------

    def lecture_server(self, approach, port, *extra):
        prefix = APPROACHES[approach][0] if approach in APPROACHES else approach
        p = self.start([PYTHON, lecture(prefix + '_server.py'), '127.0.0.1', port,
                        '--interval', INTERVAL, '--timeout', '10'] + list(extra))
        self.wait_listening(port, p)
        return p

    def lecture_client(self, approach, port, *extra):
        prefix = APPROACHES[approach][0] if approach in APPROACHES else approach
        return self.start([PYTHON, lecture(prefix + '_client.py'), '127.0.0.1', port,
                           '--timeout', '10'] + list(extra))

    def gmud_server(self, framing, payload, port, *extra):
        # The lecture's approaches 1-5 have no sessions (approach 6 is
        # tests/programs/test_session_programs.py).
        p = self.start([GMUD_SERVER, '--host', '127.0.0.1', '--port', port,
                        '--framing', framing, '--payload', payload, '--session', 'off']
                       + list(extra))
        self.wait_listening(port, p)
        return p

    def gmud_client(self, framing, payload, port, lines=None, *extra):
        data = None if lines is None else ''.join(l + '\n' for l in lines).encode('utf-8')
        return self.start([GMUD_CLIENT, '--host', '127.0.0.1', '--port', port,
                           '--framing', framing, '--payload', payload, '--session', 'off']
                          + list(extra),
                          stdin_data=data)

    def proxy(self, target_port, seed):
        p = self.start([PYTHON, lecture('proxy.py'), 0, target_port,
                        '--seed', seed, '--lifetime', '60'])
        m = p.wait_line(r'^proxy listening on [\d.]+:(\d+)$', 5)
        self.check(m is not None, 'proxy did not start')
        return int(m.group(1))

    # -- checking output --------------------------------------------------

    def check_ctime(self, text, proc_note=''):
        self.check(CTIME_RE.match(text) is not None,
                   'time %r is not in time.ctime() format %s' % (text, proc_note))
        then = time.mktime(time.strptime(text))
        self.check(abs(then - time.time()) < 30,
                   'time %r is not close to now (%s)' % (text, time.ctime()))

    def check_text_messages(self, lines, count=3):
        """lines: n:<ctime> for n = 0 .. count-1, in order."""
        self.check(len(lines) == count,
                   'expected %d messages, got %d: %r' % (count, len(lines), lines))
        for n, line in enumerate(lines):
            m = TEXT_RE.match(line)
            self.check(m is not None, 'message %r is not "n:<ctime>"' % line)
            self.check(int(m.group(1)) == n,
                       'message number %s where %d was expected' % (m.group(1), n))
            self.check_ctime(m.group(2))

    def check_clock_object(self, obj, n):
        self.check(isinstance(obj, dict) and set(obj) == {'time', 'message', 'value'},
                   'not the lecture object: %r' % (obj,))
        self.check(obj['value'] == n, 'value %r where %d was expected' % (obj['value'], n))
        self.check_ctime(obj['time'])
        self.check(obj['message'] == str(n) + ':' + obj['time'],
                   'message %r is not value:time' % obj['message'])

    def json_client_groups(self, proc, show_data):
        """The json/gmud clients print: length, message[, data] per packet."""
        size = 3 if show_data else 2
        lines = proc.out
        self.check(len(lines) % size == 0, 'client output not in groups of %d' % size)
        return [lines[i:i + size] for i in range(0, len(lines), size)]


def sent_lines(server):
    """What a lecture server printed as sent (its 'Sent ...' lines)."""
    return [l[len('Sent '):] for l in server.out if l.startswith('Sent ')]


def received_lines(server):
    return [l[len('Received: '):] for l in server.out if l.startswith('Received: ')]


# ---------------------------------------------------------------------------
# The Python programs with each other: checks the test tools themselves.

class PythonOnly(Base):
    def exchange(self, approach, via_proxy):
        port = free_port()
        if approach in JSON_APPROACHES:
            sends = ['{"a": 1}', '{"message": "caf\u00e9", "value": 7}']
        else:
            sends = ['hello', 'two words']
        server = self.lecture_server(approach, port, '--count', '3', '--recv', '2')
        target = self.proxy(port, 7) if via_proxy else port
        args = []
        for s in sends:
            args += ['--send', s]
        if approach in JSON_APPROACHES:
            args.append('--show-data')
        client = self.lecture_client(approach, target, *args)
        rc = client.finish()
        self.check(rc == 0, 'lecture client failed')
        rc = server.finish()
        self.check(rc == 0, 'lecture server failed')
        if approach in JSON_APPROACHES:
            groups = self.json_client_groups(client, True)
            self.check(len(groups) == 3, 'expected 3 packets')
            for n, (length, message, data) in enumerate(groups):
                self.check(int(length) == len(data.encode('utf-8')), 'length mismatch')
                self.check_clock_object(json.loads(data), n)
                self.check(message == json.loads(data)['message'], 'message line')
            got = [json.loads(l) for l in received_lines(server)]
            self.check(got == [json.loads(s) for s in sends], 'server received wrong data')
        else:
            self.check_text_messages(client.out)
            self.check(client.out == sent_lines(server), 'client did not print what was sent')
            self.check(received_lines(server) == sends, 'server received wrong data')

    def test_direct(self):
        for approach in APPROACHES:
            with self.subTest(approach=approach):
                self.setUp()
                try:
                    self.exchange(approach, False)
                finally:
                    self.tearDown()

    def test_through_proxy(self):
        for approach in APPROACHES:
            with self.subTest(approach=approach):
                self.setUp()
                try:
                    self.exchange(approach, True)
                finally:
                    self.tearDown()

    def test_raw_concatenation(self):
        """Approach 1: what arrives, glued or split, is what was sent."""
        port = free_port()
        server = self.lecture_server('raw', port, '--count', '3')
        target = self.proxy(port, 3)
        client = self.lecture_client('raw', target)
        self.check(client.finish() == 0, 'raw client failed')
        server.finish()
        self.check(''.join(client.out) == ''.join(sent_lines(server)),
                   'raw bytes differ')

    def test_raw_pause_glues(self):
        """Approach 1: the lecture's paused client gets messages glued."""
        port = free_port()
        server = self.lecture_server('raw', port, '--count', '3')
        client = self.lecture_client('raw', port, '--pause', '1.0', '--count', '1')
        self.check(client.finish() == 0, 'raw client failed')
        server.finish()
        self.check(client.out == [''.join(sent_lines(server))],
                   'one recv(4096) after the pause should return all 3 messages glued')


# ---------------------------------------------------------------------------
# gmud's programs with the lecture's programs.

class Gmud(Base):
    def setUp(self):
        if not have_gmud():
            self.skipTest('gmud-server / gmud-client not given or not built')
        super().setUp()

    def each(self, approaches, fn):
        for approach in approaches:
            with self.subTest(approach=approach):
                self.setUp()
                try:
                    fn(approach)
                finally:
                    self.tearDown()

    # -- lecture server -> gmud-client -----------------------------------

    def lecture_server_to_gmud_client(self, approach, via_proxy):
        _, framing, payload = APPROACHES[approach]
        port = free_port()
        server = self.lecture_server(approach, port, '--count', '3')
        target = self.proxy(port, 13) if via_proxy else port
        client = self.gmud_client(framing, payload, target, None, '--wait', '3')
        rc = client.finish()
        server.finish()
        self.check(rc == 0, 'gmud-client should exit 0 when the server closes')
        sent = sent_lines(server)
        if payload == 'json':
            got = []
            for line in client.out:
                try:
                    got.append(json.loads(line))
                except ValueError:
                    self.check(False, 'gmud-client printed non-JSON line %r' % line)
            self.check(got == [json.loads(s) for s in sent],
                       'gmud-client did not print the server\'s objects')
            for line in client.out:
                self.check(': ' not in line and ', "' not in line,
                           'gmud-client JSON not compact: %r' % line)
        else:
            self.check(client.out == sent,
                       'gmud-client did not print the server\'s messages')
            self.check_text_messages(client.out)

    def test_lecture_server_to_gmud_client(self):
        self.each(APPROACHES, lambda a: self.lecture_server_to_gmud_client(a, False))

    def test_lecture_server_to_gmud_client_through_proxy(self):
        self.each(FRAMED, lambda a: self.lecture_server_to_gmud_client(a, True))

    def test_raw_lecture_server_to_gmud_client(self):
        """Approach 1: gmud-client prints whatever chunks arrive; their
        concatenation is what the server sent."""
        port = free_port()
        server = self.lecture_server('raw', port, '--count', '3')
        client = self.gmud_client('raw', 'text', port, None, '--wait', '3')
        rc = client.finish()
        server.finish()
        self.check(rc == 0, 'gmud-client should exit 0 when the server closes')
        self.check(''.join(client.out) == ''.join(sent_lines(server)),
                   'gmud-client raw output differs from what was sent')

    # -- gmud-client -> lecture server ------------------------------------

    def test_gmud_client_to_lecture_server(self):
        def run(approach):
            _, framing, payload = APPROACHES[approach]
            if payload == 'json':
                lines = ['{"a": 1}', '{"message": "0:x", "value": 0, "list": [1, 2.5, null]}',
                         '{"s": "caf\u00e9 \\"q\\" \\n"}']
            else:
                lines = ['hello', 'two words', 'x' * 100 if approach == 'fixed' else 'y' * 3000]
            port = free_port()
            server = self.lecture_server(approach, port, '--count', '0', '--recv', '3')
            client = self.gmud_client(framing, payload, port, lines, '--wait', '2')
            rc = client.finish()
            src = server.finish()
            self.check(src == 0, 'lecture server failed to read gmud-client\'s messages')
            got = received_lines(server)
            if payload == 'json':
                self.check([json.loads(g) for g in got] == [json.loads(l) for l in lines],
                           'lecture server received other objects')
            else:
                self.check(got == lines, 'lecture server received other texts')
            self.check(rc == 0, 'gmud-client should exit 0')
        self.each(APPROACHES, run)

    # -- gmud-server clock -> lecture client ------------------------------

    def clock_to_lecture_client(self, approach, show_data):
        _, framing, payload = APPROACHES[approach]
        port = free_port()
        server = self.gmud_server(framing, payload, port, '--app', 'clock',
                                  '--count', '3', '--interval', INTERVAL)
        args = ['--count', '3'] + (['--show-data'] if show_data else [])
        client = self.lecture_client(approach, port, *args)
        rc = client.finish()
        self.check(rc == 0, 'lecture client failed')
        return server, client

    def test_gmud_clock_to_lecture_client(self):
        def run(approach):
            server, client = self.clock_to_lecture_client(approach, True)
            if approach in JSON_APPROACHES:
                groups = self.json_client_groups(client, True)
                self.check(len(groups) == 3, 'expected 3 packets')
                for n, (length, message, data) in enumerate(groups):
                    self.check(int(length) == len(data.encode('utf-8')), 'length line')
                    obj = json.loads(data)
                    self.check_clock_object(obj, n)
                    self.check(message == obj['message'], 'message line')
            else:
                self.check_text_messages(client.out)

    def test_gmud_clock_json_bytes_as_python(self):
        """The lecture's object, byte for byte as json.dumps makes it:
        key order time, message, value; separators ", " and ": "."""
        def run(approach):
            server, client = self.clock_to_lecture_client(approach, True)
            for length, message, data in self.json_client_groups(client, True):
                obj = json.loads(data)
                expected = json.dumps({'time': obj.get('time'), 'message': obj.get('message'),
                                       'value': obj.get('value')})
                self.check(data == expected,
                           'gmud-server json differs from Python\'s json.dumps:\n'
                           '  gmud:   %s\n  python: %s' % (data, expected))
        self.each(JSON_APPROACHES, run)

    def test_gmud_clock_server_closes_after_count(self):
        """--count 3: after the third message the lecture client, reading
        until the server closes, ends by itself (exit 0)."""
        def run(approach):
            _, framing, payload = APPROACHES[approach]
            port = free_port()
            self.gmud_server(framing, payload, port, '--app', 'clock',
                             '--count', '3', '--interval', INTERVAL)
            client = self.start([PYTHON, lecture(APPROACHES[approach][0] + '_client.py'),
                                 '127.0.0.1', port, '--timeout', '5'])
            rc = client.finish()
            self.check(rc == 0, 'the lecture client did not see the server close after '
                       '--count 3 messages (exit 4 = its 5 s recv timeout)')
            n = len(client.out) // (2 if approach in JSON_APPROACHES else 1)
            self.check(n == 3, 'expected 3 messages before the close, got %d' % n)
        self.each(FRAMED, run)

    def test_raw_gmud_clock_to_lecture_client(self):
        """Approach 1 against gmud-server: the concatenation is the messages;
        the lecture's paused client gets them glued in one recv(4096)."""
        port = free_port()
        self.gmud_server('raw', 'text', port, '--app', 'clock', '--count', '3',
                         '--interval', INTERVAL)
        client = self.lecture_client('raw', port, '--pause', '1.0', '--count', '1')
        self.check(client.finish() == 0, 'raw client failed')
        self.check(len(client.out) == 1, 'expected one glued chunk')
        parts = re.findall(r'(\d+):(' + CTIME + ')', client.out[0])
        self.check(''.join('%s:%s' % p for p in parts) == client.out[0],
                   'glued chunk is not n:<ctime> messages back to back')
        self.check([int(p[0]) for p in parts] == [0, 1, 2], 'message numbers')
        for p in parts:
            self.check_ctime(p[1])

    # -- gmud-server echo <- lecture client --------------------------------

    def echo_with_lecture_client(self, approach, via_proxy):
        _, framing, payload = APPROACHES[approach]
        if payload == 'json':
            sends = ['{"a": 1}', '{"message": "2:x", "value": 2}',
                     '{"nested": {"l": [1, 2, 3]}, "s": "caf\u00e9"}']
        else:
            sends = ['hello', 'two words', ('z' * 100) if approach == 'fixed' else 'w' * 2000]
        port = free_port()
        self.gmud_server(framing, payload, port, '--app', 'echo')
        target = self.proxy(port, 11) if via_proxy else port
        args = ['--count', str(len(sends))]
        for s in sends:
            args += ['--send', s]
        if payload == 'json':
            args.append('--show-data')
        client = self.lecture_client(approach, target, *args)
        rc = client.finish()
        self.check(rc == 0, 'lecture client failed against gmud-server echo')
        if payload == 'json':
            groups = self.json_client_groups(client, True)
            self.check([json.loads(g[2]) for g in groups] == [json.loads(s) for s in sends],
                       'echoed objects differ')
            for length, _, data in groups:
                self.check(int(length) == len(data.encode('utf-8')), 'length line')
        else:
            self.check(client.out == sends, 'echoed texts differ')

    def test_lecture_client_to_gmud_echo(self):
        self.each(APPROACHES, lambda a: self.echo_with_lecture_client(a, False))

    def test_lecture_client_to_gmud_echo_through_proxy(self):
        self.each(FRAMED, lambda a: self.echo_with_lecture_client(a, True))

    def test_edge_sizes_lecture_client_to_gmud_echo(self):
        """Smallest and largest messages each framing can carry, sent by the
        lecture's client: empty data, a full 100-byte fixed packet, and
        65535 bytes (the largest 2-byte length) for length and gmud."""
        # One string filling the whole frame: gmud's JSON string bound
        # (65535 bytes, docs/PROTOCOL.md) must not refuse what a lecture
        # peer can legally send.
        big_json = json.dumps({'s': 'x' * (65535 - len(json.dumps({'s': ''})))})
        assert len(big_json) == 65535
        cases = [('fixed', ['', 'f' * 100, 'after']),
                 ('length', ['', 'L' * 65535, 'after']),
                 ('gmud', ['{}', big_json, '{"after": 1}'])]

        def run(case):
            approach, sends = case
            _, framing, payload = APPROACHES[approach]
            port = free_port()
            self.gmud_server(framing, payload, port, '--app', 'echo')
            args = ['--count', str(len(sends))]
            for s in sends:
                args += ['--send', s]
            if payload == 'json':
                args.append('--show-data')
            client = self.lecture_client(approach, port, *args)
            rc = client.finish()
            self.check(rc == 0, 'lecture client failed against gmud-server echo')
            if payload == 'json':
                got = [json.loads(g[2]) for g in self.json_client_groups(client, True)]
                self.check(got == [json.loads(s) for s in sends], 'echoed objects differ')
                self.check(int(client.out[3]) == 65535, 'length of the big packet')
            else:
                self.check(client.out == sends, 'echoed texts differ')

        for case in cases:
            with self.subTest(approach=case[0]):
                self.setUp()
                try:
                    run(case)
                finally:
                    self.tearDown()

    # -- approach 5: packet IDs -------------------------------------------

    def test_wrong_label_gmud_server_to_lecture_client(self):
        port = free_port()
        self.gmud_server('gmud', 'json', port, '--app', 'clock', '--count', '3',
                         '--interval', INTERVAL, '--label', 'ABCD')
        client = self.lecture_client('gmud', port, '--count', '3')
        rc = client.finish()
        self.check(rc == 1 and client.out == ['Invalid Packet'],
                   'the lecture client should print Invalid Packet for label ABCD')

    def test_custom_label_both_ways(self):
        port = free_port()
        self.gmud_server('gmud', 'json', port, '--app', 'echo', '--label', 'ABCD')
        client = self.lecture_client('gmud', port, '--label', 'ABCD', '--count', '1',
                                     '--send', '{"k": "v"}', '--show-data')
        rc = client.finish()
        self.check(rc == 0 and len(client.out) == 3 and json.loads(client.out[2]) == {'k': 'v'},
                   'echo with label ABCD on both sides failed')

    def test_wrong_label_lecture_server_to_gmud_client(self):
        port = free_port()
        server = self.lecture_server('gmud', port, '--count', '3')
        client = self.gmud_client('gmud', 'json', port, None, '--wait', '3', '--label', 'ABCD')
        rc = client.finish()
        server.finish()
        self.check(rc not in (0, None) and client.out == [],
                   'gmud-client --label ABCD must fail on GMUD packets and print nothing')
        self.check(client.err != [], 'gmud-client should say why it failed')

    def test_wrong_label_lecture_client_to_gmud_server(self):
        """gmud-server gets label GMUX: an error packet, then the close."""
        port = free_port()
        self.gmud_server('gmud', 'json', port, '--app', 'echo')
        client = self.lecture_client('gmud', port, '--send-label', 'GMUX',
                                     '--send', '{"a": 1}', '--show-data')
        rc = client.finish()
        self.check(rc == 0, 'expected an error packet, then a clean close')
        self.check(len(client.out) == 3, 'expected exactly one packet (the error)')
        obj = json.loads(client.out[2])
        self.check(isinstance(obj, dict) and isinstance(obj.get('error'), str)
                   and isinstance(obj.get('code'), str),
                   'error packet is not {"error": ..., "code": ...}')

    # -- chat -------------------------------------------------------------

    def test_chat_between_lecture_clients(self):
        port = free_port()
        self.gmud_server('gmud', 'json', port, '--app', 'chat')
        listener = self.lecture_client('gmud', port, '--count', '1', '--show-data')
        # The listener must be connected before the talker sends.
        deadline = time.monotonic() + 5
        while connections_to(port) < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.2)     # and accepted by the server's loop
        talker = self.lecture_client('gmud', port, '--count', '0',
                                     '--send', '{"message": "hi all", "value": 1}')
        self.check(talker.finish() == 0, 'talker failed')
        self.check(listener.finish() == 0 and len(listener.out) == 3,
                   'listener did not get the relayed message')
        obj = json.loads(listener.out[2])
        self.check(obj.get('message') == 'hi all' and obj.get('value') == 1 and 'from' in obj,
                   'relayed chat message should be the object plus "from"')

    # -- gmud-client <-> proxy <-> gmud-server --------------------------------

    def test_gmud_echo_through_proxy(self):
        framings = [('line', 'text'), ('fixed:100', 'text'), ('length', 'text'),
                    ('length', 'json'), ('gmud', 'json')]

        def run(fp):
            framing, payload = fp
            lines = []
            for i in range(40):
                if payload == 'json':
                    lines.append(json.dumps({'i': i, 's': 'm' * (i * 13 % 200),
                                             'u': 'caf\u00e9', 'l': [i, None, True]},
                                            separators=(',', ':')))
                else:
                    size = (i * 37) % (100 if framing.startswith('fixed') else 1500) + 1
                    lines.append(('%d:' % i + 'abcdefghij' * 200)[:size])
            port = free_port()
            self.gmud_server(framing, payload, port, '--app', 'echo')
            target = self.proxy(port, 5)
            client = self.gmud_client(framing, payload, target, lines, '--wait', '3')
            rc = client.finish()
            self.check(rc == 0, 'gmud-client failed')
            if payload == 'json':
                self.check([json.loads(l) for l in client.out] == [json.loads(l) for l in lines],
                           'echoed objects differ')
            else:
                self.check(client.out == lines, 'echoed lines differ')

        for fp in framings:
            with self.subTest(framing=fp):
                self.setUp()
                try:
                    run(fp)
                finally:
                    self.tearDown()


def main():
    global GMUD_SERVER, GMUD_CLIENT
    # The lecture programs import lecture_args: keep __pycache__ out of the
    # source tree.
    os.environ['PYTHONDONTWRITEBYTECODE'] = '1'
    argv = sys.argv[:]
    if len(argv) >= 3 and not argv[1].startswith('-'):
        GMUD_SERVER, GMUD_CLIENT = argv[1], argv[2]
        del argv[1:3]
    else:
        GMUD_SERVER = os.environ.get('GMUD_SERVER')
        GMUD_CLIENT = os.environ.get('GMUD_CLIENT')
    if '-v' not in argv and '--verbose' not in argv:
        argv.insert(1, '-v')
    unittest.main(argv=argv)


if __name__ == '__main__':
    main()
