#!/usr/bin/env python3
"""TLS end to end (docs/PROTOCOL.md section 8): gmud-server and gmud-client
against Python's ssl module, openssl(1) and each other, over loopback.

Usage: test_tls_programs.py <gmud-server> <gmud-client>

  python_client     Python's ssl (CA file, host name checked) around a peer
                    written the lecture's way (tests/lecture/lecture_peer.py)
                    to gmud-server --app echo with TLS: gmud and length
                    framing with --session off, frames sent the lecture's
                    way, byte by byte, and glued together, each echoed
                    whole; with sessions on, the welcome and one echo.
  python_server     gmud-client to a Python ssl server (gmud framing,
                    sessions off, echoing): --ca and --server-name, --pin,
                    a wrong pin, a wrong CA, a wrong name.
  openssl_s_client  s_client completes a TLS 1.3 handshake and verifies;
                    TLS 1.2 is refused unless the server has --tls12.
  no_plaintext      gmud-client -> recording proxy -> gmud-server: with TLS
                    no message text, JSON key, label or session id is on
                    the wire; without TLS (the control) every one of them is.
  keylog_insecure   SSLKEYLOGFILE for the client and the server: NSS key log
                    lines, the same secrets on both sides, and a warning;
                    none without it. --insecure warns and connects.
  plaintext_to_tls  plain gmud-client, a raw lecture-style peer and a silent
                    peer to the TLS port: the first two get the plaintext
                    error packet tls_required (exit 3), the silent one the
                    handshake timeout; the reasons logged, and the server
                    still serves TLS afterwards.
  expired           a certificate signed by the CA given to --ca but expired
                    (2020) is refused by the client: "certificate has
                    expired", non-zero; the same CA's valid one is served.
  replay            a whole recorded TLS session's client bytes sent again as
                    a new connection: the handshake fails, 0 messages in.
  both_listeners    --port A --tls-port B, one server: echo on each, a TLS
                    client on the plain port says "not TLS"; chat across
                    them with distinct ids; --max-connections counts both.

Certificates are made at the start with openssl(1) in a temporary
directory. Servers bind port 0 and the test reads the ports from their
"listen" log lines. Every wait is bounded (STEP, 10 s, unless said
otherwise); a passing run takes about 10 s. Python 3 standard library and
openssl(1). Exit 0 on
success. GMUD_TEST_ONLY=<part of a test's name> runs only the matching tests.
"""

import base64
import contextlib
import hashlib
import json
import os
import re
import shutil
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(1, os.path.join(HERE, '..', 'lecture'))
# Absolute, so that a test may change directory (the key log's "no file").
sys.argv[1:3] = [os.path.abspath(a) for a in sys.argv[1:3]]

from progtest import STEP, check, run_tests
from test_programs import Server, finish, run_client, start_client

import lecture_peer as lp
import session_attack as sa

# A key log asked for by whoever runs the tests must not leak into ours.
os.environ.pop('SSLKEYLOGFILE', None)

TMP = None            # the temporary directory of the certificates
CERT = KEY = None     # the servers' self-signed certificate for localhost
OTHER_CERT = OTHER_KEY = None   # a second one: another CA, another key
PIN = OTHER_PIN = None


# ---- certificates -------------------------------------------------------------

def make_cert(name):
    cert, key = os.path.join(TMP, name + '.pem'), os.path.join(TMP, name + '.key')
    r = subprocess.run(['openssl', 'req', '-x509', '-newkey', 'ec', '-pkeyopt',
                        'ec_paramgen_curve:P-256', '-nodes', '-days', '2', '-keyout', key,
                        '-out', cert, '-subj', '/CN=localhost', '-addext',
                        'subjectAltName=DNS:localhost,IP:127.0.0.1'],
                       capture_output=True, text=True, timeout=STEP)
    if r.returncode != 0:
        raise RuntimeError('openssl req failed: %s' % r.stderr)
    return cert, key


def spki_pin(cert):
    """sha256:<hex> of the DER SubjectPublicKeyInfo (PROTOCOL.md 8): the
    PEM public key's base64 body is that DER."""
    r = subprocess.run(['openssl', 'x509', '-in', cert, '-pubkey', '-noout'],
                       capture_output=True, text=True, timeout=STEP, check=True)
    der = base64.b64decode(''.join(l for l in r.stdout.splitlines() if not l.startswith('-----')))
    return 'sha256:' + hashlib.sha256(der).hexdigest()


