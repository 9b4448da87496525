#!/usr/bin/env python3
"""Replay and tampering tools for testing gmud's sessions over loopback.

An importable module and a command-line tool, standard library only. It
knows gmud's framing, "GMUD" + <LENGTH.2 LE> + payload, and gmud's own
session mode "on", where every payload after the welcome starts with a
16-byte header <SESSION_ID.8 LE><SEQUENCE.8 LE> and then the application's
bytes. Facts of mode on that the tools rely on:
  - the server's first packet is the welcome, the JSON text
    {"session_id": <id>, "sequence_id": 0}, with no session header;
  - the client's packets carry sequences 0, 1, 2, ... (so in a recorded
    client->server stream, frame i carries sequence i);
  - the server's data packets carry sequences 1, 2, ....

What is here:
  frames      frame(), session_frame(), welcome_frame(), parse_frames(),
              Frame.session(): build and take apart byte streams.
  crafting    duplicate(), swap(), skip(), cross_session(), set_sequence(),
              adopt_session(), apply_ops(): new client->server streams from
              a recorded one, for the attacks the lecture names (a replayed
              packet, reordered packets, a removed packet, a packet from
              another connection's session).
  proxy       RecordingProxy: listens on 127.0.0.1 (port 0 picks one),
              forwards every connection to a target byte for byte and
              records both directions, in memory and optionally in files.
  replay      replay(): opens a NEW connection to a server, sends a recorded
              (or crafted) client->server stream verbatim, reads for a
              bounded time and reports what came back (error packets) and
              whether the server closed.

Everything is bounded: socket timeouts, a lifetime for the proxy, a time
limit for each replay, and a byte limit on everything recorded or read.

Command line:
  session_attack.py --self-test
  session_attack.py proxy TARGET_PORT [--target-host H] [--host H] [--port P]
                    [--out DIR] [--max-bytes N] [--lifetime S]
                    [--connections N]
      Prints "proxy listening on H:PORT" as its first line (flushed), then
      "connection N closed: up X bytes, down Y bytes" as each connection
      ends. With --out, connection N is recorded in DIR/conn-N.up
      (client->server) and DIR/conn-N.down (server->client), written as the
      bytes pass. Exits after --lifetime seconds (default 60), or once
      --connections connections have ended.
  session_attack.py replay PORT STREAM_FILE [--host H] [--op OP]...
                    [--adopt-session] [--wait-welcome] [--read-time S]
                    [--frame-delay S] [--max-bytes N] [--label ABCD]
      Sends STREAM_FILE (after the --op edits) into a new connection and
      prints a JSON report (see replay()).
  session_attack.py craft IN OUT --op OP... [--label ABCD]
      Writes the edited stream IN to OUT.
  session_attack.py frames FILE [--server] [--label ABCD]
      Prints the frames of a recorded stream, one line each. --server: the
      first frame is the welcome (no session header).

OPs, applied in order, frames counted from 0:
  duplicate:I     frame I sent twice in a row (a replayed packet)
  swap:I:J        frames I and J exchanged (reordered)
  skip:I          frame I removed
  cross:I:ID      frame I's session id replaced by ID (another connection's)
  seq:I:N         frame I's sequence replaced by N
  adopt:ID        every frame's session id replaced by ID
--adopt-session (replay) reads the new connection's welcome first and puts
its session id in every frame before the OPs: an attacker who can read the
welcome (it is not encrypted) does exactly this, and then only the
sequence numbers stand in the way.

Exit status: 0 ok, 1 self-test failure or connection error, 2 usage.
"""

import argparse
import json
import os
import select
import socket
import struct
import sys
import threading
import time

LABEL = b'GMUD'
FRAME_HEADER_SIZE = 6            # "GMUD" + LENGTH.2
SESSION_HEADER_SIZE = 16         # SESSION_ID.8 + SEQUENCE.8, both LE
MAX_PAYLOAD = 65535
DEFAULT_MAX_BYTES = 1 << 20      # per direction, per connection
MAX_FILE_BYTES = 16 << 20        # largest stream file read from disk


class FrameError(ValueError):
    """The bytes are not a GMUD stream (a wrong label, a short header)."""


# ---------------------------------------------------------------------------
# Frames

def frame(payload, label=LABEL):
    """One GMUD frame: label, 2-byte little-endian length, payload."""
    if len(payload) > MAX_PAYLOAD:
        raise FrameError('payload of %d bytes does not fit a frame' % len(payload))
    return bytes(label) + struct.pack('<H', len(payload)) + bytes(payload)


def session_header(session_id, sequence):
    return struct.pack('<QQ', session_id, sequence)


def session_frame(session_id, sequence, app=b'', label=LABEL):
    """A mode-on packet: the 16-byte session header, then app."""
    return frame(session_header(session_id, sequence) + bytes(app), label)


