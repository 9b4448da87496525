"""Shared by the Python tests that drive gmud-server and gmud-client
(test_programs.py, test_sigstop.py, test_session_programs.py,
test_examples.py): results, sanitizer checks, a line reader with timeouts,
the lecture's exact read, and the loop that runs a file's tests. Standard
library only."""

import os
import json
import queue
import re
import threading
import time

STEP = 10.0          # seconds any single step may take
FAILURES = []
CTIME_RE = re.compile(r'^[A-Z][a-z]{2} [A-Z][a-z]{2} [ 123]\d \d\d:\d\d:\d\d \d{4}$')
SANITIZER_RE = re.compile(r'ERROR: AddressSanitizer|runtime error:|Sanitizer')


def check(cond, what):
    if not cond:
        FAILURES.append(what)
        print('FAIL:', what, flush=True)
    return cond


def check_clean(text, what):
    """No sanitizer report (the clang build runs with ASan and UBSan)."""
    bad = [l for l in (text or '').splitlines() if SANITIZER_RE.search(l)]
    return check(not bad, '%s: sanitizer report: %s' % (what, text))


class Lines:
    """A pipe's lines, read in a thread so that every wait has a timeout."""

    def __init__(self, pipe):
        self.q = queue.Queue()
        self.all = []
        self.t = threading.Thread(target=self._run, args=(pipe,), daemon=True)
        self.t.start()

    def _run(self, pipe):
        try:
            for line in pipe:
                self.q.put(line.rstrip('\n'))
        except (OSError, ValueError):
            pass
        self.q.put(None)

    def get(self, timeout=STEP):
        """The next line, or None at end of stream or timeout."""
        try:
            line = self.q.get(timeout=max(timeout, 0))
        except queue.Empty:
            return None
        if line is None:
            self.q.put(None)  # end of stream stays the end
        else:
            self.all.append(line)
        return line

    def next_json(self, pred=lambda o: True, timeout=STEP):
        """The next line that is a JSON value for which pred holds (other
        lines skipped), or None at end of stream or timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.get(deadline - time.monotonic())
            if line is None:
                return None
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if pred(obj):
                return obj
        return None

    def wait_for(self, pattern, timeout=STEP):
        deadline = time.monotonic() + timeout
        rx = re.compile(pattern)
        while time.monotonic() < deadline:
            line = self.get(deadline - time.monotonic())
            if line is None:
                return None
            m = rx.search(line)
            if m:
                return m
        return None

    def drain(self, timeout=STEP):
        """Everything up to the end of the stream (bounded)."""
        self.t.join(timeout)
        while self.get(timeout=0) is not None:
            pass
        return self.all


def read_exact(sock, n):
    """Exactly n bytes, looping on recv as the lecture's receivers do.
    EOFError's args are (bytes received, bytes wanted)."""
    data = b''
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise EOFError(len(data), n)
        data += chunk
    return data


def run_tests(tests, cleanup=None, width=28):
    """Runs each test (GMUD_TEST_ONLY=part runs those whose name holds it),
    timing it; an exception is one failure, not the end. cleanup() runs
    after each test, however it ended. Returns the exit status."""
    only = os.environ.get('GMUD_TEST_ONLY')
    started = time.monotonic()
    for t in tests:
        if only and only not in t.__name__:
            continue
        t0 = time.monotonic()
        try:
            t()
        except Exception as e:  # a crash in one test is a failure, not the end
            check(False, '%s raised %r' % (t.__name__, e))
        finally:
            if cleanup is not None:
                cleanup()
        print('%-*s %.2fs' % (width, t.__name__, time.monotonic() - t0), flush=True)
    print('total %.2fs' % (time.monotonic() - started))
    if FAILURES:
        print('%d failure(s)' % len(FAILURES))
        return 1
    print('all passed')
    return 0
