#!/usr/bin/env python3
"""gmud-server under systemd (issue 12): the sd_notify protocol and the unit
in contrib/systemd, without a running systemd: this test plays systemd's
part with a datagram socket of its own.

Usage: test_systemd.py <gmud-server> <contrib/systemd dir>

  notify      NOTIFY_SOCKET (a path, then an abstract '@' name): READY=1
              once the server listens (a client connects right after it),
              WATCHDOG=1 at half of WATCHDOG_USEC, none while the process
              is stopped (SIGSTOP), again after SIGCONT, STOPPING=1 on
              SIGTERM; no watchdog for another WATCHDOG_PID; nothing sent
              and nothing broken without NOTIFY_SOCKET.
  unit        systemd-analyze verify accepts contrib/systemd's unit (with
              ExecStart pointed at the built program), which is Type=notify
              with a watchdog, an unprivileged user and the hardening the
              README describes.
  env_file    every variable set in the example environment file is one
              gmud-server takes: it starts with them.

Every wait is bounded; a passing run takes a few seconds. Python 3 standard
library (and systemd-analyze where systemd is installed). Exit 0 on
success.
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

sys.argv[1:3] = [os.path.abspath(a) for a in sys.argv[1:3]]

from progtest import STEP, Lines, check, check_clean, run_tests

SERVER, CONTRIB = sys.argv[1:3]
TMP = tempfile.mkdtemp(prefix='gmud-systemd-')
for k in [k for k in os.environ if k.startswith('GMUD_') and k != 'GMUD_TEST_ONLY']:
    del os.environ[k]


def start(env_extra, *args):
    env = dict(os.environ, **env_extra)
    p = subprocess.Popen([SERVER, '--port', '0', '--app', 'echo', *args],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True, env=env)
    p.log = Lines(p.stderr)
    return p


def stop(p, signal_it=True):
    """SIGTERM (unless signal_it is false: it was sent already; a second
    one would kill the process mid-flush); the exit status."""
    if signal_it and p.poll() is None:
        p.send_signal(signal.SIGTERM)
    try:
        status = p.wait(timeout=STEP)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        return None
    p.log.t.join(timeout=STEP)
    check_clean('\n'.join(p.log.all), 'server')
    return status


def receive(sock, until, timeout):
    """Datagrams until one contains `until` (or the timeout): the list."""
    got = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            got.append(sock.recv(4096).decode())
        except socket.timeout:
            break
        if until is not None and until in got[-1]:
            break
    return got


def notify_run(address, bind_to):
    what = 'notify (%s)' % ('abstract' if address.startswith('@') else 'path')
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(bind_to)
        p = start({'NOTIFY_SOCKET': address, 'WATCHDOG_USEC': '200000'})
        got = receive(sock, 'READY=1', STEP)
        check(got and 'READY=1' in got[-1], '%s: READY=1 (%r)' % (what, got))
        m = p.log.wait_for(r'listen: listening on \S+ port (\d+)', timeout=0.5)
        if check(m is not None, '%s: "listen" logged before READY' % what):
            try:
                socket.create_connection(('127.0.0.1', int(m.group(1))), timeout=1).close()
                check(True, '')
            except OSError as e:
                check(False, '%s: a client connects right after READY: %s' % (what, e))
        check(p.log.wait_for(r'systemd: watchdog: fed every 100 ms', timeout=1) is not None,
              '%s: the watchdog period is logged' % what)
        pings = receive(sock, None, 0.65)
        n = sum(1 for g in pings if g == 'WATCHDOG=1')
        check(4 <= n <= 8, '%s: WATCHDOG=1 every 100 ms: %d in 0.65 s' % (what, n))
        p.send_signal(signal.SIGSTOP)
        time.sleep(0.05)
        receive(sock, None, 0.05)   # what was sent just before the stop
        silent = receive(sock, None, 0.5)
        check(silent == [], '%s: no WATCHDOG=1 while stopped: %r' % (what, silent))
        p.send_signal(signal.SIGCONT)
        again = receive(sock, 'WATCHDOG=1', 1)
        check(again and again[-1] == 'WATCHDOG=1', '%s: fed again after SIGCONT' % what)
        p.send_signal(signal.SIGTERM)
        end = receive(sock, 'STOPPING=1', STEP)
        check(end and end[-1] == 'STOPPING=1', '%s: STOPPING=1 on SIGTERM: %r' % (what, end[-3:]))
        check(stop(p, signal_it=False) == 0, '%s: exits 0' % what)


def test_notify():
    path = os.path.join(TMP, 'notify.sock')
    notify_run(path, path)
    name = '@gmud-test-%d' % os.getpid()
    notify_run(name, '\0' + name[1:])
    # Another process's watchdog: READY, but no pings.
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        path2 = os.path.join(TMP, 'notify2.sock')
        sock.bind(path2)
        p = start({'NOTIFY_SOCKET': path2, 'WATCHDOG_USEC': '100000', 'WATCHDOG_PID': '1'})
        got = receive(sock, 'READY=1', STEP)
        more = receive(sock, None, 0.4)
        check(got and 'READY=1' in got[-1] and 'WATCHDOG=1' not in more,
              'WATCHDOG_PID of another process: READY and no pings (%r, %r)' % (got, more))
        check(stop(p) == 0, 'other WATCHDOG_PID: exits 0')
    # No NOTIFY_SOCKET: it runs as ever.
    p = start({})
    check(p.log.wait_for(r'listen: listening') is not None and
          not any('systemd' in l for l in p.log.all), 'without NOTIFY_SOCKET: nothing of it')
    check(stop(p) == 0, 'without NOTIFY_SOCKET: exits 0')


def test_unit():
    unit = open(os.path.join(CONTRIB, 'gmud-server.service')).read()
    for key in ('Type=notify', 'WatchdogSec=', 'User=gmud', 'NoNewPrivileges=yes',
                'ProtectSystem=strict', 'RestrictAddressFamilies=', 'LimitNOFILE=16384',
                'EnvironmentFile=-/etc/gmud/gmud-server.env', 'ExecReload=/bin/kill -HUP'):
        check(key in unit, 'the unit has %s' % key)
    if shutil.which('systemd-analyze') is None:
        print('note: systemd-analyze not installed here; the unit is not verified')
        return
    test_unit_path = os.path.join(TMP, 'gmud-server.service')
    with open(test_unit_path, 'w') as f:
        f.write(re.sub(r'^ExecStart=\S+', 'ExecStart=' + SERVER, unit, flags=re.M))
    r = subprocess.run(['systemd-analyze', 'verify', '--man=no', test_unit_path],
                       capture_output=True, text=True, timeout=60)
    problems = [l for l in (r.stdout + r.stderr).splitlines() if 'gmud-server' in l]
    check(r.returncode == 0 and not problems,
          'systemd-analyze verify: %s %s' % (r.returncode, (r.stdout + r.stderr).strip()))


def test_env_file():
    env = {}
    for line in open(os.path.join(CONTRIB, 'gmud-server.env')):
        m = re.match(r'^(GMUD_[A-Z0-9_]+)=(.*)$', line.strip())
        if m:
            env[m.group(1)] = m.group(2)
    check('GMUD_LISTEN' in env, 'the env file sets GMUD_LISTEN: %r' % env)
    env['GMUD_LISTEN'] = '[::1]:0'   # a free port on loopback for the test
    e = dict(os.environ, **env)
    p = subprocess.Popen([SERVER], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True, env=e)
    p.log = Lines(p.stderr)
    m = p.log.wait_for(r'listen: listening on ::1 port \d+')
    check(m is not None, 'gmud-server starts with the env file\'s settings: %s' % p.log.all[-3:])
    check(stop(p) == 0, 'env file: exits 0')


TESTS = [test_notify, test_unit, test_env_file]


def main():
    try:
        return run_tests(TESTS)
    finally:
        shutil.rmtree(TMP, ignore_errors=True)


if __name__ == '__main__':
    sys.exit(main())