def setup_certs():
    global TMP, CERT, KEY, OTHER_CERT, OTHER_KEY, PIN, OTHER_PIN
    TMP = tempfile.mkdtemp(prefix='gmud-tls-')
    CERT, KEY = make_cert('cert')
    OTHER_CERT, OTHER_KEY = make_cert('other')
    PIN, OTHER_PIN = spki_pin(CERT), spki_pin(OTHER_CERT)


# ---- helpers ------------------------------------------------------------------

def tls_args(*extra):
    return ['--tls-cert', CERT, '--tls-key', KEY, *extra]


def verify_args():
    return ['--ca', CERT, '--server-name', 'localhost']


def both_server(*args):
    """gmud-server with --port 0 plain and --tls-port 0; sets .plain_port
    and .tls_port from its two "listen" lines."""
    srv = Server(*tls_args('--tls-port', '0'), *args)
    if sum(' listen' in l for l in srv.log.all) < 2:
        srv.log.wait_for(r'listen.* port \d+')
    for line in srv.log.all:
        m = re.search(r'listen.* port (\d+) \((.*)\)', line)
        if m:
            setattr(srv, 'tls_port' if 'TLS' in m.group(2) else 'plain_port', int(m.group(1)))
    return srv


def tls_connect(port):
    """A client socket wrapped by Python's ssl: the certificate checked
    against cert.pem, the name against "localhost"."""
    ctx = ssl.create_default_context(cafile=CERT)
    raw = socket.create_connection(('127.0.0.1', port), timeout=STEP)
    try:
        return ctx.wrap_socket(raw, server_hostname='localhost')
    except BaseException:
        raw.close()
        raise


def frame_bytes(framing, data):
    """One frame as lecture_peer.send_message puts it on the wire."""
    head = b'GMUD' if framing == 'gmud' else b''
    return head + struct.pack('<H', len(data)) + data


@contextlib.contextmanager
def environ(**values):
    """os.environ with values set (None: unset), restored after."""
    saved = {k: os.environ.get(k) for k in values}
    for k, v in values.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class PyTLSEchoServer:
    """Python's ssl module as the server: gmud framing, no sessions. Accepts
    connections one at a time on 127.0.0.1 and sends every frame back,
    read and written the lecture's way (lecture_peer). .errors holds, per
    connection, what went wrong (a failed handshake; an end of stream
    without close_notify); .echoed counts the frames sent back."""

    def __init__(self, cert, key):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        self.listener = socket.create_server(('127.0.0.1', 0))
        self.listener.settimeout(0.1)
        self.port = self.listener.getsockname()[1]
        self.errors = []
        self.echoed = 0
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stopping.is_set():
            try:
                raw, _ = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            raw.settimeout(STEP)
            try:
                # Ragged ends raise: a clean close is the client's close_notify.
                with self.ctx.wrap_socket(raw, server_side=True,
                                          suppress_ragged_eofs=False) as s:
                    while True:
                        data = lp.recv_message(s, 'gmud')
                        if data is None:
                            self.errors.append('Invalid Packet')
                            break
                        lp.send_message(s, 'gmud', data)
                        self.echoed += 1
            except lp.StreamEnded as e:
                if 'with 0 of 4 bytes' not in str(e):
                    self.errors.append(str(e))
            except (ssl.SSLError, OSError) as e:
                self.errors.append(repr(e))
            finally:
                raw.close()

    def close(self):
        self.stopping.set()
        self.thread.join(STEP)
        self.listener.close()


# ---- 1. Python's ssl client to gmud-server ----------------------------------

def json_messages():
    msgs = [json.dumps(lp.lecture_object(n)) for n in range(3)]
    msgs += [json.dumps({"nested": {"list": [1, 2, "three"]}, "u": "\u00e9"}),
             json.dumps({"a": 1}), json.dumps({"big": "x" * 3000, "n": 5})]
    return [m.encode('utf-8') for m in msgs]