def welcome_payload(session_id):
    """The welcome as Python's json.dumps writes it (gmud writes the same)."""
    return json.dumps({"session_id": session_id, "sequence_id": 0}).encode('utf-8')


def welcome_frame(session_id, label=LABEL):
    return frame(welcome_payload(session_id), label)


class Frame:
    """One frame found in a stream: where it starts and its payload."""

    def __init__(self, offset, label, payload):
        self.offset = offset
        self.label = label
        self.payload = payload

    @property
    def raw(self):
        return frame(self.payload, self.label)

    def session(self):
        """(session_id, sequence, app bytes), or None when the payload is
        shorter than a session header."""
        if len(self.payload) < SESSION_HEADER_SIZE:
            return None
        sid, seq = struct.unpack_from('<QQ', self.payload)
        return sid, seq, self.payload[SESSION_HEADER_SIZE:]

    def json(self, skip_header=False):
        """The payload (after the session header if skip_header) as JSON,
        or None if it is not JSON."""
        data = self.payload[SESSION_HEADER_SIZE:] if skip_header else self.payload
        try:
            return json.loads(data.decode('utf-8'))
        except ValueError:
            return None

    def __eq__(self, other):
        return isinstance(other, Frame) and (self.offset, self.label, self.payload) == \
            (other.offset, other.label, other.payload)

    def __repr__(self):
        return 'Frame(offset=%d, label=%r, payload=%r)' % (self.offset, self.label,
                                                          self.payload)


def parse_frames(stream, label=LABEL):
    """Splits stream into frames. Returns (frames, rest): rest is the bytes
    of an incomplete last frame (empty when the stream ends on a frame
    boundary). Raises FrameError at a frame that does not start with label."""
    stream = bytes(stream)
    frames = []
    pos = 0
    while len(stream) - pos >= FRAME_HEADER_SIZE:
        got = stream[pos:pos + 4]
        if got != label:
            raise FrameError('bad label at stream byte %d: expected %r, got %r'
                             % (pos, label, got))
        size = struct.unpack_from('<H', stream, pos + 4)[0]
        end = pos + FRAME_HEADER_SIZE + size
        if end > len(stream):
            break
        frames.append(Frame(pos, got, stream[pos + FRAME_HEADER_SIZE:end]))
        pos = end
    rest = stream[pos:]
    # A tail too short for a whole header still has to start like a label.
    head = rest[:4]
    if head != label[:len(head)]:
        raise FrameError('bad label at stream byte %d: expected %r, got %r'
                         % (pos, label, head))
    return frames, rest


def frames_of(stream, label=LABEL):
    """The frames of a complete stream (one that ends on a frame boundary)."""
    frames, rest = parse_frames(stream, label)
    if rest:
        raise FrameError('stream ends inside a frame (%d bytes left over)' % len(rest))
    return frames


def join(frames):
    return b''.join(f.raw for f in frames)


def welcome_of(server_stream, label=LABEL):
    """The welcome object: the first frame of a server->client stream."""
    frames, _ = parse_frames(server_stream, label)
    if not frames:
        raise FrameError('no complete frame: no welcome')
    obj = frames[0].json()
    if not (isinstance(obj, dict) and isinstance(obj.get('session_id'), int)
            and obj.get('sequence_id') == 0):
        raise FrameError('first frame is not a welcome: %r' % frames[0].payload)
    return obj


def session_id_of(server_stream, label=LABEL):
    return welcome_of(server_stream, label)['session_id']


# ---------------------------------------------------------------------------
# Crafting: each function takes a complete client->server stream (bytes) and
# returns a new one. Frames are counted from 0.

def _pick(frames, i):
    if not 0 <= i < len(frames):
        raise IndexError('no frame %d: the stream has %d' % (i, len(frames)))
    return frames[i]


def _rewrite(f, session_id=None, sequence=None):
    s = f.session()
    # A whole-JSON payload is the welcome or a lecture-mode packet: its first
    # 16 bytes are text, not a header, and rewriting them would garble it.
    if s is None or f.json() is not None:
        raise FrameError('frame at byte %d has no session header (%d bytes%s)'
                         % (f.offset, len(f.payload),
                            ', JSON' if f.json() is not None else ''))
    sid, seq, app = s
    sid = sid if session_id is None else session_id
    seq = seq if sequence is None else sequence
    return Frame(f.offset, f.label, session_header(sid, seq) + app)


def duplicate(stream, i, label=LABEL):
    """Frame i twice in a row: a replay inside the connection."""
    frames = frames_of(stream, label)
    _pick(frames, i)
    return join(frames[:i + 1] + frames[i:])


def swap(stream, i, j, label=LABEL):
    """Frames i and j exchanged: packets reordered."""
    frames = frames_of(stream, label)
    frames[i], frames[j] = _pick(frames, j), _pick(frames, i)
    return join(frames)


