#!/usr/bin/env python3
"""gmud-server and gmud-client end to end, over real loopback sockets.

Usage: test_programs.py <gmud-server> <gmud-client>

Each server is started with --port 0 and the test reads the port it bound
from its "listen" log line. Every step is bounded by a timeout; the whole
file takes a few seconds. Python 3 standard library only. Exit 0 on success.
"""

import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import time

from progtest import CTIME_RE, STEP, Lines, check, check_clean, read_exact, run_tests

SERVER, CLIENT = sys.argv[1], sys.argv[2]


class Server:
    def __init__(self, *args):
        self.args = args
        self.proc = subprocess.Popen([SERVER, '--port', '0', *args], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.log = Lines(self.proc.stderr)
        m = self.log.wait_for(r'listen.* port (\d+)')
        if m is None:
            self.stop()
            raise RuntimeError('server %s did not start: %s' % (args, self.log.all))
        self.port = int(m.group(1))

    def stop(self, sig=signal.SIGTERM):
        """Signals the server; returns its exit status (None if it hung)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.wait()

    def wait(self):
        """Waits for the server to exit; its status, or None if it hung."""
        try:
            status = self.proc.wait(timeout=STEP)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None
        self.log.t.join(timeout=STEP)
        while self.log.get(timeout=0) is not None:
            pass
        check_clean('\n'.join(self.log.all), 'server %s' % (self.args,))
        return status


def run_client(port, args, stdin_text, timeout=STEP):
    """Runs gmud-client to the end; returns (status, stdout lines, stderr)."""
    try:
        r = subprocess.run([CLIENT, '--port', str(port), *args], input=stdin_text,
                           capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        return None, [], 'timed out; stderr: %s' % (e.stderr,)
    check_clean(r.stderr, 'client %s' % (args,))
    return r.returncode, r.stdout.splitlines(), r.stderr


def start_client(port, *args):
    p = subprocess.Popen([CLIENT, '--port', str(port), *args], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1)
    p.out = Lines(p.stdout)
    p.err = Lines(p.stderr)
    return p


def finish(p):
    """Closes a started client's stdin; returns its exit status."""
    try:
        p.stdin.close()
    except BrokenPipeError:
        pass
    try:
        status = p.wait(timeout=STEP)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        return None
    p.err.t.join(timeout=STEP)
    while p.err.get(timeout=0) is not None:
        pass
    check_clean('\n'.join(p.err.all), 'client')
    return status


# ---- the tests ---------------------------------------------------------------

def test_help():
    common = ['--host', '--port', '--framing', '--payload', '--label', '--delim', '--max-message',
              '--max-queued', '--frame-timeout', '--idle-timeout', '--max-bad-messages',
              '--log-level', '--help']
    for prog, extra in ((SERVER, ['--app', '--interval', '--count', '--max-connections',
                                  '--shutdown-timeout']),
                        (CLIENT, ['--wait'])):
        r = subprocess.run([prog, '--help'], capture_output=True, text=True, timeout=STEP)
        check(r.returncode == 0, '%s --help exits 0' % prog)
        for opt in common + extra:
            check(re.search(r'^\s+%s\b' % re.escape(opt), r.stdout, re.M),
                  '%s --help lists %s' % (prog, opt))
        for default in ('[127.0.0.1]', '[8222]', '[gmud]', '[json]', '[GMUD]', '[info]',
                        '[1048576]', '[10]'):
            check(default in r.stdout, '%s --help shows default %s' % (prog, default))
    r = subprocess.run([SERVER, '--help'], capture_output=True, text=True, timeout=STEP)
    check('[chat]' in r.stdout and '[5]' in r.stdout, 'server help shows app and shutdown defaults')


def test_bad_options():
    cases = [
        (SERVER, ['--port', '99999'], '--port'),
        (SERVER, ['--framing', 'bogus'], '--framing'),
        (SERVER, ['--framing', 'fixed:0'], '--framing'),
        (SERVER, ['--app', 'nope'], '--app'),
        (SERVER, ['--interval', '-1'], '--interval'),
        (SERVER, ['--interval', '0'], '--interval'),
        (SERVER, ['--count', 'x'], '--count'),
        (SERVER, ['--label', 'TOOLONG'], '--label'),
        (SERVER, ['--max-queued', '0'], '--max-queued'),
        (SERVER, ['--addr-prefix6', '0'], 'prefix length from 1 to 128'),
        (SERVER, ['--addr-prefix6', '129'], 'prefix length from 1 to 128'),
        (SERVER, ['--log-level', 'loud'], '--log-level'),
        (SERVER, ['--nope'], '--nope'),
        (SERVER, ['--port'], '--port'),
        (CLIENT, ['--payload', 'xml'], '--payload'),
        (CLIENT, ['--wait', 'soon'], '--wait'),
        (CLIENT, ['--port', '0'], '--port'),
        (CLIENT, ['--app', 'echo'], '--app'),   # a server option
        (CLIENT, ['--host', 'bad host!'], '--host'),
        # Configs that would start and then fail on every tick, or on every
        # reply: refused at start, naming the size that does not fit.
        (SERVER, ['--framing', 'fixed:60', '--session', 'lecture', '--app', 'clock'],
         "the clock's messages take 89 bytes, over the 60"),
        (SERVER, ['--framing', 'fixed:60', '--session', 'on', '--app', 'clock'],
         'over the 44 a packet holds beside the session header'),
        (SERVER, ['--framing', 'fixed:100', '--app', 'clock', '--count', '99999999'],
         "the clock's messages take 103 bytes"),
        (SERVER, ['--framing', 'fixed:97', '--session', 'lecture', '--app', 'clock'],
         "the lecture's replies take up to 98 bytes, over the 97"),
    ]
    for prog, args, word in cases:
        r = subprocess.run([prog, *args], capture_output=True, text=True, timeout=STEP)
        check_clean(r.stderr, '%s %s' % (prog, args))
        check(r.returncode == 2, '%s %s exits 2 (got %s)' % (os.path.basename(prog), args,
                                                             r.returncode))
        check(word in r.stderr and len(r.stderr.strip()) > len(word),
              '%s %s says why: %r' % (os.path.basename(prog), args, r.stderr))


def test_echo():
    text_lines = ['hello', '', 'two words', 'x' * 90]
    json_lines = ['{"a":1}', '{"message":"0:Sat Mar 30 11:40:50 2019","value":0}',
                  '{"nested":{"list":[1,2,"three"]},"u":"\u00e9"}']
    for framing in ('line', 'fixed:100', 'length', 'gmud'):
        for payload, lines in (('text', text_lines), ('json', json_lines)):
            srv = Server('--app', 'echo', '--framing', framing, '--payload', payload)
            status, out, err = run_client(srv.port, ['--framing', framing, '--payload', payload,
                                                     '--wait', '0.5'],
                                          ''.join(l + '\n' for l in lines))
            what = 'echo %s/%s' % (framing, payload)
            check(status == 0, '%s: client exits 0 (got %s; %s)' % (what, status, err))
            check(out == lines, '%s: got back %r' % (what, out))
            check(srv.stop() == 0, '%s: server exits 0 on SIGTERM' % what)
    # A label other than GMUD, on both sides.
    srv = Server('--app', 'echo', '--label', 'ABCD')
    status, out, err = run_client(srv.port, ['--label', 'ABCD', '--wait', '0.5'], '{"x":true}\n')
    check(status == 0 and out == ['{"x":true}'],
          'echo with --label ABCD: %s %r %s' % (status, out, err))
    srv.stop()


def check_clock_lines(out, what):
    if not check(len(out) == 3, '%s: 3 messages, got %r' % (what, out)):
        return
    now = time.time()
    recent = {time.ctime(now - s) for s in range(0, 10)}
    for n, line in enumerate(out):
        if what.endswith('json'):
            obj = json.loads(line)
            check(list(obj) == ['time', 'message', 'value'], '%s: keys %r' % (what, list(obj)))
            check(obj['value'] == n and obj['message'] == '%d:%s' % (n, obj['time']),
                  '%s: message %d is %r' % (what, n, obj))
            when = obj['time']
        else:
            num, _, when = line.partition(':')
            check(num == str(n), '%s: message %d is %r' % (what, n, line))
        check(CTIME_RE.match(when) and when in recent,
              "%s: %r is Python's time.ctime() of now" % (what, when))


def test_clock():
    for payload in ('text', 'json'):
        srv = Server('--app', 'clock', '--count', '3', '--interval', '0.1', '--payload', payload)
        t0 = time.monotonic()
        status, out, err = run_client(srv.port, ['--payload', payload, '--wait', '8'], '')
        what = 'clock %s' % payload
        check(status == 0, '%s: client exits 0 when the server closes (got %s; %s)'
              % (what, status, err))
        check(time.monotonic() - t0 < 5, '%s: the server closed after the count' % what)
        check_clock_lines(out, what)
        check(srv.wait() == 0, '%s: server exits 0 after --count' % what)


def test_clock_local_time():
    """ctime is local time, as Python's: the same TZ gives the same text."""
    saved = os.environ.get('TZ')
    os.environ['TZ'] = 'XYZ-5:30'  # POSIX TZ, no tzdata needed: UTC+5:30
    time.tzset()
    try:
        srv = Server('--app', 'clock', '--count', '3', '--interval', '0.05', '--payload', 'text')
        status, out, err = run_client(srv.port, ['--payload', 'text', '--wait', '8'], '')
        check(status == 0, 'clock in TZ=%s: client exits 0' % os.environ['TZ'])
        check_clock_lines(out, 'clock in TZ=%s' % os.environ['TZ'])
        check(srv.wait() == 0, 'clock in another TZ: server exits 0')
    finally:
        if saved is None:
            del os.environ['TZ']
        else:
            os.environ['TZ'] = saved
        time.tzset()


def test_clock_lecture_client():
    """The lecture's approach-5 client reads gmud-server's clock byte for byte."""
    # Approach 5 has no sessions: the server is told so.
    srv = Server('--app', 'clock', '--count', '2', '--interval', '0.05', '--session', 'off')
    with socket.create_connection(('127.0.0.1', srv.port), timeout=STEP) as s:
        for n in range(2):
            check(read_exact(s, 4) == b'GMUD', 'lecture client: packet id GMUD')
            size = struct.unpack('<H', read_exact(s, 2))[0]
            data = read_exact(s, size)
            obj = json.loads(data.decode('utf-8'))
            check(json.dumps(obj).encode() == data,
                  "lecture client: json.dumps' exact bytes: %r" % data)
            check(obj['value'] == n, 'lecture client: value %d' % n)
        check(s.recv(1) == b'', 'lecture client: the stream ends after --count')
    check(srv.wait() == 0, 'clock for the lecture client: server exits 0')


def chat_pair(first_line, *args):
    """A chat server and two clients, A and B, all with args; A says
    first_line until B, whose connect may come later, hears it. Returns
    (server, A, B, what B heard first or None)."""
    srv = Server('--app', 'chat', *args)
    a = start_client(srv.port, *args, '--wait', '0.3')
    b = start_client(srv.port, *args, '--wait', '0.3')
    got = None
    deadline = time.monotonic() + STEP
    while got is None and time.monotonic() < deadline:
        a.stdin.write(first_line + '\n')
        a.stdin.flush()
        got = b.out.get(timeout=0.2)
    return srv, a, b, got


def test_chat():
    srv, a, b, got = chat_pair('{"n": 0}')
    if check(got is not None, 'chat: B hears A'):
        obj = json.loads(got)
        check(isinstance(obj.get('from'), int) and 'n' in obj,
              'chat: relayed with "from": %r' % got)
        a_id = obj.get('from')
        b.stdin.write('{"hi": "there", "from": 12345}\n')  # a forged "from" is replaced
        b.stdin.flush()
        line = a.out.wait_for(r'"hi"')
        ok = check(line is not None, 'chat: A hears B')
        if ok:
            obj = json.loads(line.string)
            check(obj.get('hi') == 'there' and isinstance(obj.get('from'), int)
                  and obj['from'] not in (a_id, 12345),
                  "chat: B's message carries B's id: %r" % line.string)
    check(finish(a) == 0, 'chat: A exits 0')
    check(finish(b) == 0, 'chat: B exits 0')
    while a.out.get(timeout=STEP) is not None:  # to the end of A's output
        pass
    check(a.out.all and not any('"n"' in l for l in a.out.all),
          'chat: A does not hear itself: %r' % a.out.all)
    check(srv.stop() == 0, 'chat: server exits 0')


def test_chat_text():
    """Text relays are marked "<id>: " (PROTOCOL.md 5): a client's line that
    reads as the server's error packet reaches the others marked, so not as
    one; a line too long once marked is refused to its sender, not cut."""
    srv, a, b, got = chat_pair('plain words', '--payload', 'text', '--framing', 'line',
                               '--max-message', '64')
    m = re.match(r'^([1-9]\d*): plain words$', got or '')
    check(m is not None, 'text chat: B hears A marked "<id>: ": %r' % got)
    a_id = m.group(1) if m else '1'
    fits = 'y' * (64 - len(a_id) - 2)  # the longest line that fits once marked
    a.stdin.write('error server_full: the server is full\nhello again\n%s\n%s\nlast\n'
                  % (fits, 'z' * 64))
    a.stdin.flush()
    want = ['error server_full: the server is full', 'hello again', fits, 'last']
    heard = []
    while len(heard) < len(want):
        line = b.out.get()
        if line is None:
            break
        if line != got:  # A said its first line until B heard it
            heard.append(line)
    check(heard == ['%s: %s' % (a_id, w) for w in want],
          'text chat: B hears each line whole, marked, the 64-byte one not at all: %r' % heard)
    refusal = a.out.wait_for(r'^error unencodable: not relayed')
    check(refusal is not None and '"%s: "' % a_id in refusal.string,
          'text chat: A hears its 64-byte line refused: %r' % a.out.all)
    b.stdin.write('from b\n')
    b.stdin.flush()
    m = a.out.wait_for(r'^([1-9]\d*): from b$')
    check(m is not None and m.group(1) != a_id,
          'text chat: A hears B marked with its own id: %r' % a.out.all)
    # A had a line refused (its error packet): exit 1, as with JSON; B none.
    check(finish(a) == 1 and finish(b) == 0,
          'text chat: A exits 1 (a line refused), B exits 0')
    b.out.drain()
    check(b.out.all and not any(l.startswith('error ') for l in b.out.all),
          'text chat: nothing B heard reads as an error packet: %r' % b.out.all)
    check(srv.stop() == 0, 'text chat: server exits 0')


def test_chat_json_forgery():
    """JSON needs no mark: the relay's "from" makes an error object three
    members, and an error packet is exactly two. An object too long once
    "from" is added is refused to its sender, with an error packet."""
    srv, a, b, got = chat_pair('{"n": 0}', '--max-message', '80')
    if check(got is not None, 'json chat: B hears A'):
        a.stdin.write('{"error": "the server is full", "code": "server_full"}\n')
        # 64 bytes (the 80 less the 16-byte session header): fits, but not with "from".
        a.stdin.write('{"s":"%s"}\n' % ('z' * 56))
        a.stdin.write('{"last": 1}\n')
        a.stdin.flush()
        m = b.out.wait_for(r'"error"')
        obj = json.loads(m.string) if m else {}
        check(sorted(obj) == ['code', 'error', 'from'] and isinstance(obj['from'], int),
              'json chat: the forged error object comes with "from": %r' % obj)
        check(b.out.wait_for(r'"last"') is not None, 'json chat: B hears the last line')
        check(not any('zzz' in l for l in b.out.all), 'json chat: the long one is not relayed')
        m = a.out.wait_for(r'"unencodable"')
        obj = json.loads(m.string) if m else {}
        check(sorted(obj) == ['code', 'error'] and obj['code'] == 'unencodable'
              and 'not relayed with "from"' in obj['error'],
              'json chat: A hears its long object refused: %r' % a.out.all)
    check(finish(a) == 1, 'json chat: A exits 1 (its line was refused)')
    check(finish(b) == 0, 'json chat: B exits 0 (no error packet for it)')
    check(srv.stop() == 0, 'json chat: server exits 0')


def test_stdin_kinds():
    """stdin as a regular file (cannot be polled), as /dev/null, and closed."""
    import tempfile
    # 2000 lines at once are spam by the default limits (burst 200): off here.
    srv = Server('--app', 'echo', '--rate-msgs', '0')
    with tempfile.TemporaryFile('w+') as f:
        lines = ['{"i":%d}' % i for i in range(2000)]
        f.write('\n'.join(lines))  # the last line has no newline: sent all the same
        f.seek(0)
        r = subprocess.run([CLIENT, '--port', str(srv.port), '--wait', '1'], stdin=f,
                           capture_output=True, text=True, timeout=STEP)
    check_clean(r.stderr, 'client with a file on stdin')
    check(r.returncode == 0 and r.stdout.splitlines() == lines,
          'stdin from a regular file: %s, %d lines back; %s'
          % (r.returncode, len(r.stdout.splitlines()), r.stderr))
    for what, kw in (('/dev/null', {'stdin': subprocess.DEVNULL}),
                     ('closed', {'stdin': subprocess.DEVNULL, 'preexec_fn': lambda: os.close(0)})):
        t0 = time.monotonic()
        r = subprocess.run([CLIENT, '--port', str(srv.port), '--wait', '0.2'],
                           capture_output=True, text=True, timeout=STEP, **kw)
        check_clean(r.stderr, 'client with stdin %s' % what)
        check(r.returncode == 0 and r.stdout == '' and time.monotonic() - t0 < 3,
              'stdin %s: exits 0 after --wait (%s; %s)' % (what, r.returncode, r.stderr))
    check(srv.stop() == 0, 'stdin kinds: server exits 0')


def test_stdin_backpressure():
    """A 4 MB file on stdin with --max-queued below one 64 KiB read of it:
    stdin pauses line by line once half the queue is unsent, keeps the rest
    of the read, and resumes on the runtime's on_drain; every line comes
    back, in order. A queue too small for even one line: one error, once."""
    import tempfile
    srv = Server('--app', 'echo', '--rate-msgs', '0', '--rate-bytes', '0')
    lines = ['{"i":%d,"pad":"%s"}' % (i, 'p' * 80) for i in range(40000)]
    for kind in ('file', 'pipe'):
        with tempfile.TemporaryFile('w+') as f:
            f.write('\n'.join(lines) + '\n')
            f.seek(0)
            args = [CLIENT, '--port', str(srv.port), '--wait', '1', '--max-queued', '16384']
            if kind == 'file':
                r = subprocess.run(args, stdin=f, capture_output=True, text=True,
                                   timeout=STEP * 2)
            else:
                cat = subprocess.Popen(['cat'], stdin=f, stdout=subprocess.PIPE)
                r = subprocess.run(args, stdin=cat.stdout, capture_output=True, text=True,
                                   timeout=STEP * 2)
                cat.stdout.close()
                cat.wait()
        check_clean(r.stderr, 'client with 4 MB on stdin (%s)' % kind)
        got = r.stdout.splitlines()
        check(r.returncode == 0 and got == lines,
              'stdin backpressure (%s): %s, %d of %d lines back; %s'
              % (kind, r.returncode, len(got), len(lines), r.stderr[-300:]))
    with tempfile.TemporaryFile('w+') as f:
        f.write('\n'.join(lines[:1000]) + '\n')
        f.seek(0)
        r = subprocess.run([CLIENT, '--port', str(srv.port), '--max-queued', '100'], stdin=f,
                           capture_output=True, text=True, timeout=STEP)
    refusals = [l for l in r.stderr.splitlines() if 'not sent' in l]
    check(r.returncode == 1 and len(refusals) == 1 and 'slow consumer' in r.stderr,
          'a queue smaller than a line: exit 1 and one refusal (%s, %d refusals)'
          % (r.returncode, len(refusals)))
    check(srv.stop() == 0, 'stdin backpressure: server exits 0')


def test_json_not_object():
    srv = Server('--app', 'echo')
    status, out, err = run_client(srv.port, ['--wait', '0.5'],
                                  'not json\n[1, 2]\n{"ok": 1}\n"str"\n')
    check(out == ['{"ok":1}'], 'bad json lines are not sent: %r' % out)
    check('line 1 not sent' in err and 'line 2 not sent' in err and 'line 4 not sent' in err,
          'bad json lines get an error on stderr: %r' % err)
    check('object' in err, 'the error says an object is expected: %r' % err)
    check(status == 1, 'a refused line makes the exit status 1 (got %s)' % status)
    srv.stop()


def test_sigterm():
    srv = Server('--app', 'chat')
    c = start_client(srv.port, '--wait', '5')
    with socket.create_connection(('127.0.0.1', srv.port), timeout=STEP) as s:
        # The raw socket is accepted once the server has logged it; the
        # client connected before it.
        srv.log.wait_for(r'accept|connect', timeout=2)
        # Sessions are on by default: the welcome comes first.
        s.settimeout(STEP)
        check(read_exact(s, 4) == b'GMUD', 'SIGTERM: a welcome arrives')
        welcome = read_exact(s, struct.unpack('<H', read_exact(s, 2))[0])
        check(b'"session_id"' in welcome, 'SIGTERM: the welcome names the session')
        time.sleep(0.2)
        t0 = time.monotonic()
        check(srv.stop(signal.SIGTERM) == 0, 'SIGTERM: server exits 0')
        check(time.monotonic() - t0 < 5, 'SIGTERM: promptly')
        s.settimeout(STEP)
        check(s.recv(1) == b'', 'SIGTERM: connections are closed')
    try:
        status = c.wait(timeout=STEP)
    except subprocess.TimeoutExpired:
        c.kill()
        status = None
    check(status == 0, 'SIGTERM: a connected client sees a clean close, exits 0 (got %s)' % status)
    srv2 = Server('--app', 'echo')
    check(srv2.stop(signal.SIGINT) == 0, 'SIGINT: server exits 0')


LOG_RE = re.compile(r'^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (error|warn|info|debug) '
                    r'(-|\S+:\d+) [a-z_]+(: .*)?$')


def test_logs():
    srv = Server('--app', 'echo')
    status, out, err = run_client(srv.port, ['--wait', '0.2'], '{"a": 1}\n')
    lines = err.splitlines()
    check(status == 0 and lines and all(LOG_RE.match(l) for l in lines),
          'client log lines: time, level, peer, event, reason: %r' % lines)
    status, out, err = run_client(srv.port, ['--wait', '0.2', '--log-level', 'error'], '{"a": 1}\n')
    check(status == 0 and err == '', '--log-level error: a clean run logs nothing: %r' % err)
    check(srv.stop() == 0, 'logs: server exits 0')
    lines = srv.log.all
    check(lines and all(LOG_RE.match(l) for l in lines), 'server log lines: %r' % lines)
    check(any(re.search(r' accept', l) for l in lines) and any(' close' in l for l in lines),
          'server logs accept and close: %r' % lines)


def test_nothing_listens():
    # A bound socket that does not listen: connecting to it is refused.
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
        status, out, err = run_client(port, ['--wait', '0'], '{"a": 1}\n')
    check(status not in (0, None), 'client exits non-zero when nothing listens (got %s)' % status)
    check('connect' in err, 'and says it could not connect: %r' % err)


def test_protocol_error():
    srv = Server('--app', 'echo', '--label', 'ABCD')
    status, out, err = run_client(srv.port, ['--wait', '2'], '{"a": 1}\n')
    check(status not in (0, None), 'a wrong label makes the client exit non-zero (got %s; %s)'
          % (status, err))
    srv.stop()


def test_exit_statuses():
    """One exit status per kind of failure (gmud_client.c, README.md)."""
    # 1: nothing to connect to.
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        status, out, err = run_client(s.getsockname()[1], ['--wait', '0'], '')
    check(status == 1, 'nothing listens: exit 1 (got %s; %s)' % (status, err))
    # 2: a configuration that cannot work, named as such, not "cannot connect".
    status, out, err = run_client(9, ['--framing', 'fixed:60', '--session', 'lecture'], '')
    check(status == 2 and 'cannot connect' not in err and '98 bytes' in err,
          'a lecture client with fixed:60: exit 2, naming the size (got %s; %s)' % (status, err))
    # 3: refused by the server (full), with its code, in mode on and off.
    for mode in ('on', 'off'):
        srv = Server('--app', 'echo', '--max-connections', '1', '--session', mode)
        holder = start_client(srv.port, '--session', mode, '--wait', '5')
        srv.log.wait_for(r'accept: connection 1 accepted')
        status, out, err = run_client(srv.port, ['--session', mode, '--wait', '2'], '')
        check(status == 3 and 'server_full' in err,
              'mode %s, server full: exit 3, saying server_full (got %s; %s)' % (mode, status, err))
        holder.kill()
        holder.wait()
        srv.stop()
    # 4: no welcome (a server without sessions, a client with them).
    srv = Server('--app', 'echo', '--session', 'off')
    status, out, err = run_client(srv.port, ['--session', 'on', '--welcome-timeout', '0.3',
                                             '--wait', '2'], '')
    check(status == 4 and 'welcome' in err,
          'no welcome: exit 4, saying so (got %s; %s)' % (status, err))
    srv.stop()


def read_refusal(port, framing):
    """Connects as a raw peer written the lecture's way and reads one frame
    of framing; its payload (padding stripped), or None."""
    with socket.create_connection(('127.0.0.1', port), timeout=STEP) as s:
        s.settimeout(STEP)
        try:
            if framing == 'line':
                data = b''
                while not data.endswith(b'\n'):
                    chunk = s.recv(1)
                    if not chunk:
                        return None
                    data += chunk
                return data[:-1]
            if framing == 'length':
                return read_exact(s, struct.unpack('<H', read_exact(s, 2))[0])
            if framing == 'gmud':
                head = read_exact(s, 6)
                return read_exact(s, struct.unpack('<H', head[4:])[0]) if head[:4] == b'GMUD' \
                    else None
            return read_exact(s, 100).rstrip(b'\0')  # fixed:100
        except (EOFError, OSError):
            return None


def test_refusal_matrix():
    """A refusal (server full) in every session mode, in each framing that
    can carry it: a raw peer reads the bare error packet, and gmud-client
    exits 3 naming the code."""
    combos = [('line', 'off'), ('length', 'off'), ('length', 'on'), ('length', 'lecture'),
              ('gmud', 'off'), ('gmud', 'on'), ('gmud', 'lecture'), ('fixed:100', 'off'),
              ('fixed:100', 'on'), ('fixed:100', 'lecture')]
    for framing, mode in combos:
        what = '%s, mode %s' % (framing, mode)
        app = ['--app', 'clock'] if mode == 'lecture' else ['--app', 'echo']
        common = ['--framing', framing, '--session', mode]
        srv = Server(*app, *common, '--max-connections', '1')
        holder = start_client(srv.port, *common, '--wait', '5')
        srv.log.wait_for(r'accept: connection 1 accepted')
        payload = read_refusal(srv.port, framing.split(':')[0])
        try:
            packet = json.loads(payload) if payload is not None else None
        except ValueError:
            packet = None
        check(isinstance(packet, dict) and packet.get('code') == 'server_full'
              and sorted(packet) == ['code', 'error'],
              '%s: the raw peer reads a bare server_full error packet: %r' % (what, payload))
        status, out, err = run_client(srv.port, [*common, '--wait', '2'], '')
        check(status == 3 and 'server_full' in err,
              '%s: gmud-client exits 3, saying server_full (got %s; %s)' % (what, status, err))
        holder.kill()
        holder.wait()
        srv.stop()


PROXY = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'lecture', 'proxy.py')