def test_python_client():
    """Both JSON framings of the lecture, --session off: the bytes are
    exactly the lecture's, inside TLS."""
    for framing, peer_framing in (('gmud', 'gmud'), ('length', 'json')):
        what = 'Python ssl client, %s framing' % framing
        srv = Server('--app', 'echo', '--framing', framing, '--session', 'off', *tls_args())
        msgs = json_messages()
        got = []
        try:
            with tls_connect(srv.port) as s:
                check(s.version() == 'TLSv1.3', '%s: TLS 1.3 (got %s)' % (what, s.version()))
                # 0, 1: the lecture's way (header and data in separate sends).
                for m in msgs[:2]:
                    lp.send_message(s, peer_framing, m)
                # 2: one byte per send(), so one byte per TLS record.
                for b in frame_bytes(framing, msgs[2]):
                    s.send(bytes([b]))
                # 3, 4, 5: glued together, cut inside the first header and
                # just after the second's start.
                blob = b''.join(frame_bytes(framing, m) for m in msgs[3:])
                cut = len(frame_bytes(framing, msgs[3])) + 2
                for part in (blob[:3], blob[3:cut], blob[cut:]):
                    s.sendall(part)
                for _ in msgs:
                    got.append(lp.recv_message(s, peer_framing))
        except (lp.StreamEnded, OSError) as e:
            check(False, '%s: %r after %d echoes; server log: %s'
                  % (what, e, len(got), srv.log.all[-3:]))
        check(len(got) == len(msgs), '%s: %d of %d echoes' % (what, len(got), len(msgs)))
        for n, (m, g) in enumerate(zip(msgs, got)):
            check(g == m, '%s: message %d echoed whole: sent %r, got %r'
                  % (what, n, m[:60], (g or b'')[:60]))
        check(srv.stop() == 0, '%s: server exits 0' % what)

    # Sessions on (the default for gmud framing with JSON): the welcome of
    # PROTOCOL.md 6.2 is the first packet out of TLS; then one data packet.
    what = 'Python ssl client, sessions on'
    srv = Server('--app', 'echo', *tls_args())
    try:
        with tls_connect(srv.port) as s:
            welcome = lp.recv_message(s, 'gmud')
            m = re.fullmatch(rb'\{"session_id": ([1-9]\d*), "sequence_id": 0\}', welcome or b'')
            if check(m is not None, '%s: the welcome arrives whole: %r' % (what, welcome)):
                sid = int(m.group(1))
                check(json.loads(welcome) == {'session_id': sid, 'sequence_id': 0},
                      '%s: the welcome parses' % what)
                data = json.dumps({"move": "north"}).encode()
                s.sendall(sa.session_frame(sid, 0, data))
                reply = lp.recv_message(s, 'gmud') or b''
                check(reply == sa.session_header(sid, 1) + data,
                      '%s: the echo carries the session header (sid, 1): %r' % (what, reply))
    except (lp.StreamEnded, OSError) as e:
        check(False, '%s: %r; server log: %s' % (what, e, srv.log.all[-3:]))
    check(srv.stop() == 0, '%s: server exits 0' % what)


# ---- 2. gmud-client to Python's ssl server ----------------------------------

def test_python_server():
    py = PyTLSEchoServer(CERT, KEY)
    lines = ['{"a":1}', '{"message":"0:Sat Mar 30 11:40:50 2019","value":0}',
             '{"u":"\u00e9","list":[1,2,3]}']
    common = ['--framing', 'gmud', '--session', 'off', '--wait', '1']
    try:
        for what, extra in (('--ca and --server-name', verify_args()),
                            ('--pin', ['--pin', PIN])):
            py.errors.clear()
            status, out, err = run_client(py.port, [*common, *extra],
                                          ''.join(l + '\n' for l in lines))
            check(status == 0, 'gmud-client %s to a Python ssl server: exit 0 (got %s; %s)'
                  % (what, status, err))
            check(out == lines, 'gmud-client %s: the echoes on stdout: %r' % (what, out))
            check(not py.errors, 'gmud-client %s: the Python server saw a clean end '
                  '(close_notify): %r' % (what, py.errors))
        status, out, err = run_client(py.port, [*common, '--pin', OTHER_PIN], '{"a":1}\n')
        check(status == 1 and 'not the pinned' in err and out == [],
              'a wrong pin: exit 1, saying the key is not the pinned one (got %s; %s)'
              % (status, err))
        for what, extra in (('a wrong CA', ['--ca', OTHER_CERT, '--server-name', 'localhost']),
                            ('a wrong name', ['--ca', CERT, '--server-name', 'other.example'])):
            status, out, err = run_client(py.port, [*common, *extra], '{"a":1}\n')
            check(status not in (0, None) and 'certificate verify failed' in err and out == [],
                  '%s: non-zero exit, "certificate verify failed" (got %s; %s)'
                  % (what, status, err))
    finally:
        py.close()