def skip(stream, i, label=LABEL):
    """Frame i removed: a packet dropped (the ones after it come early)."""
    frames = frames_of(stream, label)
    _pick(frames, i)
    return join(frames[:i] + frames[i + 1:])


def cross_session(stream, i, other_session_id, label=LABEL):
    """Frame i with another connection's session id; its sequence kept."""
    frames = frames_of(stream, label)
    frames[i] = _rewrite(_pick(frames, i), session_id=other_session_id)
    return join(frames)


def set_sequence(stream, i, sequence, label=LABEL):
    frames = frames_of(stream, label)
    frames[i] = _rewrite(_pick(frames, i), sequence=sequence)
    return join(frames)


def adopt_session(stream, session_id, label=LABEL):
    """Every frame's session id replaced by session_id."""
    return join([_rewrite(f, session_id=session_id) for f in frames_of(stream, label)])


def parse_op(text):
    """'duplicate:1' -> ('duplicate', [1]); checks the name and arity."""
    arity = {'duplicate': 1, 'swap': 2, 'skip': 1, 'cross': 2, 'seq': 2, 'adopt': 1}
    parts = text.split(':')
    name = parts[0]
    if name not in arity or len(parts) - 1 != arity[name]:
        raise ValueError('bad op %r (duplicate:I, swap:I:J, skip:I, cross:I:ID, '
                         'seq:I:N, adopt:ID)' % text)
    try:
        values = [int(p, 0) for p in parts[1:]]
    except ValueError:
        raise ValueError('bad number in op %r' % text)
    if any(v < 0 for v in values):
        raise ValueError('negative number in op %r' % text)
    return name, values


def apply_ops(stream, ops, label=LABEL):
    """Applies ops (strings as parse_op reads them) in order."""
    for op in ops:
        name, v = parse_op(op)
        if name == 'duplicate':
            stream = duplicate(stream, v[0], label)
        elif name == 'swap':
            stream = swap(stream, v[0], v[1], label)
        elif name == 'skip':
            stream = skip(stream, v[0], label)
        elif name == 'cross':
            stream = cross_session(stream, v[0], v[1], label)
        elif name == 'seq':
            stream = set_sequence(stream, v[0], v[1], label)
        else:
            stream = adopt_session(stream, v[0], label)
    return stream


# ---------------------------------------------------------------------------
# Describing received frames

def describe_frame(f, first_is_welcome=False):
    """A JSON-friendly description of a frame received from a server.

    The welcome (and a plain JSON payload, such as an error packet sent
    without a session header) is shown as JSON; otherwise the session header
    is taken apart and the app bytes shown as JSON, text or hex."""
    d = {'offset': f.offset, 'length': len(f.payload)}
    obj = f.json()
    if obj is not None:
        d['json'] = obj
        if first_is_welcome:
            d['kind'] = 'welcome'
        return d
    s = f.session()
    if s is None:
        d['hex'] = f.payload.hex()
        return d
    d['session_id'], d['sequence'], app = s
    obj = f.json(skip_header=True)
    if obj is not None:
        d['json'] = obj
    else:
        try:
            d['text'] = app.decode('utf-8')
        except UnicodeDecodeError:
            d['hex'] = app.hex()
    return d


def error_code(desc):
    """The "code" of an error packet description, else None."""
    obj = desc.get('json')
    if isinstance(obj, dict) and 'error' in obj:
        return obj.get('code', '')
    return None


# ---------------------------------------------------------------------------
# The recording proxy

class Recording:
    """One proxied connection: the bytes each way, and how it ended."""

    def __init__(self, number):
        self.number = number
        self.up = bytearray()        # client -> server
        self.down = bytearray()      # server -> client
        self.truncated = False       # hit max_bytes: the proxy cut it off
        self.errors = []             # socket errors seen, as text
        self.done = threading.Event()

    def summary(self):
        text = 'connection %d closed: up %d bytes, down %d bytes' % (
            self.number, len(self.up), len(self.down))
        if self.truncated:
            text += ', truncated'
        for e in self.errors:
            text += ', ' + e
        return text


