#!/usr/bin/env python3
"""The PROXY protocol (docs/PROTOCOL.md section 9) and --addr-exempt, end to
end: raw sockets written here play the load balancer in front of
gmud-server, over loopback (127.0.0.1 is the balancer; other 127.0.0.x
addresses are senders it does not trust).

Usage: test_proxy.py <gmud-server> <gmud-client>

  v1_carried     a v1 header's client address is the connection's: in the
                 accept and close log lines, and for --max-per-addr 1 (a
                 second connection carrying the same address is refused
                 with addr_limited, one carrying another is served, all
                 from the one balancer address).
  v2_ipv6        a v2 header carrying an IPv6 client, with a TLV, and the
                 message in the same segment; v2 LOCAL (a health check)
                 keeps the balancer's own address. Sessions on: the welcome
                 comes after the header.
  untrusted      from an address not in --proxy-from: the error packet
                 proxy ("not a trusted sender"), then the close.
  bad_header     bytes that are not a PROXY header, a malformed v1 line, a
                 v2 header over the size bound: each refused with its reason.
  late_header    half a header, then nothing: refused at --proxy-timeout.
  exempt         --addr-exempt: a carried address in it passes
                 --max-per-addr 1 twice; another does not.
  tls            --proxy-protocol with TLS: the header in plaintext, then
                 the TLS handshake (Python's ssl) and an echo.
  config         --proxy-protocol without --proxy-from, a bad --proxy-from
                 and a bad --addr-exempt: refused with the reason, non-zero.

Every wait is bounded (STEP). Exit 0 on success.
"""

import json
import os
import re
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(1, os.path.join(HERE, '..', 'lecture'))
from progtest import STEP, check, read_exact, run_tests
from test_programs import SERVER, Server

PP2_SIG = b'\r\n\r\n\x00\r\nQUIT\n'
TRUST = ['--proxy-protocol', '--proxy-from', '127.0.0.1']


def frame(obj):
    data = json.dumps(obj, separators=(',', ':')).encode()
    return b'GMUD' + struct.pack('<H', len(data)) + data


def read_frame(s):
    head = read_exact(s, 6)
    check(head[:4] == b'GMUD', 'a GMUD frame comes back (got %r)' % head)
    return read_exact(s, struct.unpack('<H', head[4:])[0])


def read_json(s):
    return json.loads(read_frame(s))


def connect(port, src='127.0.0.1'):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(STEP)
    s.bind((src, 0))
    s.connect(('127.0.0.1', port))
    return s


def v1(client, port, dst='127.0.0.1', dport=8222):
    fam = 'TCP6' if ':' in client else 'TCP4'
    return ('PROXY %s %s %s %d %d\r\n' % (fam, client, dst, port, dport)).encode()


def v2_tcp6(client, port, tlv=b''):
    body = (socket.inet_pton(socket.AF_INET6, client) + socket.inet_pton(socket.AF_INET6, '::1')
            + struct.pack('>HH', port, 8222) + tlv)
    return PP2_SIG + b'\x21\x21' + struct.pack('>H', len(body)) + body


def closed(s):
    """True once the server has closed s (EOF or reset) within STEP."""
    try:
        while True:
            if s.recv(4096) == b'':
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False


def refusal(s, code, says):
    """The next frame is the error packet code, saying says; then the close."""
    try:
        got = read_json(s)
    except (EOFError, OSError) as e:
        check(False, '%s: an error packet, not %r' % (code, e))
        return
    check(got.get('code') == code and says in got.get('error', ''),
          'refused with %s "...%s...": %r' % (code, says, got))
    check(closed(s), '%s: then the connection is closed' % code)


def echo(s, msg):
    s.sendall(frame(msg))
    got = read_json(s)
    check(got == msg, 'echo of %r (got %r)' % (msg, got))


# ---- the tests ------------------------------------------------------------------

def test_v1_carried():
    srv = Server('--app', 'echo', '--session', 'off', *TRUST, '--max-per-addr', '1',
                 '--log-level', 'debug', '--log-format', 'json')
    a = connect(srv.port)
    a.sendall(v1('203.0.113.7', 40001))
    echo(a, {'m': 1})
    m = srv.log.wait_for(r'"event":"accept"')
    check(m is not None and '"peer":"203.0.113.7:40001"' in m.string,
          'v1: the accept line names the carried client: %s' % (m.string if m else srv.log.all[-3:]))
    b = connect(srv.port)
    b.sendall(v1('203.0.113.7', 40002))
    refusal(b, 'addr_limited', '1 connection from 203.0.113.7 already')
    c = connect(srv.port)
    c.sendall(v1('203.0.113.8', 40003) + frame({'m': 3}))  # header and message together
    check(read_json(c) == {'m': 3}, 'v1: another carried address is served beside it')
    a.close()
    c.close()
    b.close()
    m = srv.log.wait_for(r'"peer":"203\.0\.113\.7:40001","event":"close"')
    check(m is not None, 'v1: the close line names the carried client')
    check(srv.stop() == 0, 'v1: server exits 0')


def test_v2_ipv6():
    srv = Server('--app', 'echo', *TRUST, '--log-level', 'debug', '--log-format', 'json')
    s = connect(srv.port)
    tlv = b'\x04\x00\x02\x00\x00'  # PP2_TYPE_NOOP: skipped
    s.sendall(v2_tcp6('2001:db8::5', 5555, tlv))
    welcome = read_json(s)  # sessions on: the welcome, after the header
    check('session_id' in json.dumps(welcome), 'v2: the welcome comes after the header: %r' % welcome)
    m = srv.log.wait_for(r'"event":"accept"')
    check(m is not None and '"peer":"[2001:db8::5]:5555"' in m.string,
          'v2: the IPv6 client carried is the peer: %s' % (m.string if m else ''))
    s.close()
    # LOCAL: the balancer's health check; its own address stands.
    h = connect(srv.port)
    h.sendall(PP2_SIG + b'\x20\x00\x00\x00')
    read_json(h)
    m = srv.log.wait_for(r'"peer":"127\.0\.0\.1:\d+","event":"accept"')
    check(m is not None, 'v2 LOCAL: the balancer\'s own address is the peer')
    h.close()
    check(srv.stop() == 0, 'v2: server exits 0')