def test_burst_shaped():
    """Issue 10's case: 300 lines piped into gmud-client at once, through a
    proxy that splits and merges the stream, against the server's default
    limits (100 messages a second, a burst of 200). The server slows the
    sender rather than drop (dropping would lose 100): every line comes back,
    whole and in order; the client says on stderr that it
    was warned, and exits 0."""
    for framing, payload in (('gmud', 'json'), ('line', 'text')):
        what = 'burst %s/%s' % (framing, payload)
        run = burst_through_proxy(what, framing, payload)
        if run is None:
            continue
        status, out, err, lines, took = run
        check(status == 0, '%s: client exits 0 (got %s; %s)' % (what, status, err))
        got = [l for l in out if l in lines]
        check(out == lines, '%s: all 300 back in order (got %d, %d of them sent, first wrong: %r)'
              % (what, len(out), len(got),
                 next((o for o, l in zip(out, lines) if o != l), None)))
        check('warning from the server: rate_limited' in err,
              '%s: the warning is on stderr: %r' % (what, err))
        print('  %s: 300 lines back in order, %.1f s with a --wait of 3 s' % (what, took))


def test_burst_dropped():
    """The same burst against `--rate-policy drop`: the server drops what is
    over the burst and says so with rate_dropped; the client returns what
    came back, in order, says on stderr that lines were dropped, and exits 1:
    lines were lost."""
    what = 'burst dropped'
    run = burst_through_proxy(what, 'gmud', 'json', '--rate-policy', 'drop')
    if run is None:
        return
    status, out, err, lines, _ = run
    check(status == 1, '%s: client exits 1 (got %s; %s)' % (what, status, err))
    it = iter(lines)
    check(all(o in it for o in out), '%s: what came back is in order, whole' % what)
    check(150 <= len(out) < 300, '%s: some dropped, the burst kept (got %d)' % (what, len(out)))
    check('the server dropped lines: rate_dropped' in err,
          '%s: stderr says lines were dropped: %r' % (what, err))
    print('  %s: %d of 300 back, exit %d' % (what, len(out), status))


