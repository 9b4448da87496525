#!/usr/bin/env python3
"""The Wireshark dissector (contrib/wireshark/gmud.lua) against real
traffic: gmud-server and gmud-client (and small Python peers writing
bytes exactly as wanted) over loopback, captured, then read back with
tshark -X lua_script:gmud.lua and checked field by field.

Usage: test_dissector.py <gmud-server> <gmud-client> <gmud.lua>

  gmud_client_session  gmud-client to the echo server, gmud framing, sessions
                       on: one welcome whose id is the one gmud-client logs,
                       every header carrying it, sequences 0,1 (client) and
                       1,2 (server), labels, lengths, texts, the JSON handed
                       to Wireshark's json dissector, no expert complaint.
  segments             a Python peer with TCP_NODELAY: two frames in one
                       segment (one frame number, both messages), one frame
                       split in three segments (inside the label, inside the
                       session header: reassembled, shown once, in the last
                       one), the echoes, and the same fields with tshark -2.
  error_packet         invalid JSON with a good header: the client's frame
                       flagged bad_json, the server's answer an error packet
                       with code bad_json (-8) in its fields and Info column,
                       with the session header (its sequence counted on).
  wrong_label          "HTTP/1.1 ..." to a gmud port: bad_label expert info
                       naming the bytes, the rest of the segment out_of_sync,
                       and the server's bad_label error packet.
  length               length framing with gmud-client (lengths, texts) and a
                       header announcing 1001 bytes to a --max-message 1000
                       receiver: too_long flagged, the server's too_long packet.
  length_session       length framing with sessions on: header fields.
  line                 line framing, text payload, delimiter \\r\\n: gmud-client
                       lines (an empty one included), two lines in one
                       segment, one split inside its delimiter.
  fixed                fixed:64 text: payloads without padding, the padding.
  lecture              the clock in mode lecture: the welcome, the client's
                       replies' session_id, sequence_id 1..3 and data, the
                       clock's messages.
  tls                  TLS (certificate by openssl, gmud-client --tls --pin,
                       SSLKEYLOGFILE): with the key log the gmud messages
                       inside TLS decode as in gmud_client_session, on
                       gmud.port (TLS detected) and on gmud.tls_port; without
                       it nothing is decoded.
  refusals             streams gmud's programs never send, written as a pcap by
                       the test: PROTOCOL.md 6.5's refusals in mode on
                       (replayed, skipped, bad_session, a header-less message,
                       missing_field) and lecture (the same, bad_field,
                       not_object), section 4's JSON refusals, an error packet
                       in place of the welcome, text error packets.

Traffic is captured live on lo with dumpcap (or tshark), started before the
exchange and stopped after it. Where live capture is not permitted, the test
says so and records the bytes through a relaying proxy instead, writing the
pcap itself (GMUD_DISSECTOR_CAPTURE=proxy forces that). Every wait is
bounded; the temporary directory is removed at the end (kept, and named,
with GMUD_DISSECTOR_KEEP=1). Exit 0 on success,
1 if tshark is not installed. GMUD_TEST_ONLY=<part of a name>
runs only the matching tests.
"""

import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
if len(sys.argv) != 4:
    sys.exit('usage: test_dissector.py <gmud-server> <gmud-client> <gmud.lua>')
sys.argv[1:4] = [os.path.abspath(a) for a in sys.argv[1:4]]
SERVER, CLIENT, LUA = sys.argv[1:4]

from progtest import STEP, Lines, check, check_clean, read_exact, run_tests

TSHARK = shutil.which('tshark')
DUMPCAP = shutil.which('dumpcap')
OPENSSL = shutil.which('openssl')

# A key log asked for by whoever runs the tests must not leak into ours.
os.environ.pop('SSLKEYLOGFILE', None)

TMP = None
CAPTURE_MODE = None     # 'live' or 'proxy'
RUNNING = []            # processes to stop after each test


# ---- processes ----------------------------------------------------------------

class Server:
    """gmud-server on --port 0; .port from its "listening on ... port N" line."""

    def __init__(self, *args, env=None):
        self.args = args
        self.proc = subprocess.Popen([SERVER, '--port', '0', *args], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                     env=env)
        RUNNING.append(self.proc)
        self.log = Lines(self.proc.stderr)
        m = self.log.wait_for(r'listening on .* port (\d+)')
        if m is None:
            self.stop()
            raise RuntimeError('server %s did not start: %s' % (args, self.log.all))
        self.port = int(m.group(1))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            status = self.proc.wait(timeout=STEP)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            status = None
        self.log.drain(timeout=STEP)
        check_clean('\n'.join(self.log.all), 'server %s' % (self.args,))
        return status


def run_client(port, args, lines, env=None):
    """gmud-client to the end; (status, stdout lines, stderr)."""
    try:
        r = subprocess.run([CLIENT, '--port', str(port), *args],
                           input=''.join(l + '\n' for l in lines), capture_output=True,
                           text=True, timeout=STEP, env=env)
    except subprocess.TimeoutExpired as e:
        return None, [], 'timed out; stderr: %s' % (e.stderr,)
    check_clean(r.stderr, 'client %s' % (args,))
    return r.returncode, r.stdout.splitlines(), r.stderr


def logged_session(stderr):
    m = re.search(r'welcomed: session (\d+)', stderr or '')
    return int(m.group(1)) if m else None


# ---- capture ------------------------------------------------------------------

class CaptureError(Exception):
    pass