# ---- 3. openssl s_client --------------------------------------------------------

def s_client(port, *args):
    try:
        r = subprocess.run(['openssl', 's_client', '-connect', '127.0.0.1:%d' % port,
                            '-CAfile', CERT, '-verify_hostname', 'localhost',
                            '-verify_return_error', *args],
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=STEP)
    except subprocess.TimeoutExpired:
        return None, ''
    return r.returncode, (r.stdout + r.stderr).decode('utf-8', 'replace')


def test_openssl_s_client():
    srv = Server('--app', 'echo', *tls_args())
    status, out = s_client(srv.port, '-tls1_3')
    check(status == 0 and 'Verify return code: 0 (ok)' in out and 'New, TLSv1.3, Cipher is' in out,
          's_client -tls1_3: handshake done, verified, TLS 1.3 (got %s; %s)'
          % (status, out[-600:]))
    # "Verify return code" and "Protocol" are printed even when the
    # handshake fails: the negotiated cipher is what says it worked.
    status, out = s_client(srv.port, '-tls1_2')
    check(status not in (0, None) and 'New, TLSv1.2, Cipher is' not in out,
          's_client -tls1_2 against a TLS 1.3 server: refused (got %s; %s)'
          % (status, out[-600:]))
    check(srv.log.wait_for(r' tls: .*(unsupported protocol|version)', timeout=2) is not None,
          'the server logs the TLS 1.2 attempt with its reason: %s' % srv.log.all[-3:])
    check(srv.stop() == 0, 's_client: server exits 0')

    srv = Server('--app', 'echo', *tls_args('--tls12'))
    status, out = s_client(srv.port, '-tls1_2')
    check(status == 0 and 'Verify return code: 0 (ok)' in out and 'New, TLSv1.2, Cipher is' in out,
          's_client -tls1_2 against --tls12: handshake done, verified (got %s; %s)'
          % (status, out[-600:]))
    status, out = s_client(srv.port, '-tls1_3')
    check(status == 0 and 'New, TLSv1.3, Cipher is' in out,
          's_client -tls1_3 against --tls12: still TLS 1.3 (got %s)' % status)
    check(srv.stop() == 0, 's_client --tls12: server exits 0')


# ---- 4. no plaintext on the wire ------------------------------------------------

SECRETS = [{"secret_key_xyz": "plaintext_marker_123"},
           {"other_key_abc": "marker_two_456", "count_key_789": 7}]


def recorded_run(tls):
    """gmud-client -> RecordingProxy -> gmud-server --app echo, sessions on.
    Returns (recording, session id or None, client stdout lines)."""
    srv = Server('--app', 'echo', *(tls_args() if tls else []))
    lines = [json.dumps(m, separators=(',', ':')) for m in SECRETS]
    sid, rec, out = None, None, []
    with sa.RecordingProxy(srv.port, lifetime=STEP * 2) as proxy:
        status, out, err = run_client(proxy.port, [*(verify_args() if tls else []),
                                                   '--wait', '0.5'],
                                      ''.join(l + '\n' for l in lines))
        what = 'recorded run, %s' % ('TLS' if tls else 'plain TCP')
        check(status == 0 and out == lines, '%s: the echoes come back (got %s, %r; %s)'
              % (what, status, out, err))
        m = re.search(r'welcomed: session (\d+)', err)
        if check(m is not None, '%s: the client logs its session id: %r' % (what, err)):
            sid = int(m.group(1))
        try:
            rec = proxy.wait_done(1)[0]
        except TimeoutError as e:
            check(False, '%s: %s' % (what, e))
    check(srv.stop() == 0, 'recorded run: server exits 0')
    return rec, sid, lines


def wire_markers(sid, lines):
    """What must not be readable on the wire: name -> bytes."""
    marks = {'message %d' % i: l.encode() for i, l in enumerate(lines)}
    for m in SECRETS:
        for k, v in m.items():
            marks['key %s' % k] = k.encode()
            if isinstance(v, str):
                marks['value %s' % v] = v.encode()
    marks['label GMUD'] = b'GMUD'
    if sid is not None:
        marks['session id, 8 bytes LE'] = struct.pack('<Q', sid)
        marks['session id, decimal'] = str(sid).encode()
    return marks