class RecordingProxy:
    """Forwards connections to (target_host, target_port) unchanged and
    records both directions.

    with RecordingProxy(server_port) as proxy:
        ... connect a client to proxy.port ...
        rec = proxy.wait_done(1)[0]       # rec.up, rec.down

    out_dir: also write connection N to out_dir/conn-N.up and conn-N.down
    as the bytes pass. on_done(recording) is called (in the proxy's thread)
    when a connection has ended. max_bytes bounds each direction: past it
    the connection is cut and marked truncated. After lifetime seconds the
    proxy stops accepting and tears down what is left."""

    POLL = 0.05

    def __init__(self, target_port, target_host='127.0.0.1', host='127.0.0.1',
                 port=0, max_bytes=DEFAULT_MAX_BYTES, lifetime=60.0, out_dir=None,
                 on_done=None):
        self.target = (target_host, target_port)
        self.max_bytes = max_bytes
        self.deadline = time.monotonic() + lifetime
        self.out_dir = out_dir
        self.on_done = on_done
        self.recordings = []
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)
        self.stopping = threading.Event()
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind((host, port))
        self.listener.listen(16)
        self.listener.settimeout(self.POLL)
        self.host = host
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._accept_loop, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self.stopping.set()
        self.thread.join(5)
        try:
            self.listener.close()
        except OSError:
            pass

    def _running(self):
        return not self.stopping.is_set() and time.monotonic() < self.deadline

    def wait_done(self, n, timeout=10.0):
        """The first n recordings, once all n connections have ended.
        Raises TimeoutError if that takes longer than timeout."""
        end = time.monotonic() + timeout
        with self.changed:
            while True:
                if len(self.recordings) >= n and all(r.done.is_set()
                                                     for r in self.recordings[:n]):
                    return self.recordings[:n]
                left = end - time.monotonic()
                if left <= 0:
                    raise TimeoutError('%d proxied connections did not end in %.1f s'
                                       % (n, timeout))
                self.changed.wait(min(left, self.POLL))

    def _accept_loop(self):
        number = 0
        while self._running():
            try:
                client, _ = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                break
            rec = Recording(number)
            number += 1
            with self.changed:
                self.recordings.append(rec)
                self.changed.notify_all()
            threading.Thread(target=self._serve, args=(client, rec), daemon=True).start()

    def _serve(self, client, rec):
        files = [None, None]
        server = None
        try:
            try:
                server = socket.create_connection(self.target, timeout=5)
            except OSError as e:
                rec.errors.append('cannot reach target: %s' % e)
                return
            for s in (client, server):
                # Writes are bounded by this timeout; reads use select.
                s.settimeout(5)
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.out_dir:
                base = os.path.join(self.out_dir, 'conn-%d' % rec.number)
                files = [open(base + '.up', 'wb'), open(base + '.down', 'wb')]
            t = threading.Thread(target=self._pump,
                                 args=(server, client, rec, rec.down, files[1], 'down'),
                                 daemon=True)
            t.start()
            self._pump(client, server, rec, rec.up, files[0], 'up')
            t.join(max(0.0, self.deadline - time.monotonic()) + 1)
        finally:
            for f in files:
                if f:
                    f.close()
            for s in (client, server):
                if s:
                    s.close()
            with self.changed:
                rec.done.set()
                self.changed.notify_all()
            if self.on_done:
                self.on_done(rec)

    def _pump(self, src, dst, rec, buf, out, name):
        """Copies src to dst as it arrives, recording it. An end of stream
        is passed on as shutdown(SHUT_WR); an error or a limit cuts both."""
        try:
            while self._running():
                readable, _, _ = select.select([src], [], [], self.POLL)
                if not readable:
                    continue
                data = src.recv(65536)
                if not data:
                    dst.shutdown(socket.SHUT_WR)
                    return
                room = self.max_bytes - len(buf)
                if len(data) > room:
                    data = data[:room]
                    rec.truncated = True
                buf += data
                if out:
                    out.write(data)
                    out.flush()
                dst.sendall(data)
                if rec.truncated:
                    break
        except OSError as e:
            # Once one side has cut the connection, the other side's errors
            # are only the echo of that: not worth reporting.
            if not rec.truncated and self._running():
                rec.errors.append('%s: %s' % (name, e))
        # A reset, a limit or the lifetime: tear both sides down.
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


# ---------------------------------------------------------------------------
# Replay into a new connection

class _Reader:
    """Reads a socket in a thread until end of stream, an error, max_bytes,
    or stop(); keeps everything it read."""

    def __init__(self, sock, max_bytes):
        self.sock = sock
        self.max_bytes = max_bytes
        self.data = bytearray()
        self.closed = False          # the server ended the stream (FIN)
        self.reset = False           # the connection was reset
        self.error = None
        self.full = False
        self.finished = threading.Event()
        self.stopping = threading.Event()
        self.cond = threading.Condition()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        try:
            while not self.stopping.is_set():
                readable, _, _ = select.select([self.sock], [], [], 0.05)
                if not readable:
                    continue
                chunk = self.sock.recv(65536)
                with self.cond:
                    if not chunk:
                        self.closed = True
                        break
                    self.data += chunk[:self.max_bytes - len(self.data)]
                    self.cond.notify_all()
                    if len(self.data) >= self.max_bytes:
                        self.full = True
                        break
        except ConnectionResetError:
            self.reset = True
        except OSError as e:
            self.error = str(e)
        with self.cond:
            self.finished.set()
            self.cond.notify_all()

    def wait_frames(self, n, label, timeout):
        """Waits until n complete frames have arrived (or the reader ended,
        or timeout). Returns the frames found so far."""
        end = time.monotonic() + timeout
        with self.cond:
            while True:
                try:
                    frames, _ = parse_frames(self.data, label)
                except FrameError:
                    return []
                left = end - time.monotonic()
                if len(frames) >= n or self.finished.is_set() or left <= 0:
                    return frames
                self.cond.wait(min(left, 0.05))

    def stop(self):
        self.stopping.set()
        self.thread.join(5)