class LiveCapture:
    """dumpcap (or tshark) on lo for one TCP port, until stop()."""

    def __init__(self, port, name):
        self.path = os.path.join(TMP, name + '.pcapng')
        self.client_port = port     # clients connect to the server itself
        tool = DUMPCAP or TSHARK
        # The server's own end only: other tests bind 127.0.0.x source
        # addresses, and one of their clients may get this port as its
        # ephemeral port (seen in CI: another test's addr_limited refusal
        # in this capture).
        bpf = ('(src host 127.0.0.1 and src port %d) or (dst host 127.0.0.1 and dst port %d)'
               % (port, port))
        self.proc = subprocess.Popen([tool, '-i', 'lo', '-f', bpf,
                                      '-w', self.path], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        RUNNING.append(self.proc)
        self.err = Lines(self.proc.stderr)
        if self.err.wait_for(r"Capturing on", timeout=STEP) is None:
            self.proc.kill()
            self.proc.wait()
            self.err.drain(timeout=STEP)
            raise CaptureError('%s could not capture on lo: %s'
                               % (os.path.basename(tool), ' '.join(self.err.all)))
        time.sleep(0.2)   # the filter is set before the line; a margin all the same

    def stop(self):
        time.sleep(0.3)   # the last ACKs and FINs of the exchange
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=STEP)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.err.drain(timeout=STEP)
        if not os.path.exists(self.path):
            raise CaptureError('no capture file: %s' % ' '.join(self.err.all))
        return self.path


class ProxyCapture:
    """The fallback when live capture is not permitted: clients connect to
    a relaying proxy, which records every chunk it reads from either side
    (with TCP_NODELAY on both legs, so that a sender's segments stay
    segments), and stop() writes a pcap of one TCP connection per proxied
    one, client port to the server's port, with correct sequence numbers."""

    def __init__(self, port, name):
        self.path = os.path.join(TMP, name + '.pcap')
        self.server_port = port
        self.listener = socket.create_server(('127.0.0.1', 0))
        self.listener.settimeout(0.1)
        self.client_port = self.listener.getsockname()[1]
        self.events = []            # (time, connection, 'c' or 's', bytes; b'' = FIN)
        self.conns = []             # (client port, time of connect)
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.threads = []
        self.socks = []
        t = threading.Thread(target=self._accept, daemon=True)
        t.start()
        self.threads.append(t)

    def _accept(self):
        while not self.stopping.is_set():
            try:
                c, addr = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            try:
                s = socket.create_connection(('127.0.0.1', self.server_port), timeout=STEP)
            except OSError:
                c.close()
                continue
            for x in (c, s):
                x.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                x.settimeout(None)
            with self.lock:
                cid = len(self.conns)
                self.conns.append((addr[1], time.time()))
                self.socks += [c, s]
            for src, dst, d in ((c, s, 'c'), (s, c, 's')):
                t = threading.Thread(target=self._pump, args=(cid, src, dst, d), daemon=True)
                t.start()
                self.threads.append(t)

    def _pump(self, cid, src, dst, d):
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                data = b''
            with self.lock:
                self.events.append((time.time(), cid, d, data))
            if not data:
                try:
                    dst.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                return
            try:
                dst.sendall(data)
            except OSError:
                return

    def stop(self):
        time.sleep(0.3)
        self.stopping.set()
        self.listener.close()
        deadline = time.monotonic() + STEP
        for t in self.threads[1:]:
            t.join(max(0, deadline - time.monotonic()))
        for x in self.socks:
            x.close()
        self.threads[0].join(STEP)
        write_pcap(self.path, self.conns, self.server_port, sorted(self.events, key=lambda e: e[0]))
        return self.path


def ip_checksum(b):
    if len(b) % 2:
        b += b'\0'
    s = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff


def tcp_packet(sport, dport, seq, ack, flags, payload=b''):
    """Ethernet + IPv4 + TCP, 127.0.0.1 to 127.0.0.1, checksums right."""
    src = dst = socket.inet_aton('127.0.0.1')
    tcp = struct.pack('!HHIIBBHHH', sport, dport, seq & 0xffffffff, ack & 0xffffffff,
                      5 << 4, flags, 65535, 0, 0)
    pseudo = src + dst + struct.pack('!BBH', 0, 6, len(tcp) + len(payload))
    csum = ip_checksum(pseudo + tcp + payload)
    tcp = tcp[:16] + struct.pack('!H', csum) + tcp[18:]
    ip = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(tcp) + len(payload), 0, 0x4000, 64, 6,
                     0, src, dst)
    ip = ip[:10] + struct.pack('!H', ip_checksum(ip)) + ip[12:]
    return b'\0' * 12 + b'\x08\x00' + ip + tcp + payload


def write_pcap(path, conns, server_port, events):
    FIN, SYN, PSH, ACK = 0x01, 0x02, 0x08, 0x10
    out = [struct.pack('<IHHiIII', 0xa1b2c3d4, 2, 4, 0, 0, 262144, 1)]

    def rec(t, frame):
        out.append(struct.pack('<IIII', int(t), int((t % 1) * 1e6), len(frame), len(frame)) + frame)

    state = {}
    starts = sorted((t, cid) for cid, (_, t) in enumerate(conns))
    pending = list(starts)
    for ev in events + [(float('inf'), None, None, None)]:
        while pending and pending[0][0] <= ev[0]:
            t, cid = pending.pop(0)
            cport = conns[cid][0]
            st = state[cid] = {'c': 1000, 's': 500000, 'cport': cport}
            rec(t, tcp_packet(cport, server_port, st['c'] - 1, 0, SYN))
            rec(t, tcp_packet(server_port, cport, st['s'] - 1, st['c'], SYN | ACK))
            rec(t, tcp_packet(cport, server_port, st['c'], st['s'], ACK))
        t, cid, d, data = ev
        if cid is None:
            break
        st = state[cid]
        other = 's' if d == 'c' else 'c'
        ports = (st['cport'], server_port) if d == 'c' else (server_port, st['cport'])
        if not data:
            rec(t, tcp_packet(*ports, st[d], st[other], FIN | ACK))
            st[d] += 1
            continue
        for i in range(0, len(data), 65000):
            part = data[i:i + 65000]
            rec(t, tcp_packet(*ports, st[d], st[other], PSH | ACK, part))
            st[d] += len(part)
    with open(path, 'wb') as f:
        f.write(b''.join(out))


def capture(port, name):
    return (LiveCapture if CAPTURE_MODE == 'live' else ProxyCapture)(port, name)


