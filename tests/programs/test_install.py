#!/usr/bin/env python3
"""The installed gmud, used as another project would use it.

Usage: test_install.py <build dir> <source dir>

Configures nothing: installs the (built) build directory with
`cmake --install <build> --prefix <tmp>/staged`, then moves the tree to
<tmp>/prefix (the pkg-config file and the CMake package must not depend on
where they were installed), and checks:

  - the tree: libgmud.so -> libgmud.so.MAJOR -> libgmud.so.X.Y.Z with the
    soname libgmud.so.MAJOR, libgmud.a, every public header, the programs,
    gmud.pc, the CMake package files, and the man pages if docs/man exists;
  - each installed program runs with --version;
  - examples/echo_server.c and examples/client.c build against the prefix
    (a) with cc and pkg-config (shared, and static with pkg-config --static),
    (b) with CMake, examples/standalone, find_package(gmud) with
        CMAKE_PREFIX_PATH;
  - each built echo server (port 0, its "listening on" line) answers each
    built client, as the client's comment says.

The examples are compiled with the compiler the build used and, in a
GMUD_SANITIZE build, its sanitizer flags (an instrumented library needs the
runtime at link). Every step is bounded; exit 0 on success.
"""

import glob
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile

from progtest import STEP, Lines, check, check_clean, run_tests

BUILD, SOURCE = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
BUILD_STEP = 120.0   # seconds a configure, a build or the install may take
PROGRAMS = ['gmud-server', 'gmud-client', 'gmud-codec', 'gmud-keygen']
SAN_FLAGS = ['-fsanitize=address,undefined', '-fno-sanitize-recover=all',
             '-fno-omit-frame-pointer']
MESSAGES = ['{"say": "hi"}', '{"say": "again", "n": [1, 2]}']
# The echo server counts every message it gets, across connections.
REPLIES = ['{"say":"hi","echo":%d}', '{"say":"again","n":[1,2],"echo":%d}']


def read_cache(build):
    cache = {}
    with open(os.path.join(build, 'CMakeCache.txt')) as f:
        for line in f:
            m = re.match(r'^([A-Za-z_][\w.+-]*):[A-Z]+=(.*)$', line.rstrip('\n'))
            if m:
                cache[m.group(1)] = m.group(2)
    return cache


def read_version(source):
    with open(os.path.join(source, 'include', 'gmud', 'version.h')) as f:
        text = f.read()
    return [re.search(r'#define GMUD_VERSION_%s (\d+)' % p, text).group(1)
            for p in ('MAJOR', 'MINOR', 'PATCH')]


CACHE = read_cache(BUILD)
CMAKE = CACHE.get('CMAKE_COMMAND') or 'cmake'
CC = CACHE.get('CMAKE_C_COMPILER') or 'cc'
SANITIZE = CACHE.get('GMUD_SANITIZE', 'OFF').upper() in ('ON', '1', 'TRUE', 'YES')
EXTRA = SAN_FLAGS if SANITIZE else []
MAJOR, MINOR, PATCH = read_version(SOURCE)
VERSION = '%s.%s.%s' % (MAJOR, MINOR, PATCH)


def install_dir(name, default):
    value = CACHE.get('CMAKE_INSTALL_' + name) or default
    if os.path.isabs(value):
        raise SystemExit('test_install: CMAKE_INSTALL_%s is absolute (%s): '
                         'the tree cannot be installed under a temporary prefix' % (name, value))
    return value


LIBDIR = install_dir('LIBDIR', 'lib')           # lib, or lib/x86_64-linux-gnu
INCLUDEDIR = install_dir('INCLUDEDIR', 'include')
BINDIR = install_dir('BINDIR', 'bin')
MANDIR = install_dir('MANDIR', os.path.join(install_dir('DATAROOTDIR', 'share'), 'man'))

TMP = tempfile.mkdtemp(prefix='gmud-install-')
PREFIX = os.path.join(TMP, 'prefix')
LIB = os.path.join(PREFIX, LIBDIR)
BUILT = {}   # name -> (path, environment it runs with)


def run(cmd, timeout=BUILD_STEP, **kw):
    """cmd's CompletedProcess (text), or one whose returncode is None on timeout."""
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    except subprocess.TimeoutExpired as e:
        return subprocess.CompletedProcess(cmd, None, e.stdout or '', 'timed out: %s' % (e.stderr or ''))
    except OSError as e:
        return subprocess.CompletedProcess(cmd, None, '', 'cannot run: %s' % e)


def ran(r, what):
    return check(r.returncode == 0, '%s: status %s\n$ %s\n%s%s' % (
        what, r.returncode, ' '.join(shlex.quote(str(a)) for a in r.args),
        r.stdout[-1500:], r.stderr[-3000:]))


def needed(path):
    """The DT_NEEDED entries of an ELF file."""
    r = run(['readelf', '-d', path], timeout=STEP)
    return re.findall(r'\(NEEDED\)\s+Shared library: \[([^]]+)\]', r.stdout)


def lib_env():
    env = dict(os.environ)
    env['LD_LIBRARY_PATH'] = LIB + (':' + env['LD_LIBRARY_PATH'] if env.get('LD_LIBRARY_PATH') else '')
    return env