def replay(port, stream, host='127.0.0.1', ops=(), adopt=False, wait_welcome=False,
           read_time=2.0, frame_delay=None, max_bytes=DEFAULT_MAX_BYTES,
           label=LABEL, connect_timeout=5.0):
    """Opens a new connection to host:port and sends stream into it.

    adopt: wait for the welcome and put its session id in every frame of
    stream before ops are applied. wait_welcome: wait for the welcome before
    sending (implied by adopt). frame_delay: send frame by frame with this
    pause between them (default: the whole stream with one sendall). After
    sending, reads until the server closes or read_time seconds pass.

    Returns a dict:
      sent          bytes actually handed to the socket
      stream_bytes  length of the stream meant to be sent (after ops)
      send_error    the error that stopped sending (the server closed), or None
      session_id    the new connection's session id (from its welcome), or None
      received      bytes received
      frames        a description of each frame received (describe_frame)
      errors        the "code" of each error packet received, in order
      frame_error   why the received bytes are not GMUD frames, or None
      rest          bytes left after the last complete frame received
      closed        the server ended the stream (FIN)
      reset         the connection was reset
      open          the connection was still open when read_time ran out
      truncated     max_bytes were received and reading stopped
      elapsed       seconds from connect to the end of reading
    """
    started = time.monotonic()
    sock = socket.create_connection((host, port), timeout=connect_timeout)
    sock.settimeout(read_time + 5)      # bounds sendall
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    reader = _Reader(sock, max_bytes)
    result = {'sent': 0, 'send_error': None, 'session_id': None}
    try:
        if adopt or wait_welcome:
            frames = reader.wait_frames(1, label, read_time)
            if frames:
                obj = frames[0].json()
                if isinstance(obj, dict) and isinstance(obj.get('session_id'), int):
                    result['session_id'] = obj['session_id']
            if adopt:
                if result['session_id'] is None:
                    raise FrameError('no welcome arrived to adopt a session id from')
                stream = adopt_session(stream, result['session_id'], label)
        stream = apply_ops(stream, ops, label)
        result['stream_bytes'] = len(stream)

        if frame_delay is None:
            pieces = [stream]
        else:
            pieces = [f.raw for f in frames_of(stream, label)]
        try:
            for n, piece in enumerate(pieces):
                if n and frame_delay:
                    time.sleep(frame_delay)
                sock.sendall(piece)
                result['sent'] += len(piece)
        except OSError as e:
            result['send_error'] = str(e)

        reader.finished.wait(read_time)
    finally:
        reader.stop()
        sock.close()

    data = bytes(reader.data)
    result.update({'received': len(data), 'frames': [], 'errors': [],
                   'frame_error': None, 'rest': 0, 'closed': reader.closed,
                   'reset': reader.reset, 'truncated': reader.full,
                   'open': not (reader.closed or reader.reset or reader.error
                                or reader.full),
                   'elapsed': round(time.monotonic() - started, 3)})
    if reader.error:
        result['read_error'] = reader.error
    try:
        frames, rest = parse_frames(data, label)
    except FrameError as e:
        frames, rest = [], b''
        result['frame_error'] = str(e)
        result['hex'] = data[:256].hex()
    result['rest'] = len(rest)
    for n, f in enumerate(frames):
        d = describe_frame(f, first_is_welcome=(n == 0))
        if n == 0 and d.get('kind') == 'welcome' and result['session_id'] is None:
            obj = d['json']
            if isinstance(obj, dict):
                result['session_id'] = obj.get('session_id')
        result['frames'].append(d)
        code = error_code(d)
        if code is not None:
            result['errors'].append(code)
    return result


# ---------------------------------------------------------------------------
# Self-test

def _expect(cond, what):
    if not cond:
        raise AssertionError(what)