def choose_capture_mode():
    global CAPTURE_MODE
    if os.environ.get('GMUD_DISSECTOR_CAPTURE') == 'proxy':
        CAPTURE_MODE = 'proxy'
        print('capture: recorded through a proxy, pcap written by the test (forced)')
        return
    probe = socket.create_server(('127.0.0.1', 0))
    try:
        CAPTURE_MODE = 'live'
        cap = LiveCapture(probe.getsockname()[1], 'probe')
        cap.stop()
        print('capture: live, %s on lo' % os.path.basename(DUMPCAP or TSHARK))
    except CaptureError as e:
        CAPTURE_MODE = 'proxy'
        print('capture: live capture failed (%s); recording through a proxy instead, '
              'the pcap written by the test' % e)
    finally:
        probe.close()


# ---- tshark -------------------------------------------------------------------

SEP, AGG = '\x1f', '\x1e'


def tshark_base(pcap, prefs, two_pass=False):
    cmd = [TSHARK, '-n', '-r', pcap, '-X', 'lua_script:' + LUA]
    if two_pass:
        cmd.append('-2')
    for k, v in prefs.items():
        cmd += ['-o', '%s:%s' % (k, v)]
    return cmd


def dissect(pcap, prefs, fields, yfilter='gmud', two_pass=False):
    """One dict per frame matching yfilter: field name -> list of values."""
    cmd = tshark_base(pcap, prefs, two_pass) + ['-Y', yfilter, '-T', 'fields',
                                                 '-E', 'separator=' + SEP,
                                                 '-E', 'occurrence=a',
                                                 '-E', 'aggregator=' + AGG]
    for fl in ('frame.number',) + tuple(fields):
        cmd += ['-e', fl]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=STEP * 3)
    if r.returncode != 0:
        raise RuntimeError('tshark failed (%d): %s' % (r.returncode, r.stderr))
    rows = []
    for line in r.stdout.split('\n'):     # not splitlines(): it splits at AGG too
        if not line:
            continue
        cols = line.split(SEP)
        row = {}
        for name, val in zip(('frame.number',) + tuple(fields), cols):
            row[name] = val.split(AGG) if val != '' else []
        rows.append(row)
    return rows


def verbose(pcap, prefs):
    """tshark -V: the whole tree. Checks that no Lua error and no malformed
    packet appears in it."""
    r = subprocess.run(tshark_base(pcap, prefs) + ['-V'], capture_output=True, text=True,
                       timeout=STEP * 3)
    check(r.returncode == 0, 'tshark -V exits 0: %s' % r.stderr)
    check('Lua Error' not in r.stdout and 'Lua Error' not in r.stderr,
          'no Lua error in the dissection: %s' % '\n'.join(
              l for l in (r.stdout + r.stderr).splitlines() if 'Lua' in l)[:2000])
    check('[Malformed Packet' not in r.stdout, 'no malformed packet in the dissection')
    return r.stdout


def values(rows, field, where=None):
    out = []
    for row in rows:
        if where is None or where(row):
            out += row.get(field, [])
    return out


def to_server(row):
    return row['gmud.direction'][:1] == ['client to server']


def to_client(row):
    return row['gmud.direction'][:1] == ['server to client']


COMMON = ('gmud.direction', 'gmud.label', 'gmud.length', 'gmud.payload_len',
          'gmud.session.id', 'gmud.session.sequence', 'gmud.welcome.session_id', 'gmud.text',
          'gmud.error.code', 'gmud.error.code_num', 'gmud.refused', 'gmud.unframed',
          '_ws.expert.message', '_ws.col.Info', 'tcp.segment.count', 'tcp.srcport')

COMPLAINTS = ('gmud.refused or gmud.unframed or gmud.expert.session or gmud.expert.bad_payload '
              'or gmud.expert.not_welcomed or gmud.expert.incomplete')


def check_no_complaint(pcap, prefs, what):
    rows = dissect(pcap, prefs, ('_ws.expert.message',), COMPLAINTS)
    check(rows == [], '%s: no gmud expert complaint, got %r' % (what, rows))


# ---- Python peers -------------------------------------------------------------

def connect(port):
    s = socket.create_connection(('127.0.0.1', port), timeout=STEP)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def gmud_frame(payload, label=b'GMUD'):
    return label + struct.pack('<H', len(payload)) + payload


def session_payload(sid, seq, data):
    return struct.pack('<QQ', sid, seq) + data


def read_gmud(sock):
    head = read_exact(sock, 6)
    return read_exact(sock, struct.unpack('<H', head[4:])[0])


def read_welcome(sock):
    obj = json.loads(read_gmud(sock))
    return obj['session_id']


def read_until_eof(sock):
    data = b''
    deadline = time.monotonic() + STEP
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except (socket.timeout, ConnectionResetError):
            break
        if not chunk:
            break
        data += chunk
    return data


def compact(obj):
    return json.dumps(obj, separators=(',', ':'))


# ---- the tests ----------------------------------------------------------------

