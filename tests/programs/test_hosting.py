#!/usr/bin/env python3
"""Hosting gmud-server (issue 12): options from the environment, the
effective configuration logged, several listeners, IPv6, SO_REUSEPORT, and
SIGHUP reloading the TLS certificate, over loopback.

Usage: test_hosting.py <gmud-server> <gmud-client> <gmud-keygen>

  environment   GMUD_<OPTION> sets an option the command line leaves out;
                the flag wins; a bad value names the variable (exit 2);
                flags take 1/true/yes/on; --help names every variable;
                the "config" lines give the effective values.
  listeners     --listen 127.0.0.1:0,[::1]:0 --listen 127.0.0.2:0: one
                server on three addresses, an echo on each, one set of
                connection ids; bad --listen values refused.
  reuseport     two servers on one port with --reuseport; without it the
                second cannot bind and says so (exit 1).
  json_logs     --log-format json: every line of server and client one JSON
                object; the close line's counts match the exchange; a
                skipped sequence is a "security" object with kind,
                session, expected and got.
  sighup        a client pinned to certificate A stays connected while the
                files are replaced by B and SIGHUP reloads them: new
                clients need B's pin; a reload from a broken file fails,
                is logged, and B stays.

Every wait is bounded (STEP, 10 s); a passing run takes a few seconds.
Python 3 standard library. Exit 0 on success. GMUD_TEST_ONLY=<part of a
test's name> runs only the matching tests.
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.argv[1:4] = [os.path.abspath(a) for a in sys.argv[1:4]]

from progtest import STEP, Lines, check, check_clean, run_tests

sys.path.insert(1, HERE)
import json
import session_attack as sa
from test_programs import finish, run_client, start_client

SERVER, CLIENT, KEYGEN = sys.argv[1:4]
TMP = tempfile.mkdtemp(prefix='gmud-hosting-')
# Our own variables only: whatever GMUD_* the caller's shell has must not
# reach the programs.
for k in [k for k in os.environ if k.startswith('GMUD_') and k != 'GMUD_TEST_ONLY']:
    del os.environ[k]
os.environ.pop('SSLKEYLOGFILE', None)
BASE_ENV = dict(os.environ)


class Proc:
    """gmud-server with exactly args and extra environment; its log lines."""

    def __init__(self, args, env=None, expect_listen=1):
        e = dict(BASE_ENV, **(env or {}))
        self.proc = subprocess.Popen([SERVER, *args], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     text=True, env=e)
        self.log = Lines(self.proc.stderr)
        self.ports = []
        for _ in range(expect_listen):
            # a text line, or a JSON one ("event":"listen","message":"...")
            m = self.log.wait_for(r'listen(?:: |","message":")listening on (\S+) port (\d+)')
            if m is None:
                break
            self.ports.append((m.group(1), int(m.group(2))))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            status = self.proc.wait(timeout=STEP)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None
        self.log.t.join(timeout=STEP)
        check_clean('\n'.join(self.log.all), 'server')
        return status


def run_server_once(args, env=None):
    """A server expected to exit at once (a usage error): status, stderr."""
    e = dict(BASE_ENV, **(env or {}))
    try:
        r = subprocess.run([SERVER, *args], capture_output=True, text=True, timeout=STEP,
                           env=e, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return None, 'did not exit'
    return r.returncode, r.stderr


def echo_ok(port, *args, host='127.0.0.1', line='{"n":1}'):
    status, out, err = run_client(port, ['--host', host, *args, '--wait', '0.3'], line + '\n')
    return status == 0 and out == [line], (status, out, err.strip()[-300:])


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


# ---- environment ------------------------------------------------------------------

def test_environment():
    srv = Proc(['--port', '0'], env={'GMUD_APP': 'echo', 'GMUD_MAX_CONNECTIONS': '7',
                                     'GMUD_REUSEPORT': 'yes'})
    if check(srv.ports, 'env: the server starts: %s' % srv.log.all[-3:]):
        ok, why = echo_ok(srv.ports[0][1])
        check(ok, 'GMUD_APP=echo: the server echoes: %r' % (why,))
        config = ' '.join(l for l in srv.log.all if ' config: ' in l)
        check('--app echo' in config and '--max-connections 7' in config and
              '--reuseport on' in config and '--port 0' in config,
              'the config lines give the values from the environment: %s' % config)
    check(srv.stop() == 0, 'env: server exits 0')
    # The flag wins over the variable.
    srv = Proc(['--port', '0', '--app', 'echo'], env={'GMUD_APP': 'clock'})
    if check(srv.ports, 'flag and env: the server starts'):
        ok, why = echo_ok(srv.ports[0][1])
        check(ok, '--app echo beats GMUD_APP=clock: %r' % (why,))
    check(srv.stop() == 0, 'flag and env: server exits 0')
    # Bad values name the variable; a flag takes only yes/no words.
    status, err = run_server_once([], env={'GMUD_PORT': 'eighty'})
    check(status == 2 and 'GMUD_PORT (--port)' in err and 'eighty' in err,
          'GMUD_PORT=eighty: exit 2 naming the variable (%s; %s)' % (status, err.strip()))
    status, err = run_server_once([], env={'GMUD_REUSEPORT': 'maybe'})
    check(status == 2 and 'GMUD_REUSEPORT=maybe' in err,
          'GMUD_REUSEPORT=maybe: exit 2 (%s; %s)' % (status, err.strip()))
    # On the command line too: --flag=no is off (and beats the variable),
    # --flag=maybe is refused.
    srv = Proc(['--port', '0', '--app', 'echo', '--reuseport=no'], env={'GMUD_REUSEPORT': '1'})
    if check(srv.ports, '--reuseport=no: the server starts'):
        config = ' '.join(l for l in srv.log.all if ' config: ' in l)
        check('--reuseport off' in config, '--reuseport=no beats GMUD_REUSEPORT=1: %s' % config)
    check(srv.stop() == 0, '--reuseport=no: server exits 0')
    status, err = run_server_once(['--reuseport=maybe'])
    check(status == 2 and "--reuseport: 'maybe' is not a flag's value" in err,
          '--reuseport=maybe: exit 2 (%s; %s)' % (status, err.strip()))
    # --help names each option's variable.
    for prog in (SERVER, CLIENT):
        r = subprocess.run([prog, '--help'], capture_output=True, text=True, timeout=STEP,
                           env=BASE_ENV)
        text = re.sub(r'\s+', ' ', r.stdout)
        opts = sorted(set(re.findall(r'^  (--[a-z0-9-]+)', r.stdout, re.M)) -
                      {'--help', '--version'})
        missing = [o for o in opts
                   if '$GMUD_' + o[2:].upper().replace('-', '_') not in text]
        check(r.returncode == 0 and len(opts) > 10 and not missing,
              '%s --help names a variable for every option; missing: %r'
              % (os.path.basename(prog), missing))
    # --version: the library's, as include/gmud/version.h writes it.
    header = open(os.path.join(HERE, '..', '..', 'include', 'gmud', 'version.h')).read()
    want = '.'.join(re.search(r'#define GMUD_VERSION_%s (\d+)' % k, header).group(1)
                    for k in ('MAJOR', 'MINOR', 'PATCH'))
    codec = os.path.join(os.path.dirname(SERVER), 'gmud-codec')
    for prog in (SERVER, CLIENT, KEYGEN, codec):
        r = subprocess.run([prog, '--version'], capture_output=True, text=True, timeout=STEP,
                           env=BASE_ENV)
        name = os.path.basename(prog)
        check(r.returncode == 0 and r.stdout.startswith('%s %s' % (name, want)),
              '%s --version: %s %s (got %r)' % (name, name, want, r.stdout))
    # The client reads them too.
    srv = Proc(['--port', '0', '--app', 'echo'])
    if srv.ports:
        e = dict(BASE_ENV, GMUD_PORT=str(srv.ports[0][1]), GMUD_WAIT='0.3')
        r = subprocess.run([CLIENT], input='{"c":1}\n', capture_output=True, text=True,
                           timeout=STEP, env=e)
        check(r.returncode == 0 and r.stdout.splitlines() == ['{"c":1}'],
              'gmud-client with GMUD_PORT and GMUD_WAIT: %s %r %s'
              % (r.returncode, r.stdout, r.stderr[-200:]))
    check(srv.stop() == 0, 'client env: server exits 0')


# ---- listeners ---------------------------------------------------------------------

def test_listeners():
    srv = Proc(['--app', 'chat', '--listen', '127.0.0.1:0,[::1]:0', '--listen', '127.0.0.2:0'],
               expect_listen=3)
    hosts = [h for h, _ in srv.ports]
    if not check(hosts == ['127.0.0.1', '::1', '127.0.0.2'],
                 'three listen lines, in order: %r' % srv.ports):
        srv.stop()
        return
    # A chat client on each address: each hears the others, ids all differ.
    clients = [start_client(port, '--host', host, '--wait', '0.5') for host, port in srv.ports]
    for i in range(3):
        srv.log.wait_for(r'accept: connection %d accepted' % (i + 1))
    clients[0].stdin.write('{"hi":0}\n')
    clients[0].stdin.flush()
    heard = [c.out.wait_for(r'"hi"') for c in clients[1:]]
    check(all(heard), 'chat across three listeners: %r' % [h and h.string for h in heard])
    ids = set()
    for c in clients[1:]:
        c.stdin.write('{"me":1}\n')
        c.stdin.flush()
    for _ in range(2):
        m = clients[0].out.wait_for(r'"me"')
        if m:
            ids.add(re.search(r'"from":\s*(\d+)', m.string).group(1))
    check(len(ids) == 2, 'the IPv6 and the 127.0.0.2 clients have distinct ids: %r' % ids)
    check(all(finish(c) == 0 for c in clients), 'listeners: the clients exit 0')
    check(srv.stop() == 0, 'listeners: server exits 0')
    for bad, says in (('127.0.0.1', 'ADDR:PORT'), ('[::1:80', '[ADDR]:PORT'),
                      ('127.0.0.1:99999', 'port'), ('tls:127.0.0.1:0', '--tls-cert')):
        status, err = run_server_once(['--listen', bad])
        check(status == 2 and says in err, '--listen %s: refused (%s; %s)'
              % (bad, status, err.strip()))


# ---- SO_REUSEPORT --------------------------------------------------------------------

def test_reuseport():
    port = free_port()
    addr = '127.0.0.1:%d' % port
    a = Proc(['--app', 'echo', '--listen', addr, '--reuseport'])
    b = Proc(['--app', 'echo', '--listen', addr, '--reuseport'])
    check(a.ports == [('127.0.0.1', port)] and b.ports == [('127.0.0.1', port)],
          'two servers listen on port %d with --reuseport: %r %r' % (port, a.ports, b.ports))
    ok, why = echo_ok(port)
    check(ok, 'reuseport: a client is served: %r' % (why,))
    status, err = run_server_once(['--app', 'echo', '--listen', addr])
    check(status == 1 and 'cannot bind' in err,
          'without --reuseport a third cannot bind (%s; %s)' % (status, err.strip()[-200:]))
    check(a.stop() == 0 and b.stop() == 0, 'reuseport: both exit 0')


# ---- JSON logs ----------------------------------------------------------------------

def json_lines(lines, what):
    objs = []
    for l in lines:
        try:
            objs.append(json.loads(l))
        except ValueError:
            check(False, '%s: not a JSON line: %r' % (what, l))
    for o in objs:
        check(all(k in o for k in ('time', 'level', 'peer', 'event', 'message')),
              '%s: the common members: %r' % (what, o))
    return objs


def test_json_logs():
    srv = Proc(['--port', '0', '--app', 'echo', '--log-format', 'json'])
    if not check(srv.ports, 'json: the server starts: %s' % srv.log.all[-3:]):
        srv.stop()
        return
    port = srv.ports[0][1]
    lines = ['{"a":1}', '{"b":[1,2,3]}', '{"c":"x"}']
    status, out, err = run_client(port, ['--log-format', 'json', '--wait', '0.3'],
                                  '\n'.join(lines) + '\n')
    check(status == 0 and out == lines, 'json: the echoes (%s, %r)' % (status, out))
    client = json_lines(err.splitlines(), 'client log')
    closes = [o for o in client if o['event'] == 'close']
    check(len(closes) == 1 and closes[0].get('messages_out') == 3 and
          closes[0].get('messages_in') == 3 and closes[0].get('reason') == 'closed locally',
          'json: the client\'s close object counts 3 messages each way: %r' % closes)
    # A raw peer in mode on that skips sequence numbers.
    with socket.create_connection(('127.0.0.1', port), timeout=STEP) as s:
        got = b''
        while sa.frames_of(got) == [] and len(got) < 4096:
            chunk = s.recv(4096)
            if not chunk:
                break
            got += chunk
        sid = sa.session_id_of(got)
        s.sendall(sa.session_frame(sid, 5, b'{"n":1}'))
        try:
            while s.recv(4096):
                pass
        except OSError:
            pass
    srv.log.wait_for(r'"event":"close".*"reason":"session violation"')
    check(srv.stop() == 0, 'json: server exits 0')
    server = json_lines(srv.log.all, 'server log')
    closes = [o for o in server if o['event'] == 'close']
    first = closes[0] if closes else {}
    check(first.get('messages_in') == 3 and first.get('messages_out') == 4 and
          first.get('bytes_in', 0) > 0 and first.get('duration_ms', -1) >= 0 and
          isinstance(first.get('session'), int) and first.get('id') == 1,
          'json: the server\'s close object: 3 messages in, a welcome and 3 echoes out: %r'
          % first)
    sec = [o for o in server if o['event'] == 'security']
    check(len(sec) == 1 and sec[0].get('kind') == 'skipped' and sec[0].get('session') == sid
          and sec[0].get('expected') == 0 and sec[0].get('got') == 5,
          'json: a "security" object with kind, session, expected 0 and got 5: %r' % sec)


# ---- SIGHUP ----------------------------------------------------------------------------

def keygen(name, *extra):
    cert, key = os.path.join(TMP, name + '-cert.pem'), os.path.join(TMP, name + '-key.pem')
    r = subprocess.run([KEYGEN, '--cert', cert, '--key', key, *extra], capture_output=True,
                       text=True, timeout=STEP)
    if not check(r.returncode == 0, 'keygen %s: %s' % (name, r.stderr)):
        return None
    return r.stdout.strip()


def test_sighup():
    pin_a = keygen('live')
    if pin_a is None:
        return
    cert, key = os.path.join(TMP, 'live-cert.pem'), os.path.join(TMP, 'live-key.pem')
    srv = Proc(['--port', '0', '--app', 'echo', '--tls-cert', cert, '--tls-key', key])
    if not check(srv.ports, 'sighup: the server starts: %s' % srv.log.all[-3:]):
        srv.stop()
        return
    port = srv.ports[0][1]
    old = start_client(port, '--pin', pin_a, '--wait', '0.5')
    old.stdin.write('{"before":1}\n')
    old.stdin.flush()
    check(old.out.wait_for(r'"before"') is not None, 'sighup: the pinned client is served')
    pin_b = keygen('live', '--force')
    check(pin_b and pin_b != pin_a, 'sighup: a new key and certificate in the same files')
    srv.proc.send_signal(signal.SIGHUP)
    check(srv.log.wait_for(r'tls: certificate and key reloaded') is not None,
          'SIGHUP: the reload is logged: %s' % srv.log.all[-2:])
    ok, why = echo_ok(port, '--pin', pin_b)
    check(ok, 'after SIGHUP a client pinned to the new key is served: %r' % (why,))
    status, out, err = run_client(port, ['--pin', pin_a, '--wait', '0.3'], '{"x":1}\n')
    check(status not in (0, None) and 'pinned' in err,
          'after SIGHUP the old pin is refused (%s; %s)' % (status, err.strip()[-200:]))
    old.stdin.write('{"after":1}\n')
    old.stdin.flush()
    check(old.out.wait_for(r'"after"') is not None,
          'the client connected before SIGHUP is still served')
    check(finish(old) == 0, 'sighup: the old client exits 0')
    # A broken file: the reload fails, is logged, and the old one stays.
    with open(cert, 'w') as f:
        f.write('not a certificate\n')
    srv.proc.send_signal(signal.SIGHUP)
    check(srv.log.wait_for(r'tls: reload failed, the old certificate stays: .*') is not None,
          'a failed reload is logged with its reason: %s' % srv.log.all[-2:])
    ok, why = echo_ok(port, '--pin', pin_b)
    check(ok, 'after the failed reload the certificate still serves: %r' % (why,))
    check(srv.stop() == 0, 'sighup: server exits 0')
    # Without TLS, SIGHUP is logged and harmless.
    srv = Proc(['--port', '0', '--app', 'echo'])
    srv.proc.send_signal(signal.SIGHUP)
    check(srv.log.wait_for(r'reload: SIGHUP: no TLS certificate') is not None,
          'SIGHUP without TLS: logged')
    ok, why = echo_ok(srv.ports[0][1])
    check(ok, 'SIGHUP without TLS: still serving: %r' % (why,))
    check(srv.stop() == 0, 'SIGHUP without TLS: server exits 0')


TESTS = [test_environment, test_listeners, test_reuseport, test_json_logs, test_sighup]


def main():
    try:
        return run_tests(TESTS)
    finally:
        shutil.rmtree(TMP, ignore_errors=True)


if __name__ == '__main__':
    sys.exit(main())