def _self_test_frames():
    # frame(): label, length 3 little-endian, payload.
    _expect(frame(b'abc') == b'GMUD\x03\x00abc', 'frame bytes')
    _expect(frame(b'') == b'GMUD\x00\x00', 'empty frame')
    _expect(frame(b'x' * 258)[:6] == b'GMUD\x02\x01', 'length is little-endian')
    try:
        frame(b'x' * 65536)
        _expect(False, 'oversized frame accepted')
    except FrameError:
        pass

    # A session header is id then sequence, 8 bytes each, little-endian.
    f = session_frame(0x0102030405060708, 2, b'hi')
    _expect(f == (b'GMUD\x12\x00'
                  b'\x08\x07\x06\x05\x04\x03\x02\x01'
                  b'\x02\x00\x00\x00\x00\x00\x00\x00'
                  b'hi'), 'session frame bytes')

    # The welcome: json.dumps' default separators, no session header.
    _expect(welcome_frame(7) == b'GMUD\x23\x00{"session_id": 7, "sequence_id": 0}',
            'welcome bytes')

    # A client stream in session 7: sequences 0, 1, 2.
    a = session_frame(7, 0, b'A')
    b = session_frame(7, 1, b'B')
    c = session_frame(7, 2, b'C')
    stream = a + b + c
    frames = frames_of(stream)
    _expect([x.raw for x in frames] == [a, b, c], 'parse round trip')
    _expect([x.offset for x in frames] == [0, 23, 46], 'frame offsets')
    _expect([x.session() for x in frames] == [(7, 0, b'A'), (7, 1, b'B'), (7, 2, b'C')],
            'session headers read back')

    # Incomplete tails are returned, not parsed.
    for cut in (1, 4, 5, 6, 22):
        got, rest = parse_frames(stream + a[:cut])
        _expect(len(got) == 3 and rest == a[:cut], 'tail of %d bytes' % cut)
    try:
        frames_of(stream + a[:5])
        _expect(False, 'incomplete stream accepted')
    except FrameError:
        pass
    for bad in (b'GMUX\x00\x00', b'HTTP/1.1 200', b'X'):
        try:
            parse_frames(stream + bad)
            _expect(False, 'bad label %r accepted' % bad)
        except FrameError as e:
            _expect('stream byte 69' in str(e), 'error names the offset: %s' % e)
    _expect(frames_of(frame(b'z', b'ABCD'), b'ABCD')[0].payload == b'z', 'other label')

    # The attacks, byte for byte.
    _expect(duplicate(stream, 1) == a + b + b + c, 'duplicate')
    _expect(duplicate(stream, 2) == a + b + c + c, 'duplicate last')
    _expect(swap(stream, 0, 2) == c + b + a, 'swap')
    _expect(swap(stream, 1, 1) == stream, 'swap with itself')
    _expect(skip(stream, 0) == b + c, 'skip first')
    _expect(skip(stream, 1) == a + c, 'skip')
    _expect(cross_session(stream, 1, 0x99) == a + session_frame(0x99, 1, b'B') + c,
            'cross session')
    _expect(set_sequence(stream, 2, 5) == a + b + session_frame(7, 5, b'C'), 'set sequence')
    _expect(adopt_session(stream, 8) == (session_frame(8, 0, b'A') + session_frame(8, 1, b'B')
                                         + session_frame(8, 2, b'C')), 'adopt')
    _expect(apply_ops(stream, ['adopt:8', 'duplicate:0', 'skip:3']) ==
            session_frame(8, 0, b'A') * 2 + session_frame(8, 1, b'B'), 'ops in order')
    _expect(apply_ops(stream, ['cross:0:0x10']) == session_frame(16, 0, b'A') + b + c,
            'hex id in an op')
    for bad in ('duplicate', 'swap:1', 'skip:x', 'cross:1', 'frob:1', 'skip:-1'):
        try:
            parse_op(bad)
            _expect(False, 'bad op %r accepted' % bad)
        except ValueError:
            pass
    for bad in (lambda: duplicate(stream, 3), lambda: swap(stream, 0, 3),
                lambda: skip(stream, 9)):
        try:
            bad()
            _expect(False, 'frame index out of range accepted')
        except IndexError:
            pass
    for no_header in (frame(b'short'), welcome_frame(12345678)):
        try:
            cross_session(no_header, 0, 1)
            _expect(False, 'frame without a session header rewritten')
        except FrameError:
            pass

    # Server streams: the welcome, then data with sequences 1, 2, ...
    down = welcome_frame(7) + session_frame(7, 1, b'{"x": 1}')
    _expect(session_id_of(down) == 7, 'session id from the welcome')
    fr = frames_of(down)
    _expect(describe_frame(fr[0], True) == {'offset': 0, 'length': 35, 'kind': 'welcome',
                                            'json': {'session_id': 7, 'sequence_id': 0}},
            'welcome described')
    _expect(describe_frame(fr[1]) == {'offset': 41, 'length': 24, 'session_id': 7,
                                      'sequence': 1, 'json': {'x': 1}}, 'data described')
    err = frame(b'{"error": "replayed: ...", "code": "replayed"}')
    _expect(error_code(describe_frame(frames_of(err)[0])) == 'replayed', 'error code')
    err = session_frame(7, 2, b'{"error": "e", "code": "skipped"}')
    _expect(error_code(describe_frame(frames_of(err)[0])) == 'skipped',
            'error code after a session header')