def check_session_exchange(pcap, prefs, sid, sent, what):
    """gmud-client's lines echoed in mode on: the welcome, the headers."""
    rows = dissect(pcap, prefs, COMMON)
    check(rows, '%s: gmud frames found' % what)
    welcome = '{"session_id": %d, "sequence_id": 0}' % sid
    check(values(rows, 'gmud.welcome.session_id') == [str(sid)],
          '%s: one welcome with the logged session %d: %r'
          % (what, sid, values(rows, 'gmud.welcome.session_id')))
    wrows = [r for r in rows if r['gmud.welcome.session_id']]
    if wrows:
        check(wrows[0]['gmud.text'] == [welcome] and to_client(wrows[0]),
              '%s: welcome text from the server: %r' % (what, wrows[0]['gmud.text']))
        check(wrows[0]['gmud.length'] in ([str(len(welcome))], []),
              '%s: welcome length %r' % (what, wrows[0]['gmud.length']))
        check(('welcome session=%d' % sid) in wrows[0]['_ws.col.Info'][0],
              '%s: Info of the welcome: %r' % (what, wrows[0]['_ws.col.Info']))
    ids = values(rows, 'gmud.session.id')
    check(ids and set(ids) == {str(sid)}, '%s: every header has session %d: %r' % (what, sid, ids))
    for name, where, seqs in (('client', to_server, list(range(len(sent)))),
                              ('server', to_client, list(range(1, len(sent) + 1)))):
        got = values(rows, 'gmud.session.sequence', where)
        check(got == [str(s) for s in seqs], '%s: %s sequences %r, got %r'
              % (what, name, seqs, got))
        texts = [t for t in values(rows, 'gmud.text', where) if t != welcome]
        check(texts == sent, '%s: %s texts %r, got %r' % (what, name, sent, texts))
    plens = [int(x) for x in values(rows, 'gmud.payload_len') if x]
    check(sorted(plens) == sorted([len(welcome)] + [16 + len(s.encode()) for s in sent] * 2),
          '%s: payload lengths %r' % (what, plens))
    return rows


def test_gmud_client_session():
    srv = Server('--app', 'echo')
    cap = capture(srv.port, 'session')
    sent = ['{"a":1}', '{"move":"north","n":[1,2,3]}']
    status, out, err = run_client(cap.client_port, ['--wait', '0.5'], sent)
    pcap = cap.stop()
    srv.stop()
    check(status == 0 and out == sent, 'session: gmud-client echoed: %s %r %s' % (status, out, err))
    sid = logged_session(err)
    if not check(sid, 'session: gmud-client logs its session: %s' % err):
        return
    prefs = {'gmud.port': srv.port}
    rows = check_session_exchange(pcap, prefs, sid, sent, 'session')
    check(values(rows, 'gmud.label') and set(values(rows, 'gmud.label')) == {'GMUD'},
          'session: labels GMUD: %r' % values(rows, 'gmud.label'))
    keys = values(dissect(pcap, prefs, ('json.key',), 'json'), 'json.key')
    check('move' in keys and 'session_id' in keys,
          'session: the JSON handed to the json dissector: %r' % keys)
    check_no_complaint(pcap, prefs, 'session')
    verbose(pcap, prefs)


def test_segments():
    srv = Server('--app', 'echo')
    cap = capture(srv.port, 'segments')
    texts = [compact({'n': 0}), compact({'n': 1, 'glued': True}),
             compact({'split': 'x' * 40})]
    with connect(cap.client_port) as s:
        sid = read_welcome(s)
        frames = [gmud_frame(session_payload(sid, i, t.encode())) for i, t in enumerate(texts)]
        s.sendall(frames[0] + frames[1])              # two frames, one segment
        time.sleep(0.15)
        split = frames[2]
        for piece in (split[:3], split[3:14], split[14:]):   # in the label, in the header
            s.sendall(piece)
            time.sleep(0.15)
        echoed = [read_gmud(s) for _ in texts]
    pcap = cap.stop()
    srv.stop()
    check([e[16:].decode() for e in echoed] == texts, 'segments: echoed %r' % echoed)
    prefs = {'gmud.port': srv.port}
    for two_pass in (False, True):
        what = 'segments%s' % (' (tshark -2)' if two_pass else '')
        rows = dissect(pcap, prefs, COMMON, two_pass=two_pass)
        up = [r for r in rows if to_server(r)]
        glued = [r for r in up if r['gmud.text'] == texts[:2]]
        check(len(glued) == 1 and glued[0]['gmud.session.sequence'] == ['0', '1']
              and glued[0]['gmud.length'] == [str(16 + len(t)) for t in texts[:2]],
              '%s: two messages in one frame: %r' % (what, up))
        if glued:
            info = glued[0]['_ws.col.Info'][0]
            check(info.startswith('C>S GMUD len=%d' % (16 + len(texts[0])))
                  and ('; GMUD len=%d' % (16 + len(texts[1]))) in info,
                  '%s: Info lists both: %r' % (what, info))
        spl = [r for r in up if texts[2] in r['gmud.text']]
        check(len(spl) == 1 and spl[0]['tcp.segment.count'] == ['3']
              and spl[0]['gmud.session.sequence'] == ['2'] and spl[0]['gmud.session.id'] == [str(sid)],
              '%s: the split message once, reassembled from 3 segments: %r' % (what, spl))
        down = [t for t in values(rows, 'gmud.text', to_client) if not t.startswith('{"session_id"')]
        check(down == texts, '%s: echoes %r' % (what, down))
        check(values(rows, 'gmud.session.sequence', to_client) == ['1', '2', '3'],
              '%s: server sequences' % what)
        check(values(rows, 'gmud.welcome.session_id') == [str(sid)], '%s: welcome id' % what)
    check_no_complaint(pcap, prefs, 'segments')
    verbose(pcap, prefs)


def test_error_packet():
    srv = Server('--app', 'echo')
    cap = capture(srv.port, 'error')
    good = compact({'ok': 1})
    with connect(cap.client_port) as s:
        sid = read_welcome(s)
        s.sendall(gmud_frame(session_payload(sid, 0, good.encode())))
        first = read_gmud(s)
        s.sendall(gmud_frame(session_payload(sid, 1, b'{"bad":')))
        answer = read_gmud(s)
    pcap = cap.stop()
    srv.stop()
    reply = json.loads(answer[16:])
    check(first[16:].decode() == good and reply.get('code') == 'bad_json'
          and struct.unpack('<QQ', answer[:16]) == (sid, 2),
          'error: the server answers bad_json with its header: %r %r' % (first, answer))
    prefs = {'gmud.port': srv.port}
    rows = dissect(pcap, prefs, COMMON)
    bad = [r for r in rows if to_server(r) and r['gmud.refused']]
    check(len(bad) == 1 and bad[0]['gmud.refused'] == ['bad_json']
          and bad[0]['gmud.session.sequence'] == ['1']
          and any(m.startswith('bad_json at byte 7 of the data') for m in bad[0]['_ws.expert.message'])
          and '[BAD bad_json]' in bad[0]['_ws.col.Info'][0],
          'error: the bad message flagged bad_json: %r' % bad)
    err = [r for r in rows if r['gmud.error.code']]
    check(len(err) == 1 and to_client(err[0]) and err[0]['gmud.error.code'] == ['bad_json']
          and err[0]['gmud.error.code_num'] == ['-8']
          and err[0]['gmud.session.id'] == [str(sid)] and err[0]['gmud.session.sequence'] == ['2']
          and '[ERROR bad_json -8]' in err[0]['_ws.col.Info'][0]
          and any(m.startswith('error packet bad_json (-8)') for m in err[0]['_ws.expert.message']),
          'error: the error packet shown with its code: %r' % err)
    if err:
        check(err[0]['gmud.text'] == [answer[16:].decode()], 'error: its text %r' % err[0]['gmud.text'])
    verbose(pcap, prefs)