def test_no_plaintext():
    rec, sid, lines = recorded_run(tls=True)
    if rec is not None:
        wire = bytes(rec.up) + b'\n' + bytes(rec.down)
        check(len(rec.up) > 100 and len(rec.down) > 100,
              'TLS recording: bytes both ways (%d up, %d down)' % (len(rec.up), len(rec.down)))
        check(rec.down[:1] == b'\x16' and rec.up[:1] == b'\x16',
              'TLS recording: both directions start with a TLS handshake record')
        for name, mark in wire_markers(sid, lines).items():
            check(mark not in wire, 'TLS: the %s (%r) is not on the wire' % (name, mark))
    # The control: without TLS every marker is there, so the search works.
    rec, sid, lines = recorded_run(tls=False)
    if rec is not None:
        wire = bytes(rec.up) + b'\n' + bytes(rec.down)
        for name, mark in wire_markers(sid, lines).items():
            check(mark in wire, 'control, plain TCP: the %s (%r) is on the wire' % (name, mark))


# ---- 5. SSLKEYLOGFILE and --insecure -------------------------------------------

KEYLOG_LABELS = ('CLIENT_HANDSHAKE_TRAFFIC_SECRET', 'SERVER_HANDSHAKE_TRAFFIC_SECRET',
                 'CLIENT_TRAFFIC_SECRET_0', 'SERVER_TRAFFIC_SECRET_0')
KEYLOG_RE = re.compile(r'^([A-Z_0-9]+) ([0-9a-f]{64}) ([0-9a-f]+)$')


def keylog_lines(path, what):
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except OSError as e:
        check(False, '%s: the key log %s: %s' % (what, path, e))
        return set()
    check(lines and all(KEYLOG_RE.match(l) for l in lines),
          '%s: every key log line is "LABEL <client random> <secret>": %r' % (what, lines))
    labels = {l.split(' ')[0] for l in lines}
    for label in KEYLOG_LABELS:
        check(label in labels, '%s: the key log has %s: %r' % (what, label, sorted(labels)))
    return set(lines)


def test_keylog_insecure():
    server_log = os.path.join(TMP, 'server.keys')
    client_log = os.path.join(TMP, 'client.keys')
    with environ(SSLKEYLOGFILE=server_log):
        srv = Server('--app', 'echo', *tls_args())
    check(any('warning: SSLKEYLOGFILE is set' in l and server_log in l for l in srv.log.all),
          'server: SSLKEYLOGFILE is warned about, naming the file: %r' % srv.log.all)
    with environ(SSLKEYLOGFILE=client_log):
        status, out, err = run_client(srv.port, [*verify_args(), '--wait', '0.3'], '{"k":1}\n')
    check(status == 0 and out == ['{"k":1}'], 'client with SSLKEYLOGFILE: works (%s, %r; %s)'
          % (status, out, err))
    check('warning: SSLKEYLOGFILE is set' in err and client_log in err,
          'client: SSLKEYLOGFILE is warned about, naming the file: %r' % err)
    client_keys = keylog_lines(client_log, 'client')
    server_keys = keylog_lines(server_log, 'server')
    check(client_keys and client_keys == server_keys,
          'one connection: the client and the server logged the same secrets')

    # Without it: no warning, and no file anywhere (run in an empty directory).
    empty = tempfile.mkdtemp(dir=TMP)
    saved = os.getcwd()
    os.chdir(empty)
    try:
        status, out, err = run_client(srv.port, [*verify_args(), '--wait', '0.3'], '{"k":2}\n')
    finally:
        os.chdir(saved)
    check(status == 0 and 'SSLKEYLOGFILE' not in err,
          'client without SSLKEYLOGFILE: works, no warning (%s; %s)' % (status, err))
    check(os.listdir(empty) == [] and sorted(os.listdir(TMP)) ==
          sorted(['cert.pem', 'cert.key', 'other.pem', 'other.key', 'server.keys',
                  'client.keys', os.path.basename(empty)]),
          'client without SSLKEYLOGFILE: no file appears: %r' % os.listdir(TMP))
    check(keylog_lines(client_log, 'client, after') == client_keys,
          'client without SSLKEYLOGFILE: the earlier key log is untouched')

    # --insecure: warned about, and it does connect to the self-signed server.
    status, out, err = run_client(srv.port, ['--insecure', '--wait', '0.3'], '{"k":3}\n')
    check(status == 0 and out == ['{"k":3}'],
          '--insecure against a self-signed server: works (%s, %r; %s)' % (status, out, err))
    check('warning: --insecure' in err and 'not verified' in err,
          '--insecure: a warning on stderr: %r' % err)
    # And without it, the self-signed certificate is refused (the system's
    # store does not hold it).
    status, out, err = run_client(srv.port, ['--tls', '--server-name', 'localhost',
                                             '--wait', '0.3'], '{"k":4}\n')
    check(status not in (0, None) and 'certificate verify failed' in err,
          '--tls without --ca: the self-signed server is refused (%s; %s)' % (status, err))
    check(srv.stop() == 0, 'keylog: server exits 0')