def burst_through_proxy(what, framing, payload, *server_args):
    """300 lines at once from gmud-client through tests/lecture/proxy.py to
    gmud-server --app echo with its default limits (and server_args).
    Returns (status, stdout lines, stderr, the lines sent, seconds), or None
    if the proxy did not start (reported)."""
    srv = Server('--app', 'echo', '--framing', framing, '--payload', payload, *server_args)
    proxy = subprocess.Popen([sys.executable, PROXY, '0', str(srv.port), '--lifetime', '30'],
                             stdout=subprocess.PIPE, text=True)
    m = re.search(r':(\d+)$', proxy.stdout.readline().strip())
    if not check(m is not None, '%s: the proxy starts' % what):
        proxy.kill()
        proxy.wait()
        proxy.stdout.close()
        srv.stop()
        return None
    if payload == 'json':
        lines = [json.dumps({'i': i, 's': 'x' * (i % 40)}, separators=(',', ':'))
                 for i in range(300)]
    else:
        lines = ['line %d %s' % (i, 'y' * (i % 40)) for i in range(300)]
    t0 = time.monotonic()
    status, out, err = run_client(int(m.group(1)), ['--framing', framing, '--payload', payload,
                                                    '--wait', '3'],
                                  ''.join(l + '\n' for l in lines), timeout=STEP + 10)
    took = time.monotonic() - t0
    proxy.kill()
    proxy.wait()
    proxy.stdout.close()
    check(srv.stop() == 0, '%s: server exits 0' % what)
    return status, out, err, lines, took


TESTS = [test_help, test_bad_options, test_echo, test_burst_shaped, test_burst_dropped,
         test_clock, test_clock_local_time,
         test_clock_lecture_client, test_chat, test_chat_text, test_chat_json_forgery,
         test_stdin_kinds, test_stdin_backpressure,
         test_json_not_object, test_sigterm, test_logs, test_nothing_listens,
         test_protocol_error, test_exit_statuses, test_refusal_matrix]


def main():
    return run_tests(TESTS)

if __name__ == '__main__':
    sys.exit(main())