def test_wrong_label():
    srv = Server('--app', 'echo', '--session', 'off')
    cap = capture(srv.port, 'label')
    with connect(cap.client_port) as s:
        s.sendall(b'HTTP/1.1 200 OK\r\n')
        answer = read_until_eof(s)
    pcap = cap.stop()
    srv.stop()
    check(answer[:4] == b'GMUD' and b'"code":"bad_label"' in answer,
          'label: the server answers bad_label: %r' % answer)
    prefs = {'gmud.port': srv.port}
    rows = dissect(pcap, prefs, COMMON)
    bad = [r for r in rows if to_server(r)]
    check(len(bad) == 1 and bad[0]['gmud.refused'] == ['bad_label']
          and bad[0]['gmud.label'] == ['HTTP']
          and any('expected 47 4d 55 44 ("GMUD"), got 48 54 54 50' in m
                  for m in bad[0]['_ws.expert.message'])
          and any('13 bytes after the framing error' in m and 'out_of_sync' in m
                  for m in bad[0]['_ws.expert.message'])
          and len(bad[0]['gmud.unframed']) == 1
          and bad[0]['_ws.col.Info'][0].startswith('C>S [bad_label]'),
          'label: the frame flagged bad_label, the rest out_of_sync: %r' % bad)
    err = [r for r in rows if r['gmud.error.code']]
    check(len(err) == 1 and err[0]['gmud.error.code'] == ['bad_label']
          and err[0]['gmud.error.code_num'] == ['-4'] and to_client(err[0])
          and '[ERROR bad_label -4]' in err[0]['_ws.col.Info'][0],
          'label: the error packet: %r' % err)
    # The expert infos are filterable by name.
    check(len(dissect(pcap, prefs, (), 'gmud.expert.bad_label')) == 1,
          'label: gmud.expert.bad_label filters the frame')
    verbose(pcap, prefs)


def test_length():
    srv = Server('--app', 'echo', '--framing', 'length', '--max-message', '1000')
    cap = capture(srv.port, 'length')
    sent = ['{"a":1}', compact({'len': 'y' * 300})]
    status, out, err = run_client(cap.client_port, ['--framing', 'length', '--max-message', '1000',
                                                    '--wait', '0.5'], sent)
    with connect(cap.client_port) as s:
        s.sendall(b'\x07\x00{"b":2}' + b'\xe9\x03')   # a frame, then a header of 1001
        answer = read_until_eof(s)
    pcap = cap.stop()
    srv.stop()
    check(status == 0 and out == sent, 'length: echoed: %s %r %s' % (status, out, err))
    check(b'"code":"too_long"' in answer, 'length: the server answers too_long: %r' % answer)
    prefs = {'gmud.port': srv.port, 'gmud.framing': 'length', 'gmud.max_message': 1000}
    rows = dissect(pcap, prefs, COMMON)
    check(values(rows, 'gmud.text', to_server)[:2] == sent
          and values(rows, 'gmud.length', to_server)[:2] == [str(len(t)) for t in sent],
          'length: the client lines and their lengths: %r' % rows)
    check(values(rows, 'gmud.text', to_client)[:2] == sent, 'length: the echoes')
    check(not values(rows, 'gmud.label') and not values(rows, 'gmud.session.id'),
          'length: no label, no header')
    bad = [r for r in rows if to_server(r) and r['gmud.refused']]
    check(len(bad) == 1 and bad[0]['gmud.text'] == ['{"b":2}'] and bad[0]['gmud.refused'] == ['too_long']
          and bad[0]['gmud.length'] == ['7', '1001']
          and any('too_long (-3): length 1001, over the maximum message of 1000' in m
                  for m in bad[0]['_ws.expert.message']),
          'length: the header of 1001 flagged too_long: %r' % bad)
    err = [r for r in rows if r['gmud.error.code']]
    check(len(err) == 1 and err[0]['gmud.error.code'] == ['too_long']
          and err[0]['gmud.error.code_num'] == ['-3'], 'length: the error packet: %r' % err)
    # With the default maximum, 1001 bytes are no error: the frame just waits.
    rows = dissect(pcap, {'gmud.port': srv.port, 'gmud.framing': 'length'}, COMMON,
                   'gmud.refused')
    check(rows == [], 'length: under the default maximum nothing is too_long: %r' % rows)
    verbose(pcap, prefs)


def test_length_session():
    srv = Server('--app', 'echo', '--framing', 'length', '--session', 'on')
    cap = capture(srv.port, 'length_session')
    sent = ['{"x":"y"}', '{"z":[true,false,null]}']
    status, out, err = run_client(cap.client_port, ['--framing', 'length', '--session', 'on',
                                                    '--wait', '0.5'], sent)
    pcap = cap.stop()
    srv.stop()
    check(status == 0 and out == sent, 'length_session: echoed: %s %r %s' % (status, out, err))
    sid = logged_session(err)
    if not check(sid, 'length_session: the client logs its session: %s' % err):
        return
    prefs = {'gmud.port': srv.port, 'gmud.framing': 'length', 'gmud.session': 'on'}
    check_session_exchange(pcap, prefs, sid, sent, 'length_session')
    check_no_complaint(pcap, prefs, 'length_session')
    # In mode auto, length framing means mode off: the header is data then.
    rows = dissect(pcap, {'gmud.port': srv.port, 'gmud.framing': 'length'}, COMMON)
    check(not values(rows, 'gmud.session.id'), 'length_session: auto is off for length framing')
    verbose(pcap, prefs)