# ---- 6. a plaintext client on the TLS port --------------------------------------

def test_plaintext_to_tls():
    srv = Server('--app', 'echo', *tls_args('--handshake-timeout', '1'))
    t0 = time.monotonic()
    status, out, err = run_client(srv.port, ['--session', 'off', '--wait', '1'], '{"a":1}\n')
    took = time.monotonic() - t0
    check(status is not None and took < 5,
          'plain gmud-client --session off to the TLS port: ends within 5 s (%.1f s)' % took)
    # The server answers plaintext in plaintext: an error packet the client
    # reads in its own framing and mode (PROTOCOL.md section 8), then closes.
    check(status == 3 and 'tls_required' in err,
          'plain gmud-client --session off to the TLS port: refused, exit 3, tls_required '
          '(got %s; %s)' % (status, err.strip()[-200:]))
    check(len(out) == 1 and json.loads(out[0]).get('code') == 'tls_required',
          'plain client: the error packet, nothing else: %r' % out)
    m = srv.log.wait_for(r' tls: (.*)', timeout=2)
    check(m is not None and "not TLS: the peer's first byte is 0x47 'G'" in m.group(1),
          'the server logs a "tls" line with the reason: %s' % srv.log.all[-3:])
    # A peer written the lecture's way, raw bytes: GMUD, a length, JSON.
    with socket.create_connection(('127.0.0.1', srv.port), timeout=STEP) as s:
        s.sendall(frame_bytes('gmud', b'{"hello": 1}'))
        got = b''
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            got += chunk
    check(got[:4] == b'GMUD' and int.from_bytes(got[4:6], 'little') == len(got) - 6 and
          json.loads(got[6:]).get('code') == 'tls_required',
          'a raw peer gets GMUD<len>{"code":"tls_required",...}, then the close: %r' % got)
    # With sessions (the default), the same client does notice: no welcome.
    status, out, err = run_client(srv.port, ['--wait', '1'], '{"a":1}\n')
    check(status not in (0, None) and 'welcome' in err,
          'plain gmud-client with sessions to the TLS port: non-zero, no welcome (%s; %s)'
          % (status, err))
    # A peer that sends nothing is closed at the handshake timeout.
    with socket.create_connection(('127.0.0.1', srv.port), timeout=STEP) as s:
        t0 = time.monotonic()
        try:
            end = s.recv(1)
        except OSError as e:
            end = repr(e)
        took = time.monotonic() - t0
    check(end == b'' and 0.8 < took < 4,
          'a silent peer is closed after --handshake-timeout 1 (%r after %.1f s)' % (end, took))
    check(srv.log.wait_for(r' tls: TLS handshake not done after 1000 ms', timeout=2) is not None,
          'the server logs the handshake timeout: %s' % srv.log.all[-3:])
    # The server still serves TLS.
    status, out, err = run_client(srv.port, [*verify_args(), '--wait', '0.3'], '{"after":1}\n')
    check(status == 0 and out == ['{"after":1}'],
          'after the plaintext peers, a TLS client gets its echo (%s, %r; %s)'
          % (status, out, err))
    check(srv.stop() == 0, 'plaintext to TLS: server exits 0')


# ---- 7. both listeners ----------------------------------------------------------