def install():
    staged = os.path.join(TMP, 'staged')
    env = dict(os.environ)
    env.pop('DESTDIR', None)
    r = run([CMAKE, '--install', BUILD, '--prefix', staged], env=env)
    if not ran(r, 'cmake --install (is the build complete?)'):
        return False
    os.rename(staged, PREFIX)  # nothing may remember where it was installed
    return True


def test_tree():
    real = 'libgmud.so.' + VERSION
    chain = [('libgmud.so', 'libgmud.so.' + MAJOR), ('libgmud.so.' + MAJOR, real)]
    for link, target in chain:
        p = os.path.join(LIB, link)
        check(os.path.islink(p) and os.readlink(p) == target,
              '%s/%s should be a symlink to %s' % (LIBDIR, link, target))
    so = os.path.join(LIB, real)
    if check(os.path.isfile(so) and not os.path.islink(so), '%s/%s missing' % (LIBDIR, real)):
        r = run(['readelf', '-d', so], timeout=STEP)
        m = re.search(r'\(SONAME\)\s+Library soname: \[([^]]+)\]', r.stdout)
        check(m is not None and m.group(1) == 'libgmud.so.' + MAJOR,
              'soname of %s: %s' % (real, m.group(1) if m else r.stdout[-500:] + r.stderr))
    check(os.path.isfile(os.path.join(LIB, 'libgmud.a')), '%s/libgmud.a missing' % LIBDIR)

    want = sorted(os.path.basename(h) for h in glob.glob(os.path.join(SOURCE, 'include', 'gmud', '*.h')))
    have = sorted(os.path.basename(h) for h in glob.glob(os.path.join(PREFIX, INCLUDEDIR, 'gmud', '*.h')))
    check(want and have == want, 'installed headers %s, source headers %s' % (have, want))

    for prog in PROGRAMS:
        p = os.path.join(PREFIX, BINDIR, prog)
        check(os.path.isfile(p) and os.access(p, os.X_OK), '%s/%s missing' % (BINDIR, prog))
    for f in ('pkgconfig/gmud.pc', 'cmake/gmud/gmudConfig.cmake',
              'cmake/gmud/gmudConfigVersion.cmake', 'cmake/gmud/gmudTargets.cmake'):
        check(os.path.isfile(os.path.join(LIB, f)), '%s/%s missing' % (LIBDIR, f))

    # Man pages, once the source has them: each docs/man/NAME.N as
    # MANDIR/manN/NAME.N.
    pages = glob.glob(os.path.join(SOURCE, 'docs', 'man', '*.[1-9]'))
    if os.path.isdir(os.path.join(SOURCE, 'docs', 'man')):
        check(pages, 'docs/man exists but holds no NAME.N page')
    for page in pages:
        name = os.path.basename(page)
        p = os.path.join(PREFIX, MANDIR, 'man' + name[-1], name)
        check(os.path.isfile(p), 'man page %s not installed as %s'
              % (name, os.path.relpath(p, PREFIX)))


def test_programs_version():
    for prog in sorted(os.listdir(os.path.join(PREFIX, BINDIR))):
        p = os.path.join(PREFIX, BINDIR, prog)
        env = lib_env() if any(n.startswith('libgmud.so') for n in needed(p)) else None
        r = run([p, '--version'], timeout=STEP, env=env)
        ran(r, '%s --version' % prog)
        check_clean(r.stderr, '%s --version' % prog)
        check('%s %s' % (prog, VERSION) in r.stdout,
              '%s --version printed %r, not "%s %s"' % (prog, r.stdout, prog, VERSION))


def pkg_config(*args):
    env = dict(os.environ)
    env['PKG_CONFIG_PATH'] = os.path.join(LIB, 'pkgconfig')
    r = run(['pkg-config'] + list(args) + ['gmud'], timeout=STEP, env=env)
    return shlex.split(r.stdout) if ran(r, 'pkg-config %s gmud' % ' '.join(args)) else None


def test_pkgconfig_build():
    out = os.path.join(TMP, 'pc')
    os.mkdir(out)
    version = pkg_config('--modversion')
    check(version == [VERSION], 'pkg-config --modversion gmud: %s' % version)
    cflags, libs, static = pkg_config('--cflags'), pkg_config('--libs'), pkg_config('--static', '--libs')
    if cflags is None or libs is None or static is None:
        return
    # The -I and -L of the moved prefix, found from gmud.pc's own place.
    inc, lib = (os.path.realpath(os.path.join(PREFIX, INCLUDEDIR)), os.path.realpath(LIB))
    check(any(f.startswith('-I') and os.path.realpath(f[2:]) == inc for f in cflags),
          'pkg-config --cflags gmud has no -I%s: %s' % (inc, cflags))
    check(any(f.startswith('-L') and os.path.realpath(f[2:]) == lib for f in libs),
          'pkg-config --libs gmud has no -L%s: %s' % (lib, libs))
    # libgmud.a, not libgmud.so, with everything --static lists after it.
    static = ['-l:libgmud.a' if f == '-lgmud' else f for f in static]
    builds = [('echo_server', 'echo_server.c', libs), ('client', 'client.c', libs),
              ('client_static', 'client.c', static)]
    for name, src, flags in builds:
        exe = os.path.join(out, name)
        r = run([CC, '-Wall', '-Wextra', '-Werror'] + EXTRA + ['-o', exe,
                 os.path.join(SOURCE, 'examples', src)] + cflags + flags)
        if ran(r, 'cc %s $(pkg-config ... gmud)' % src):
            shared = any(n.startswith('libgmud.so') for n in needed(exe))
            check(shared == (name != 'client_static'),
                  '%s: libgmud.so needed %s: %s' % (name, shared, needed(exe)))
            BUILT['pc_' + name] = (exe, lib_env())