def test_untrusted():
    srv = Server('--app', 'echo', '--session', 'off', '--proxy-protocol',
                 '--proxy-from', '127.0.0.2/32, 10.0.0.0/8')
    s = connect(srv.port, '127.0.0.1')
    s.sendall(v1('198.51.100.1', 1000))
    refusal(s, 'proxy', '127.0.0.1')
    m = srv.log.wait_for(r'not a trusted sender')
    check(m is not None, 'untrusted: logged')
    t = connect(srv.port, '127.0.0.2')
    t.sendall(v1('198.51.100.1', 1000))
    echo(t, {'ok': True})
    t.close()
    check(srv.stop() == 0, 'untrusted: server exits 0')


def test_bad_header():
    srv = Server('--app', 'echo', '--session', 'off', *TRUST)
    cases = [
        (frame({'m': 1}), 'does not begin with a PROXY header'),
        (b'PROXY TCP4 1.2.3.4 5.6.7.8 70000 1\r\n', 'bad TCP4 address or port'),
        (b'PROXY TCP4 ' + b'1' * 120, 'without its CRLF within 107 bytes'),
        (PP2_SIG + b'\x21\x11\x04\x00' + b'\0' * 1024, 'over gmud\'s bound of 1024'),
    ]
    for data, says in cases:
        s = connect(srv.port)
        try:
            s.sendall(data)
        except OSError:
            pass
        refusal(s, 'proxy', says)
        s.close()
    echo_after = connect(srv.port)
    echo_after.sendall(v1('192.0.2.9', 9))
    echo(echo_after, {'still': 'serving'})
    echo_after.close()
    check(srv.stop() == 0, 'bad header: server exits 0')


def test_late_header():
    srv = Server('--app', 'echo', '--session', 'off', *TRUST, '--proxy-timeout', '0.3')
    s = connect(srv.port)
    t0 = time.monotonic()
    s.sendall(b'PROXY TCP4 192.0.2.')
    refusal(s, 'proxy', 'no whole header within')
    took = time.monotonic() - t0
    check(0.25 <= took < 2.5, 'late header: refused at the timeout (%.2f s)' % took)
    check(srv.stop() == 0, 'late header: server exits 0')


def test_exempt():
    srv = Server('--app', 'echo', '--session', 'off', *TRUST, '--max-per-addr', '1',
                 '--addr-exempt', '203.0.113.9, 10.9.0.0/16')
    socks = []
    for port in (1, 2, 3):
        s = connect(srv.port)
        s.sendall(v1('203.0.113.9', port))
        echo(s, {'n': port})
        socks.append(s)
    one = connect(srv.port)
    one.sendall(v1('203.0.113.10', 4))
    echo(one, {'n': 4})
    two = connect(srv.port)
    two.sendall(v1('203.0.113.10', 5))
    refusal(two, 'addr_limited', '203.0.113.10')
    for s in socks + [one, two]:
        s.close()
    check(srv.stop() == 0, 'exempt: server exits 0')


def test_tls():
    tmp = tempfile.mkdtemp(prefix='gmud-proxy-')
    cert, key = os.path.join(tmp, 'c.pem'), os.path.join(tmp, 'k.pem')
    subprocess.run(['openssl', 'req', '-x509', '-newkey', 'ec', '-pkeyopt',
                    'ec_paramgen_curve:P-256', '-nodes', '-days', '1', '-keyout', key, '-out',
                    cert, '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost'],
                   check=True, capture_output=True, timeout=STEP)
    srv = Server('--app', 'echo', '--session', 'off', *TRUST, '--tls-cert', cert,
                 '--tls-key', key, '--log-format', 'json')
    raw = connect(srv.port)
    raw.sendall(v1('198.51.100.77', 7777))
    ctx = ssl.create_default_context(cafile=cert)
    s = ctx.wrap_socket(raw, server_hostname='localhost')
    echo(s, {'over': 'tls'})
    m = srv.log.wait_for(r'"event":"accept"')
    check(m is not None and '198.51.100.77:7777' in m.string,
          'tls: the carried client is the peer: %s' % (m.string if m else ''))
    s.close()
    check(srv.stop() == 0, 'tls: server exits 0')
    for f in (cert, key):
        os.unlink(f)
    os.rmdir(tmp)


def test_config():
    cases = [
        (['--proxy-protocol'], '--proxy-protocol needs --proxy-from'),
        (['--proxy-protocol', '--proxy-from', '10.0.0.0/40'], 'prefix length 40 over 32'),
        (['--addr-exempt', 'not-an-address'], "'not-an-address' is not an IPv4 or IPv6"),
    ]
    for args, says in cases:
        r = subprocess.run([SERVER, '--port', '0', *args], capture_output=True, text=True,
                           timeout=STEP, stdin=subprocess.DEVNULL)
        check(r.returncode not in (0, None) and says in r.stderr,
              'config %s: refused, non-zero, "%s" (%s: %s)' % (args, says, r.returncode,
                                                               r.stderr.strip()[-200:]))


TESTS = [test_v1_carried, test_v2_ipv6, test_untrusted, test_bad_header, test_late_header,
         test_exempt, test_tls, test_config]

if __name__ == '__main__':
    sys.exit(run_tests(TESTS))