class _ToyServer:
    """A tiny mode-on server for the self-test only (NOT gmud's behaviour,
    just enough to exercise the proxy and replay): welcome, then for each
    client frame with the right session and sequence an echo with the next
    server sequence; anything else gets an error packet, and the server
    closes gracefully."""

    def __init__(self, session_ids):
        self.ids = list(session_ids)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(('127.0.0.1', 0))
        self.sock.listen(8)
        self.sock.settimeout(0.05)
        self.port = self.sock.getsockname()[1]
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stopping.is_set():
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            sid = self.ids.pop(0)
            threading.Thread(target=self._serve, args=(conn, sid), daemon=True).start()

    def _serve(self, conn, sid):
        conn.settimeout(5)
        conn.sendall(welcome_frame(sid))
        buf = b''
        want = 0
        try:
            while True:
                frames, buf = parse_frames(buf)
                for f in frames:
                    s = f.session()
                    code = None
                    if s is None or s[0] != sid:
                        code = 'bad_session'
                    elif s[1] < want:
                        code = 'replayed'
                    elif s[1] > want:
                        code = 'skipped'
                    if code:
                        conn.sendall(frame(json.dumps({'error': 'toy', 'code': code})
                                           .encode()))
                        raise EOFError
                    want += 1
                    conn.sendall(session_frame(sid, want, s[2]))
                chunk = conn.recv(65536)
                if not chunk:
                    break
                buf = buf + chunk
        except (EOFError, OSError, FrameError):
            pass
        try:
            conn.shutdown(socket.SHUT_WR)
            end = time.monotonic() + 1
            while time.monotonic() < end and conn.recv(65536):
                pass
        except OSError:
            pass
        conn.close()

    def close(self):
        self.stopping.set()
        self.thread.join(5)
        self.sock.close()


def _self_test_loopback():
    toy = _ToyServer([1001, 1002, 1003, 1004, 1005, 1006, 1007])
    try:
        with RecordingProxy(toy.port, lifetime=20) as proxy:
            # A well-behaved client through the proxy.
            client = socket.create_connection(('127.0.0.1', proxy.port), timeout=5)
            got = b''
            while not parse_frames(got)[0]:
                got += client.recv(65536)
            sid = session_id_of(got)
            _expect(sid == 1001, 'welcome through the proxy')
            sent = b''.join(session_frame(sid, n, b'msg%d' % n) for n in range(3))
            client.sendall(sent)
            want = welcome_frame(sid) + b''.join(session_frame(sid, n + 1, b'msg%d' % n)
                                                 for n in range(3))
            while len(got) < len(want):
                chunk = client.recv(65536)
                if not chunk:
                    break
                got += chunk
            client.close()
            _expect(got == want, 'echoes through the proxy')
            rec = proxy.wait_done(1, 5)[0]
            _expect(bytes(rec.up) == sent, 'proxy recorded client->server exactly')
            _expect(bytes(rec.down) == want, 'proxy recorded server->client exactly')
        recorded = bytes(rec.up)

        # The recording, verbatim, into a new connection: another session.
        r = replay(toy.port, recorded, read_time=2)
        _expect(r['session_id'] == 1002 and r['errors'] == ['bad_session'] and r['closed'],
                'verbatim replay: %r' % r)
        # With the new session's id: accepted, all three echoed.
        r = replay(toy.port, recorded, adopt=True, read_time=0.5)
        _expect(r['errors'] == [] and r['open'] and len(r['frames']) == 4
                and r['frames'][3]['sequence'] == 3, 'adopted replay: %r' % r)
        # Then each attack, caught where expected.
        for ops, echoes, code in ((['duplicate:1'], 2, 'replayed'),
                                  (['skip:1'], 1, 'skipped'),
                                  (['swap:0:2'], 0, 'skipped'),
                                  (['cross:1:1001'], 1, 'bad_session')):
            r = replay(toy.port, recorded, adopt=True, ops=ops, read_time=2,
                       frame_delay=0.01)
            _expect(r['errors'] == [code] and len(r['frames']) == 1 + echoes + 1
                    and r['closed'], '%s: %r' % (ops, r))
    finally:
        toy.close()


def self_test():
    _self_test_frames()
    print('self-test: frame utilities ok', flush=True)
    _self_test_loopback()
    print('self-test: proxy and replay over loopback ok (against a toy server)', flush=True)


# ---------------------------------------------------------------------------
# Command line

def _read_stream(path):
    with open(path, 'rb') as f:
        data = f.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise ValueError('%s is larger than %d bytes' % (path, MAX_FILE_BYTES))
    return data


def _label(text):
    label = text.encode('ascii')
    if len(label) != 4:
        raise argparse.ArgumentTypeError('a label is 4 ASCII characters')
    return label