def test_cmake_build():
    build = os.path.join(TMP, 'cmake')
    flags = ' '.join(EXTRA)
    r = run([CMAKE, '-S', os.path.join(SOURCE, 'examples', 'standalone'), '-B', build,
             '-DCMAKE_C_COMPILER=' + CC, '-DCMAKE_PREFIX_PATH=' + PREFIX,
             '-DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF',
             '-DCMAKE_C_FLAGS=-Wall -Wextra -Werror ' + flags,
             '-DCMAKE_EXE_LINKER_FLAGS=' + flags])
    if not ran(r, 'cmake configure of examples/standalone'):
        return
    found = read_cache(build).get('gmud_DIR', '')
    check(os.path.realpath(found) == os.path.realpath(os.path.join(LIB, 'cmake', 'gmud')),
          'find_package(gmud) found %r, not the temporary prefix' % found)
    if not ran(run([CMAKE, '--build', build, '-j2']), 'cmake --build of examples/standalone'):
        return
    echo, client = os.path.join(build, 'echo_server'), os.path.join(build, 'client')
    check(any(n.startswith('libgmud.so') for n in needed(echo)),
          'echo_server (gmud::gmud) does not use libgmud.so: %s' % needed(echo))
    check(not any(n.startswith('libgmud.so') for n in needed(client)),
          'client (gmud::gmud_static) uses libgmud.so: %s' % needed(client))
    # No LD_LIBRARY_PATH: CMake's build tree RPATH points at the prefix.
    BUILT['cmake_echo_server'] = (echo, None)
    BUILT['cmake_client'] = (client, None)


class Server:
    def __init__(self, path, env):
        self.proc = subprocess.Popen([path, '0'], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True, env=env)
        self.log = Lines(self.proc.stderr)
        m = self.log.wait_for(r'listening on 127\.0\.0\.1:(\d+)')
        self.port = m.group(1) if m else None

    def stop(self, what):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=STEP)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        check_clean('\n'.join(self.log.drain()), what)


def test_echo():
    pairs = [(s, c) for s in ('pc_echo_server', 'cmake_echo_server')
             for c in ('pc_client', 'pc_client_static', 'cmake_client')]
    for s, c in pairs:
        if not check(s in BUILT and c in BUILT, '%s or %s was not built' % (s, c)):
            continue
        server = Server(*BUILT[s])
        if not check(server.port is not None, '%s did not start: %s' % (s, server.log.all)):
            server.stop(s)
            continue
        client, env = BUILT[c]
        # The messages as arguments, then the same ones on stdin.
        for n, (args, stdin) in enumerate((([client, server.port] + MESSAGES, ''),
                                           ([client, server.port], '\n'.join(MESSAGES) + '\n'))):
            r = run(args, timeout=STEP, env=env, input=stdin)
            check_clean(r.stderr, '%s against %s' % (c, s))
            want = [reply % (2 * n + i + 1) for i, reply in enumerate(REPLIES)]
            check(r.returncode == 0 and r.stdout.splitlines() == want,
                  '%s against %s (%s): status %s, %r, %s'
                  % (c, s, 'stdin' if stdin else 'argv', r.returncode, r.stdout, r.stderr[-500:]))
        port = server.port
        server.stop(s)
        if c == 'cmake_client':
            # Nobody listens now: the client says so and exits 1.
            r = run([client, port, '{}'], timeout=STEP, env=env)
            check(r.returncode == 1 and 'client: 127.0.0.1:%s' % port in r.stderr,
                  '%s with no server: status %s, %r' % (c, r.returncode, r.stderr))
    client, env = BUILT.get('cmake_client', (None, None))
    if client:
        r = run([client], timeout=STEP, env=env)
        check(r.returncode == 2 and 'usage' in r.stderr,
              'client without a port: status %s, %r' % (r.returncode, r.stderr))


TESTS = [test_tree, test_programs_version, test_pkgconfig_build, test_cmake_build, test_echo]


def main():
    print('build %s (%s%s), prefix %s, libdir %s' % (BUILD, CC, ', sanitizers' if SANITIZE else '',
                                                     PREFIX, LIBDIR), flush=True)
    try:
        if not install():
            print('1 failure(s)')
            return 1
        return run_tests(TESTS)
    finally:
        shutil.rmtree(TMP, ignore_errors=True)


if __name__ == '__main__':
    sys.exit(main())