def test_both_listeners():
    srv = both_server('--app', 'echo')
    if not check(getattr(srv, 'plain_port', None) and getattr(srv, 'tls_port', None),
                 'both listeners: two "listen" lines, one TLS: %r' % srv.log.all):
        srv.stop()
        return
    status, out, err = run_client(srv.plain_port, ['--wait', '0.3'], '{"plain":1}\n')
    check(status == 0 and out == ['{"plain":1}'],
          'both listeners: a plain client on --port gets its echo (%s, %r; %s)'
          % (status, out, err))
    status, out, err = run_client(srv.tls_port, [*verify_args(), '--wait', '0.3'],
                                  '{"tls":1}\n')
    check(status == 0 and out == ['{"tls":1}'],
          'both listeners: a TLS client on --tls-port gets its echo (%s, %r; %s)'
          % (status, out, err))
    status, out, err = run_client(srv.plain_port, [*verify_args(), '--wait', '0.3'], '')
    check(status == 1 and "not TLS: the server's first byte is 0x47 'G'" in err,
          'both listeners: --port is not TLS, and a TLS client says so (%s; %s)'
          % (status, err.strip()[-200:]))
    check(srv.stop() == 0, 'both listeners, echo: server exits 0')

    # Chat: one app over both listeners.
    srv = both_server('--app', 'chat')
    a = start_client(srv.plain_port, '--wait', '0.3')
    b = start_client(srv.tls_port, *verify_args(), '--wait', '0.3')
    heard = None
    deadline = time.monotonic() + STEP
    while heard is None and time.monotonic() < deadline:   # until B is connected
        a.stdin.write('{"from_plain": 1}\n')
        a.stdin.flush()
        heard = b.out.get(timeout=0.2)
    ids = []
    if check(heard is not None and '"from_plain"' in heard,
             'chat: the TLS client hears the plain one: %r' % heard):
        ids.append(json.loads(heard).get('from'))
    b.stdin.write('{"from_tls": 1}\n')
    b.stdin.flush()
    m = a.out.wait_for(r'"from_tls"')
    if check(m is not None, 'chat: the plain client hears the TLS one: %r' % a.out.all):
        ids.append(json.loads(m.string).get('from'))
    # One server behind both listeners: connection ids are unique across them.
    if len(ids) == 2:
        check(ids[0] != ids[1], 'chat over both listeners: two clients, two "from" ids: %r'
              % ids)
    check(finish(a) == 0 and finish(b) == 0, 'chat over both listeners: both clients exit 0')
    check(srv.stop() == 0, 'both listeners, chat: server exits 0')

    # --max-connections is the server's, whichever port a client came in by.
    srv = both_server('--app', 'echo', '--max-connections', '1')
    holder = start_client(srv.plain_port, '--wait', '5')
    srv.log.wait_for(r'accept: connection 1 accepted')
    status, out, err = run_client(srv.tls_port, [*verify_args(), '--wait', '0.3'], '')
    check(status == 3 and 'server_full' in err,
          'both listeners, --max-connections 1 taken on --port: a TLS client is refused '
          'as server_full (got %s; %s)' % (status, err.strip()[-200:]))
    holder.kill()
    holder.wait()
    check(srv.stop() == 0, 'both listeners, max-connections: server exits 0')


# ---- 8. an expired certificate ----------------------------------------------------

CA_CNF = """[ca]
default_ca = d
[d]
database = index.txt
unique_subject = no
new_certs_dir = .
serial = serial
default_md = sha256
policy = p
copy_extensions = none
x509_extensions = ext
[p]
commonName = supplied
[ext]
subjectAltName = DNS:localhost,IP:127.0.0.1
"""