def test_line():
    args = ['--framing', 'line', '--payload', 'text', '--delim', '\\r\\n']
    srv = Server('--app', 'echo', *args)
    cap = capture(srv.port, 'line')
    sent = ['hello', '', 'two words', '{"json":"in text"}']
    status, out, err = run_client(cap.client_port, args + ['--wait', '0.5'], sent)
    with connect(cap.client_port) as s:
        s.sendall(b'glued one\r\nglued two\r\n')
        time.sleep(0.15)
        for piece in (b'split li', b'ne\r', b'\n'):      # the delimiter split
            s.sendall(piece)
            time.sleep(0.15)
        got = b''
        deadline = time.monotonic() + STEP
        while got.count(b'\r\n') < 3 and time.monotonic() < deadline:
            chunk = s.recv(4096)
            if not chunk:
                break
            got += chunk
    pcap = cap.stop()
    srv.stop()
    check(status == 0 and out == sent, 'line: echoed: %s %r %s' % (status, out, err))
    check(got == b'glued one\r\nglued two\r\nsplit line\r\n', 'line: raw peer echoed: %r' % got)
    prefs = {'gmud.port': srv.port, 'gmud.framing': 'line', 'gmud.payload': 'text',
             'gmud.delim': '\\r\\n'}
    rows = dissect(pcap, prefs, COMMON + ('gmud.delimiter',))
    up = values(rows, 'gmud.text', to_server)
    check(up == sent + ['glued one', 'glued two', 'split line'], 'line: client lines %r' % up)
    check(values(rows, 'gmud.text', to_client) == up, 'line: echoes')
    dl = values(rows, 'gmud.delimiter')
    check(dl and set(dl) == {'0d0a'} and len(dl) == 2 * len(up), 'line: delimiters %r' % dl)
    glued = [r for r in rows if to_server(r) and r['gmud.text'] == ['glued one', 'glued two']]
    check(len(glued) == 1, 'line: two lines in one frame')
    spl = [r for r in rows if to_server(r) and r['gmud.text'] == ['split line']]
    check(len(spl) == 1 and spl[0]['tcp.segment.count'] == ['3'],
          'line: the split line reassembled from 3 segments: %r' % spl)
    check(values(rows, 'gmud.payload_len', to_server).count('0') == 1,
          'line: the empty line is an empty message')
    bare = [r['frame.number'] for r in rows if not r['gmud.direction']]
    check(bare == [], 'line: segments that only begin a frame carry no gmud item: %r' % bare)
    check_no_complaint(pcap, prefs, 'line')
    # Read with the default delimiter, the same bytes are not these lines.
    rows = dissect(pcap, {'gmud.port': srv.port, 'gmud.framing': 'line', 'gmud.payload': 'text'},
                   ('gmud.text',))
    check('hello' not in values(rows, 'gmud.text'), 'line: the delimiter preference matters')
    verbose(pcap, prefs)


def test_fixed():
    args = ['--framing', 'fixed:64', '--payload', 'text']
    srv = Server('--app', 'echo', *args)
    cap = capture(srv.port, 'fixed')
    sent = ['0:Sat Mar 30 11:28:34 2019', 'x' * 64, 'short']
    status, out, err = run_client(cap.client_port, args + ['--wait', '0.5'], sent)
    pcap = cap.stop()
    srv.stop()
    check(status == 0 and out == sent, 'fixed: echoed: %s %r %s' % (status, out, err))
    prefs = {'gmud.port': srv.port, 'gmud.framing': 'fixed', 'gmud.fixed_size': 64,
             'gmud.payload': 'text'}
    rows = dissect(pcap, prefs, COMMON + ('gmud.padding',))
    check(values(rows, 'gmud.text', to_server) == sent, 'fixed: client texts %r' % rows)
    check(values(rows, 'gmud.text', to_client) == sent, 'fixed: echoes')
    check(set(values(rows, 'gmud.payload_len')) == {'64'}, 'fixed: every frame 64 bytes')
    pads = values(rows, 'gmud.padding', to_server)
    check(pads == ['00' * (64 - len(t)) for t in sent if len(t) < 64], 'fixed: padding %r' % pads)
    check_no_complaint(pcap, prefs, 'fixed')
    verbose(pcap, prefs)


def test_lecture():
    srv = Server('--app', 'clock', '--session', 'lecture', '--interval', '0', '--count', '3')
    cap = capture(srv.port, 'lecture')
    status, out, err = run_client(cap.client_port, ['--session', 'lecture'], [])
    pcap = cap.stop()
    srv.stop()
    check(status == 0 and len(out) == 3, 'lecture: three clock messages: %s %r %s' % (status, out, err))
    sid = logged_session(err)
    if not check(sid, 'lecture: the client logs its session: %s' % err):
        return
    prefs = {'gmud.port': srv.port, 'gmud.session': 'lecture'}
    rows = dissect(pcap, prefs, COMMON + ('gmud.lecture.session_id', 'gmud.lecture.sequence_id',
                                          'gmud.lecture.data'))
    check(values(rows, 'gmud.welcome.session_id') == [str(sid)], 'lecture: the welcome')
    check(values(rows, 'gmud.lecture.sequence_id', to_server) == ['1', '2', '3']
          and set(values(rows, 'gmud.lecture.session_id', to_server)) == {str(sid)}
          and values(rows, 'gmud.lecture.data') == ['this is test data'] * 3,
          "lecture: the replies' fields: %r" % [r for r in rows if to_server(r)])
    clock = [json.loads(t) for t in values(rows, 'gmud.text', to_client)
             if not t.startswith('{"session_id"')]
    check([c.get('value') for c in clock] == [0, 1, 2] and [compact(c) for c in clock] == out,
          'lecture: the clock messages %r' % clock)
    check(not values(rows, 'gmud.session.id'), 'lecture: no binary header')
    check_no_complaint(pcap, prefs, 'lecture')
    verbose(pcap, prefs)