def _op(text):
    try:
        parse_op(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e))
    return text


def _cmd_proxy(args):
    if args.out:
        os.makedirs(args.out, exist_ok=True)
    ended = []
    lock = threading.Lock()

    def on_done(rec):
        with lock:
            ended.append(rec)
            print(rec.summary(), flush=True)

    proxy = RecordingProxy(args.target_port, target_host=args.target_host, host=args.host,
                           port=args.port, max_bytes=args.max_bytes,
                           lifetime=args.lifetime, out_dir=args.out, on_done=on_done)
    print('proxy listening on %s:%d' % (args.host, proxy.port), flush=True)
    proxy.start()
    try:
        while time.monotonic() < proxy.deadline:
            with lock:
                if args.connections and len(ended) >= args.connections:
                    break
            time.sleep(0.05)
    except KeyboardInterrupt:
        pass
    proxy.close()
    return 0


def _cmd_replay(args):
    stream = _read_stream(args.stream)
    try:
        r = replay(args.port, stream, host=args.host, ops=args.op, adopt=args.adopt_session,
                   wait_welcome=args.wait_welcome, read_time=args.read_time,
                   frame_delay=args.frame_delay, max_bytes=args.max_bytes,
                   label=args.label)
    except (OSError, FrameError, IndexError) as e:
        print('session_attack: replay: %s' % e, file=sys.stderr)
        return 1
    print(json.dumps(r, indent=2), flush=True)
    return 0


def _cmd_craft(args):
    out = apply_ops(_read_stream(args.input), args.op, args.label)
    with open(args.output, 'wb') as f:
        f.write(out)
    print('%d frames, %d bytes' % (len(frames_of(out, args.label)), len(out)))
    return 0


def _cmd_frames(args):
    frames, rest = parse_frames(_read_stream(args.file), args.label)
    for n, f in enumerate(frames):
        d = describe_frame(f, first_is_welcome=(args.server and n == 0))
        print(n, json.dumps(d))
    if rest:
        print('(%d bytes of an incomplete frame)' % len(rest))
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(
        description='Replay and tampering tools for gmud sessions (see the module '
                    'docstring for details).')
    parser.add_argument('--self-test', action='store_true',
                        help='check the frame utilities, the proxy and replay')
    sub = parser.add_subparsers(dest='command')

    p = sub.add_parser('proxy', help='a recording proxy')
    p.add_argument('target_port', type=int)
    p.add_argument('--target-host', default='127.0.0.1')
    p.add_argument('--host', default='127.0.0.1')
    p.add_argument('--port', type=int, default=0, help='listening port (0: pick one)')
    p.add_argument('--out', help='directory for conn-N.up / conn-N.down')
    p.add_argument('--max-bytes', type=int, default=DEFAULT_MAX_BYTES,
                   help='per direction, per connection')
    p.add_argument('--lifetime', type=float, default=60.0)
    p.add_argument('--connections', type=int, default=0,
                   help='exit once this many connections have ended')

    p = sub.add_parser('replay', help='send a stream into a new connection')
    p.add_argument('port', type=int)
    p.add_argument('stream', help='a recorded client->server stream')
    p.add_argument('--host', default='127.0.0.1')
    p.add_argument('--op', type=_op, action='append', default=[])
    p.add_argument('--adopt-session', action='store_true')
    p.add_argument('--wait-welcome', action='store_true')
    p.add_argument('--read-time', type=float, default=2.0)
    p.add_argument('--frame-delay', type=float, default=None)
    p.add_argument('--max-bytes', type=int, default=DEFAULT_MAX_BYTES)
    p.add_argument('--label', type=_label, default=LABEL)

    p = sub.add_parser('craft', help='edit a recorded stream')
    p.add_argument('input')
    p.add_argument('output')
    p.add_argument('--op', type=_op, action='append', required=True)
    p.add_argument('--label', type=_label, default=LABEL)

    p = sub.add_parser('frames', help='list the frames of a recorded stream')
    p.add_argument('file')
    p.add_argument('--server', action='store_true',
                   help='the first frame is the welcome')
    p.add_argument('--label', type=_label, default=LABEL)

    args = parser.parse_args(argv)
    if args.self_test:
        try:
            self_test()
        except AssertionError as e:
            print('self-test FAILED:', e, file=sys.stderr)
            return 1
        return 0
    commands = {'proxy': _cmd_proxy, 'replay': _cmd_replay, 'craft': _cmd_craft,
                'frames': _cmd_frames}
    if args.command not in commands:
        parser.print_usage(sys.stderr)
        return 2
    try:
        return commands[args.command](args)
    except (FrameError, IndexError, ValueError, OSError) as e:
        print('session_attack: %s' % e, file=sys.stderr)
        return 1


if __name__ == '__main__':
    sys.exit(main())