def ca_signed(name, *dates):
    """A CA (made once) and a leaf for localhost it signs, with openssl ca's
    -startdate/-enddate (req -x509 cannot date a certificate in the past):
    (ca, cert, key)."""
    d = os.path.join(TMP, 'ca')
    ca, ca_key = os.path.join(d, 'ca.pem'), os.path.join(d, 'ca.key')
    if not os.path.isdir(d):
        os.mkdir(d)
        with open(os.path.join(d, 'ca.cnf'), 'w') as f:
            f.write(CA_CNF)
        open(os.path.join(d, 'index.txt'), 'w').close()
        with open(os.path.join(d, 'serial'), 'w') as f:
            f.write('01\n')
        subprocess.run(['openssl', 'req', '-x509', '-newkey', 'ec', '-pkeyopt',
                        'ec_paramgen_curve:P-256', '-nodes', '-days', '2', '-subj', '/CN=test CA',
                        '-keyout', ca_key, '-out', ca], capture_output=True, timeout=STEP,
                       check=True)
    key, csr, cert = (os.path.join(d, name + x) for x in ('.key', '.csr', '.pem'))
    subprocess.run(['openssl', 'req', '-new', '-newkey', 'ec', '-pkeyopt',
                    'ec_paramgen_curve:P-256', '-nodes', '-subj', '/CN=localhost', '-keyout', key,
                    '-out', csr], capture_output=True, timeout=STEP, check=True)
    subprocess.run(['openssl', 'ca', '-config', 'ca.cnf', '-batch', '-cert', ca, '-keyfile',
                    ca_key, '-in', csr, '-out', cert, *dates], capture_output=True,
                   timeout=STEP, check=True, cwd=d)
    return ca, cert, key


def test_expired():
    try:
        ca, old, old_key = ca_signed('expired', '-startdate', '20200101000000Z', '-enddate',
                                     '20200102000000Z')
        _, good, good_key = ca_signed('valid', '-days', '2')
    except (subprocess.CalledProcessError, OSError) as e:
        check(False, 'expired: making the certificates with openssl ca: %s' % e)
        return
    for cert, key, ok in ((good, good_key, True), (old, old_key, False)):
        what = 'a CA-signed certificate, %s' % ('valid' if ok else 'expired in 2020')
        srv = Server('--app', 'echo', '--tls-cert', cert, '--tls-key', key)
        status, out, err = run_client(srv.port, ['--ca', ca, '--server-name', 'localhost',
                                                 '--wait', '0.3'], '{"e":1}\n')
        if ok:
            check(status == 0 and out == ['{"e":1}'], '%s: served (%s, %r; %s)'
                  % (what, status, out, err.strip()[-200:]))
        else:
            check(status not in (0, None) and 'certificate has expired' in err and out == [],
                  '%s: the client refuses, non-zero, "certificate has expired" (%s, %r; %s)'
                  % (what, status, out, err.strip()[-300:]))
        check(srv.stop() == 0, '%s: server exits 0' % what)


# ---- 9. a recorded TLS stream replayed --------------------------------------------

def test_replay():
    """Every byte a client sent in a whole TLS session (handshake, messages,
    close_notify), played again to the server as a new connection: the
    server's fresh random and key share make the recorded Finished and
    records undecryptable, so the handshake fails and nothing reaches the
    application (its close line counts 0 messages in)."""
    rec, sid, lines = recorded_run(True)
    if not check(rec is not None and len(rec.up) > 200, 'replay: a recording to replay'):
        return
    srv = Server('--app', 'echo', '--log-format', 'json', *tls_args())
    with socket.create_connection(('127.0.0.1', srv.port), timeout=STEP) as s:
        s.sendall(rec.up)
        s.shutdown(socket.SHUT_WR)
        deadline = time.monotonic() + STEP
        try:
            while time.monotonic() < deadline and s.recv(65536):
                pass
        except OSError:
            pass
    m = srv.log.wait_for(r'"event":"close"')
    close = json.loads(m.string) if m else {}
    check(close.get('reason') == 'tls failed' and close.get('messages_in') == 0,
          'replay: closed as "tls failed" with 0 messages delivered: %r' % close)
    check(any(re.search(r'"event":"tls".*handshake failed', l) for l in srv.log.all),
          'replay: the failed handshake is logged: %s' % srv.log.all[-3:])
    check(not any(l in line for l in lines for line in srv.log.all),
          'replay: no recorded message appears in the server log')
    check(srv.stop() == 0, 'replay: server exits 0')


TESTS = [test_python_client, test_python_server, test_openssl_s_client, test_no_plaintext,
         test_keylog_insecure, test_plaintext_to_tls, test_both_listeners, test_expired,
         test_replay]


def main():
    if shutil.which('openssl') is None:
        print('FAIL: the openssl command is needed (Debian package openssl)')
        return 1
    setup_certs()
    try:
        status = run_tests(TESTS)
    finally:
        shutil.rmtree(TMP, ignore_errors=True)
    return status


if __name__ == '__main__':
    sys.exit(main())