# Streams no gmud program sends (gmud refuses to), written as a pcap by the
# test in any capture mode: the session refusals of PROTOCOL.md 6.5 with its
# example ids, JSON that section 4 refuses, and error packets sent in place
# of the welcome or as text.
SPEC_SID, OTHER_SID = 1311768467750121, 2718281828459045


def synthetic(name, streams):
    """streams: [(client port, [('c' or 's', bytes), ...])] -> pcap path."""
    conns, events = [], []
    for cid, (cport, evs) in enumerate(streams):
        t0 = 1000.0 + cid
        conns.append((cport, t0 - 0.001))
        events += [(t0 + i * 0.001, cid, d, data) for i, (d, data) in enumerate(evs)]
    path = os.path.join(TMP, name + '.pcap')
    write_pcap(path, conns, 8222, sorted(events, key=lambda e: e[0]))
    return path


def test_refusals():
    hdr = lambda sid, seq, data: session_payload(sid, seq, data)
    move = b'{"move":"north"}'
    welcome = b'{"session_id": %d, "sequence_id": 0}' % SPEC_SID
    on = [('s', gmud_frame(welcome)),
          ('c', gmud_frame(hdr(SPEC_SID, 0, move))),                 # accepted
          ('c', gmud_frame(hdr(SPEC_SID, 0, move))),                 # the same again
          ('c', gmud_frame(hdr(SPEC_SID, 2, move))),                 # from ahead
          ('c', gmud_frame(hdr(OTHER_SID, 1, move))),                # another session's
          ('c', gmud_frame(move)),                                   # no header (mode off)
          ('c', gmud_frame(b'{"go":1}')),                            # shorter than a header
          ('c', gmud_frame(hdr(SPEC_SID, 1, b'{"a":1,"a":2}'))),
          ('c', gmud_frame(hdr(SPEC_SID, 2, b'{"a":"\xc0\xaf"}'))),
          ('c', gmud_frame(hdr(SPEC_SID, 3, b'[1,2]'))),
          ('c', gmud_frame(hdr(SPEC_SID, 4, b'{"a":' + b'[' * 32 + b']' * 32 + b'}'))),
          ('c', gmud_frame(hdr(SPEC_SID, 5, b'{"a":"\\ud800"}'))),
          ('c', gmud_frame(hdr(SPEC_SID, 6, b'{"a":9223372036854775808}'))),
          ('c', gmud_frame(hdr(SPEC_SID, 7, b'{"e":"\\u00e9\\ud83d\\ude00", "n": [-0, 1.5e3, true, null]}'))),
          ('s', gmud_frame(hdr(SPEC_SID, 1, b'{"error":"replayed: expected sequence 1, got 0 (1 behind)",'
                                            b'"code":"replayed"}')))]
    refused_on = [[], ['replayed'], ['skipped'], ['bad_session'], ['bad_session'], ['missing_field'],
                  ['duplicate_key'], ['bad_utf8'], ['not_object'], ['too_deep'], ['bad_json'],
                  ['bad_json'], []]
    reply = lambda sid, n: b'{"session_id": %d, "sequence_id": %d, "data": "x"}' % (sid, n)
    lecture = [('s', gmud_frame(welcome)),
               ('s', gmud_frame(b'{"time":"t","message":"0:t","value":0}')),
               ('c', gmud_frame(reply(SPEC_SID, 1))),                # accepted
               ('c', gmud_frame(reply(SPEC_SID, 1))),                # replayed
               ('s', gmud_frame(b'{"time":"t","message":"1:t","value":1}')),
               ('c', gmud_frame(reply(OTHER_SID, 2))),
               ('c', gmud_frame(b'{"sequence_id": 2, "data": "x"}')),
               ('c', gmud_frame(b'{"session_id": %d, "sequence_id": "2"}' % SPEC_SID)),
               ('c', gmud_frame(b'[%d, 2]' % SPEC_SID)),
               ('c', gmud_frame(reply(SPEC_SID, 3))),                # beyond the data sent
               ('c', gmud_frame(reply(SPEC_SID, 2)))]                # accepted
    refused_lecture = [[], ['replayed'], ['bad_session'], ['missing_field'], ['bad_field'],
                       ['not_object'], ['skipped'], []]
    refusal = [('s', gmud_frame(b'{"error":"too many connections from 192.0.2.7",'
                                b'"code":"addr_limited"}'))]
    text = [('c', b'hello\n'), ('s', b'error server_full: the server is full\n'),
            ('s', b'2: error server_full: the server is full\n')]
    for name, streams, prefs, expect in (
            ('on', [(40001, on), (40002, refusal)], {}, refused_on),
            ('lecture', [(40003, lecture)], {'gmud.session': 'lecture'}, refused_lecture)):
        pcap = synthetic(name, streams)
        prefs = dict(prefs, **{'gmud.port': 8222})
        rows = dissect(pcap, prefs, COMMON)
        got = [r['gmud.refused'] for r in rows if to_server(r)]
        check(got == expect, 'refusals %s: refused as %r, got %r' % (name, expect, got))
        check(values(rows, 'gmud.welcome.session_id')[:1] == [str(SPEC_SID)],
              'refusals %s: the welcome' % name)
        # Each refusal is an expert info, filterable.
        flagged = dissect(pcap, prefs, (), 'gmud.expert.session or gmud.expert.bad_payload')
        check(len(flagged) == sum(1 for e in expect if e), 'refusals %s: expert infos' % name)
        verbose(pcap, prefs)
        if name == 'on':
            bare = [r for r in rows if to_server(r) and r['gmud.refused'] == ['bad_session']][1]
            check(bare['gmud.session.id'] == ['4189022162757952123']
                  and any('without a session header' in m for m in bare['_ws.expert.message']),
                  'refusals on: a message without header, read as one: %r' % bare)
            errs = [(r['gmud.error.code'], r['gmud.session.id']) for r in rows if r['gmud.error.code']]
            check(errs == [(['replayed'], [str(SPEC_SID)]), (['addr_limited'], [])],
                  'refusals on: the error packets, with and without header: %r' % errs)
            last = [r for r in rows if to_server(r)][-1]
            check(last['gmud.text'] == ['{"e":"\\u00e9\\ud83d\\ude00", "n": [-0, 1.5e3, true, null]}'],
                  'refusals on: valid JSON passes: %r' % last)
        else:
            lrows = dissect(pcap, prefs, ('gmud.direction', 'gmud.lecture.sequence_id'))
            check(values(lrows, 'gmud.lecture.sequence_id', to_server) == ['1', '1', '2', '2', '3', '2'],
                  'refusals lecture: sequence_id fields')
    pcap = synthetic('text', [(40004, text)])
    prefs = {'gmud.port': 8222, 'gmud.framing': 'line', 'gmud.payload': 'text'}
    rows = dissect(pcap, prefs, COMMON)
    check([(r['gmud.error.code'], r['gmud.error.code_num']) for r in rows if to_client(r)]
          == [(['server_full'], ['-19']), ([], [])],
          'refusals text: "error <name>:" is an error packet, a relayed one is not: %r' % rows)
    verbose(pcap, prefs)


