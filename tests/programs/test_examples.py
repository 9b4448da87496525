#!/usr/bin/env python3
"""The library's examples, run as the README and their comments say, with
gmud-client as the peer, over loopback.

Usage: test_examples.py <example_echo_server> <example_stream_server> <gmud-client>

Each example is started on port 0 and the test reads the port from its
"listening on" line. Every step is bounded. Exit 0 on success.
"""

import signal
import subprocess
import sys
import threading
import time

from progtest import STEP, Lines, check, check_clean, run_tests

ECHO, STREAM, CLIENT = sys.argv[1], sys.argv[2], sys.argv[3]


class Example:
    def __init__(self, path):
        self.proc = subprocess.Popen([path, '0'], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.log = Lines(self.proc.stderr)
        m = self.log.wait_for(r'listening on 127\.0\.0\.1:(\d+)')
        self.port = int(m.group(1)) if m else None

    def stop(self):
        """SIGINT ends the example (libuv's default loop has no handler); its log."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=STEP)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        text = '\n'.join(self.log.drain())
        check_clean(text, 'example %s' % self.proc.args[0])
        return text


def test_echo():
    ex = Example(ECHO)
    if not check(ex.port is not None, 'echo example did not start'):
        ex.stop()
        return
    r = subprocess.run([CLIENT, '--port', str(ex.port), '--wait', '0.5'],
                       input='{"say": "hi"}\n{"say": "again"}\n', capture_output=True,
                       text=True, timeout=STEP)
    check_clean(r.stderr, 'client of the echo example')
    check(r.returncode == 0 and r.stdout.splitlines() ==
          ['{"say":"hi","echo":1}', '{"say":"again","echo":2}'],
          'echo example: %s %r %s' % (r.returncode, r.stdout, r.stderr[-300:]))
    ex.stop()


def test_stream_slow_reader():
    """50,000 tiles (about 6 MB, six times max_queued) to a client whose
    stdout nobody reads for the first second: the server waits on on_drain
    instead of closing it as a slow consumer, and every tile arrives, in
    order."""
    ex = Example(STREAM)
    if not check(ex.port is not None, 'stream example did not start'):
        ex.stop()
        return
    p = subprocess.Popen([CLIENT, '--port', str(ex.port), '--wait', '3'],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    err = []
    t = threading.Thread(target=lambda: err.append(p.stderr.read()), daemon=True)
    t.start()
    time.sleep(1.0)  # the pipe fills, gmud-client stops reading, the server waits
    tiles = 0
    in_order = True
    deadline = time.monotonic() + 30
    for line in p.stdout:
        if '"tile":%d,' % tiles not in line:
            in_order = False
        tiles += 1
        if time.monotonic() > deadline:
            break
    try:
        status = p.wait(timeout=STEP)
    except subprocess.TimeoutExpired:
        p.kill()
        status = p.wait()
    t.join(STEP)
    check_clean(''.join(err), 'client of the stream example')
    log = ex.stop()
    check(status == 0 and tiles == 50000 and in_order,
          'stream example: status %s, %d tiles, in order %s; %s'
          % (status, tiles, in_order, ''.join(err)[-300:]))
    check('after 50000 tiles' in log and 'slow consumer' not in log,
          'stream example: the server sent every tile without a slow-consumer close: %s'
          % log[-400:])


TESTS = [test_echo, test_stream_slow_reader]


def main():
    return run_tests(TESTS)

if __name__ == '__main__':
    sys.exit(main())