def make_cert():
    cert, key = os.path.join(TMP, 'cert.pem'), os.path.join(TMP, 'key.pem')
    subprocess.run([OPENSSL, 'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256',
                    '-nodes', '-days', '2', '-keyout', key, '-out', cert, '-subj', '/CN=localhost',
                    '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1'],
                   capture_output=True, check=True, timeout=STEP)
    pub = subprocess.run([OPENSSL, 'x509', '-in', cert, '-pubkey', '-noout'], capture_output=True,
                         check=True, timeout=STEP).stdout
    der = subprocess.run([OPENSSL, 'pkey', '-pubin', '-outform', 'DER'], input=pub,
                         capture_output=True, check=True, timeout=STEP).stdout
    import hashlib
    return cert, key, 'sha256:' + hashlib.sha256(der).hexdigest()


def test_tls():
    if not check(OPENSSL, 'tls: openssl(1) is needed for the certificate'):
        return
    cert, key, pin = make_cert()
    keylog = os.path.join(TMP, 'keys.txt')
    srv = Server('--app', 'echo', '--tls-cert', cert, '--tls-key', key)
    cap = capture(srv.port, 'tls')
    sent = ['{"secret":"inside TLS"}', '{"move":"south"}']
    env = dict(os.environ, SSLKEYLOGFILE=keylog)
    status, out, err = run_client(cap.client_port, ['--tls', '--pin', pin, '--wait', '0.5'], sent,
                                  env=env)
    pcap = cap.stop()
    srv.stop()
    check(status == 0 and out == sent, 'tls: echoed over TLS: %s %r %s' % (status, out, err))
    sid = logged_session(err)
    with open(keylog) as f:
        klines = f.read()
    check('CLIENT_HANDSHAKE_TRAFFIC_SECRET' in klines and 'CLIENT_TRAFFIC_SECRET_0' in klines,
          'tls: the client wrote a key log')
    if not check(sid, 'tls: the client logs its session: %s' % err):
        return
    with open(pcap, 'rb') as f:
        check(b'inside TLS' not in f.read(), 'tls: the capture holds no plaintext')
    # Without the key log: TLS, and no gmud.
    rows = dissect(pcap, {'gmud.port': srv.port}, ('tls.record.content_type',), 'gmud')
    check(rows == [], 'tls: without the key log nothing decodes as gmud: %r' % rows)
    tls_rows = dissect(pcap, {'gmud.port': srv.port}, ('tls.record.content_type',), 'tls')
    check(len(tls_rows) >= 4, 'tls: the TLS dissector has the stream: %d frames' % len(tls_rows))
    for prefs, what in (({'gmud.port': srv.port, 'tls.keylog_file': keylog}, 'tls (gmud.port)'),
                        ({'gmud.port': '', 'gmud.tls_port': srv.port, 'tls.keylog_file': keylog},
                         'tls (gmud.tls_port)')):
        rows = check_session_exchange(pcap, prefs, sid, sent, what)
        enc = dissect(pcap, prefs, ('tls.app_data',), 'gmud and tls.app_data')
        check(len(enc) == len(rows), '%s: every gmud frame came out of a TLS record: %d of %d'
              % (what, len(enc), len(rows)))
        check_no_complaint(pcap, prefs, what)
        verbose(pcap, prefs)


TESTS = [test_gmud_client_session, test_segments, test_error_packet, test_wrong_label,
         test_length, test_length_session, test_line, test_fixed, test_lecture, test_tls,
         test_refusals]


def cleanup():
    while RUNNING:
        p = RUNNING.pop()
        if p.poll() is None:
            p.kill()
            p.wait()


def main():
    global TMP
    if TSHARK is None:
        print('FAIL: tshark is needed (Debian package tshark; scripts/install-deps.sh installs it)')
        return 1
    if not os.path.exists(LUA):
        print('FAIL: no dissector at %s' % LUA)
        return 1
    TMP = tempfile.mkdtemp(prefix='gmud-dissector-')
    try:
        choose_capture_mode()
        return run_tests(TESTS, cleanup=cleanup)
    finally:
        cleanup()
        if os.environ.get('GMUD_DISSECTOR_KEEP'):
            print('kept the captures in %s' % TMP)
        else:
            shutil.rmtree(TMP, ignore_errors=True)


if __name__ == '__main__':
    sys.exit(main())
