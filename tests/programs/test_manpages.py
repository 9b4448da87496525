#!/usr/bin/env python3
"""The manual pages (docs/man/*.1) against the programs they describe: each
page must say what the program's --help says, and nothing it no longer
does.

Usage: test_manpages.py <docs/man dir> <gmud-server> <gmud-client> <gmud-codec> <gmud-keygen>

  structure     each page has .TH with its name and section 1, a NAME line
                "<program> \\- ...", and the sections SYNOPSIS, DESCRIPTION,
                OPTIONS, EXIT STATUS and SEE ALSO (gmud-server also
                ENVIRONMENT and SIGNALS, naming every signal its --help
                names).
  documented    every option --help lists (long form, and a short form if
                it lists one) has an entry (.TP) under OPTIONS whose tag is
                the option as --help spells it, with its argument.
  not_stale     every entry under OPTIONS, and every option named anywhere
                in that section, is one --help lists: a removed or renamed
                option does not linger in the page.
  defaults      an option's default as --help gives it ([...] or
                "(default ...)") and its environment variable ($GMUD_...)
                appear in its entry.
  versions      the version in .TH ("gmud X.Y.Z") is the program's
                --version.
  exit_status   the statuses of --help (0) and of an unknown option (2), as
                the program returns them, are entries under EXIT STATUS.
  rendering     where man(1) and/or groff(1) are installed, the page
                renders with no warning (man --warnings, groff -ww); where
                neither is, this part is skipped and says so.

The roff source is read with its escapes undone (\\- as -, fonts dropped),
so "\\-\\-port" is --port. Every program run is bounded (STEP, 10 s); a
passing run takes well under a second. Python 3 standard library only.
Exit 0 on success. GMUD_TEST_ONLY=<part of a test's name> runs only the
matching tests.
"""

import os
import re
import shutil
import subprocess
import sys

if len(sys.argv) != 6:
    sys.stderr.write(__doc__.split('\n\n')[1] + '\n')
    sys.exit(2)
sys.argv[1:6] = [os.path.abspath(a) for a in sys.argv[1:6]]

from progtest import STEP, check, check_clean, run_tests

MAN_DIR = sys.argv[1]
PROGRAMS = dict(zip(('gmud-server', 'gmud-client', 'gmud-codec', 'gmud-keygen'),
                    sys.argv[2:6]))
# The programs see no GMUD_* variable, nor a key log, from the caller.
ENV = {k: v for k, v in os.environ.items()
       if not k.startswith('GMUD_') and k != 'SSLKEYLOGFILE'}

OPTION_RE = re.compile(r'^(--[a-z0-9][a-z0-9-]*|-[A-Za-z0-9])$')
# An option named in running text: not part of a word ("zero-padded").
TEXT_OPTION_RE = re.compile(r'(?<![\w-])(--[a-z0-9][a-z0-9-]*[a-z0-9]|-[A-Za-z])(?![\w-])')


def run(args):
    """status, stdout, stderr of one bounded run; status None if it hung."""
    try:
        r = subprocess.run(args, capture_output=True, text=True, timeout=STEP, env=ENV,
                           stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return None, '', 'did not exit within %gs' % STEP
    check_clean(r.stderr, ' '.join(os.path.basename(a) for a in args))
    return r.returncode, r.stdout, r.stderr


# ---- --help -----------------------------------------------------------------------

class HelpEntry:
    def __init__(self, names, first):
        self.names = names       # ['--port'] or ['-h', '--help']
        self.first = first       # its first line, without the indent
        self.lines = [first]

    def text(self):
        return ' '.join(' '.join(self.lines).split())

    def default(self):
        """The default --help gives, or None: "[...]" at the end (before the
        variable), or "(default ...)"; a leading "default:" dropped."""
        t = self.text()
        m = re.search(r'\[([^\[\]]*)\]\s*(?:\$GMUD_\w+)?$', t) or \
            re.search(r'\(default ([^()]*)\)', t)
        if m is None:
            return None
        d = m.group(1).strip()
        return re.sub(r'^default:\s*', '', d) or None

    def variable(self):
        m = re.search(r'\$(GMUD_\w+)', self.text())
        return m.group(1) if m else None


def help_entries(text):
    """The options --help lists: a line indented a little and starting with
    an option begins an entry; more indented lines that do not continue it.
    Short and long forms given together ("-h, --help") are one entry."""
    entries, cur = [], None
    for line in text.splitlines():
        m = re.match(r'^ {1,8}(-\S.*)$', line)
        if m:
            names, rest = [], m.group(1)
            for tok in rest.split():
                tok = tok.rstrip(',')
                if not OPTION_RE.match(tok):
                    break
                names.append(tok)
            if names:
                cur = HelpEntry(names, rest)
                entries.append(cur)
                continue
        if cur is not None and line[:1].isspace() and line.strip():
            cur.lines.append(line.strip())
        else:
            cur = None
    return entries


# ---- roff -------------------------------------------------------------------------

ESCAPES = {'-': '-', 'e': '\\', '~': ' ', ' ': ' ', '0': ' ', '&': '', '%': '', '|': '',
           '^': '', 'c': '', ':': '', '.': '.', "'": "'", '`': '`'}
NAMED = {'aq': "'", 'lq': '"', 'rq': '"', 'oq': "'", 'cq': "'", 'dq': '"', 'em': '--',
         'en': '-', 'mi': '-', 'hy': '-', 'bu': '*', 'ti': '~', 'ha': '^', 'rs': '\\',
         'at': '@', 'sh': '#', 'Do': '$', 'ga': '`', 'ul': '_', 'sl': '/'}


def unescape(s):
    """Text as it reads: fonts and zero-width escapes dropped, \\- as -."""
    s = re.sub(r'\\".*$', '', s)  # a comment to the end of the line

    def one(m):
        e = m.group(1)
        if e.startswith('f') or e.startswith('s'):
            return ''
        if e.startswith('(') or e.startswith('['):
            return NAMED.get(e[1:].rstrip(']'), '')
        return ESCAPES.get(e, e)
    return re.sub(r'\\(f\[[^\]]*\]|f\(..|f.|s[+-]?\d|\(..|\[[^\]]*\]|.)', one, s)


def roff_args(s):
    """A macro line's arguments: separated by spaces, "..." quoted with ""
    for a quote inside; an escaped space stays inside its argument."""
    args, i, n = [], 0, len(s)
    while i < n:
        while i < n and s[i] == ' ':
            i += 1
        if i >= n:
            break
        a = ''
        if s[i] == '"':
            i += 1
            while i < n:
                if s[i] == '"':
                    if i + 1 < n and s[i + 1] == '"':
                        a += '"'
                        i += 2
                        continue
                    i += 1
                    break
                a += s[i]
                i += 1
        else:
            while i < n and s[i] != ' ':
                if s[i] == '\\' and i + 1 < n:
                    a += s[i:i + 2]
                    i += 2
                else:
                    a += s[i]
                    i += 1
        args.append(a)
    return args


ALTERNATING = {'BR', 'RB', 'BI', 'IB', 'RI', 'IR'}
JOINED = {'B', 'I', 'SM', 'SB'}


def roff_text(line):
    """The text a source line puts on the page ('' for a request)."""
    if line.startswith('.') or line.startswith("'"):
        parts = line[1:].strip().split(None, 1)
        if not parts:
            return ''
        macro, rest = parts[0], parts[1] if len(parts) > 1 else ''
        if macro in ALTERNATING:
            return unescape(''.join(roff_args(rest)))
        if macro in JOINED:
            return unescape(' '.join(roff_args(rest)))
        return ''
    return unescape(line)


class Page:
    """A page's .TH arguments, its sections (title: source lines) and the
    entries (.TP) of each section: (tag text, body text)."""

    def __init__(self, path):
        with open(path, encoding='utf-8') as f:
            self.lines = [l for l in f.read().splitlines() if not l.startswith('.\\"')]
        self.th = next((roff_args(l[3:]) for l in self.lines if l.startswith('.TH ')), [])
        self.sections, title = {}, None
        for l in self.lines:
            if l.startswith('.SH'):
                title = ' '.join(roff_args(l[3:]))
                self.sections[title] = []
            elif title is not None:
                self.sections[title].append(l)

    def text(self, section):
        return ' '.join(' '.join(roff_text(l) for l in self.sections.get(section, [])).split())

    def entries(self, section):
        out, lines, i = [], self.sections.get(section, []), 0
        ends = ('.TP', '.SS', '.SH', '.PP', '.LP', '.P', '.HP')
        while i < len(lines):
            if lines[i].split()[:1] == ['.TP'] and i + 1 < len(lines):
                tag = ' '.join(roff_text(lines[i + 1]).split())
                body, i = [], i + 2
                while i < len(lines) and (lines[i].split()[:1] or [''])[0] not in ends:
                    body.append(roff_text(lines[i]))
                    i += 1
                out.append((tag, ' '.join(' '.join(body).split())))
            else:
                i += 1
        return out


def tag_names(tag):
    """The options a tag names: its leading option words ("-h, --help")."""
    names = []
    for tok in tag.split():
        tok = tok.rstrip(',')
        if not OPTION_RE.match(tok):
            break
        names.append(tok)
    return names


def contains(text, phrase):
    """phrase in text, not as a part of a longer word or number."""
    phrase = ' '.join(phrase.split())
    return re.search(r'(?<![\w.-])' + re.escape(phrase) + r'(?![\w-])', text) is not None


# ---- What each test reads, once ---------------------------------------------------

CACHE = {}


def program(name):
    """(help entries, help text, page) for a program, or None after a
    failure saying why."""
    if name in CACHE:
        return CACHE[name]
    CACHE[name] = None
    status, out, err = run([PROGRAMS[name], '--help'])
    entries = help_entries(out)
    path = os.path.join(MAN_DIR, name + '.1')
    if not check(status == 0 and entries, '%s --help: status 0 and options listed (%s, %s)'
                 % (name, status, err.strip()[-200:])):
        return None
    if not check(os.path.isfile(path), '%s: no manual page %s' % (name, path)):
        return None
    CACHE[name] = (entries, out, Page(path))
    return CACHE[name]


# ---- The tests --------------------------------------------------------------------

REQUIRED = ['NAME', 'SYNOPSIS', 'DESCRIPTION', 'OPTIONS', 'EXIT STATUS', 'SEE ALSO']


def test_structure():
    for name in PROGRAMS:
        got = program(name)
        if got is None:
            continue
        _, help_text, page = got
        check(page.th[:2] == [name.upper(), '1'],
              '%s: .TH should begin "%s 1": %r' % (name, name.upper(), page.th))
        first = next((l for l in page.sections.get('NAME', []) if l.strip()), '')
        check(first.startswith(name + ' \\- '),
              '%s: the NAME line should be "%s \\- ...": %r' % (name, name, first))
        need = REQUIRED + (['ENVIRONMENT', 'SIGNALS'] if name == 'gmud-server' else [])
        missing = [s for s in need if s not in page.sections]
        check(not missing, '%s: sections missing: %s' % (name, missing))
        signals = set(re.findall(r'\bSIG[A-Z]+\b', help_text))
        said = set(re.findall(r'\bSIG[A-Z]+\b', page.text('SIGNALS')))
        check(signals <= said, '%s: signals --help names but SIGNALS does not: %s'
              % (name, sorted(signals - said)))


def test_documented():
    for name in PROGRAMS:
        got = program(name)
        if got is None:
            continue
        entries, _, page = got
        tags = {}
        for tag, _ in page.entries('OPTIONS'):
            for n in tag_names(tag):
                tags[n] = tag
        for e in entries:
            for n in e.names:
                if not check(n in tags, '%s: %s (in --help) has no entry under OPTIONS'
                             % (name, n)):
                    continue
                # The tag spells the option and its argument as --help does.
                tag = tags[n]
                check(re.match(re.escape(tag) + r'(\s|$)', e.first) is not None,
                      '%s: %s: the entry\'s tag "%s" is not how --help gives it: "%s"'
                      % (name, n, tag, e.first))


def test_not_stale():
    for name in PROGRAMS:
        got = program(name)
        if got is None:
            continue
        entries, _, page = got
        known = {n for e in entries for n in e.names}
        for tag, _ in page.entries('OPTIONS'):
            names = tag_names(tag)
            check(names, '%s: an entry under OPTIONS names no option: "%s"' % (name, tag))
            for n in names:
                check(n in known, '%s: the page documents %s, which --help does not list'
                      % (name, n))
        named = set(TEXT_OPTION_RE.findall(page.text('OPTIONS')))
        check(named <= known, '%s: OPTIONS mentions options --help does not list: %s'
              % (name, sorted(named - known)))


def test_defaults():
    for name in PROGRAMS:
        got = program(name)
        if got is None:
            continue
        entries, _, page = got
        bodies = {}
        for tag, body in page.entries('OPTIONS'):
            for n in tag_names(tag):
                bodies[n] = body
        for e in entries:
            body = bodies.get(e.names[-1])
            if body is None:
                continue  # test_documented says so
            d, var = e.default(), e.variable()
            if d is not None:
                check(contains(body, d), '%s: %s: the default "%s" (--help) is not in its '
                      'entry: %s' % (name, e.names[-1], d, body))
            if var is not None:
                check(contains(body, var), '%s: %s: the variable %s (--help) is not in its '
                      'entry: %s' % (name, e.names[-1], var, body))


def test_versions():
    for name, prog in PROGRAMS.items():
        got = program(name)
        if got is None:
            continue
        page = got[2]
        status, out, err = run([prog, '--version'])
        words = out.split()
        if not check(status == 0 and len(words) >= 2 and words[0] == name,
                     '%s --version: "%s %%s" and status 0 (%s, %r, %s)'
                     % (name, name, status, out, err.strip()[-200:])):
            continue
        source = page.th[3] if len(page.th) > 3 else None
        check(source == 'gmud ' + words[1],
              '%s: .TH says %r, --version says gmud %s' % (name, source, words[1]))


def test_exit_status():
    for name, prog in PROGRAMS.items():
        got = program(name)
        if got is None:
            continue
        page = got[2]
        listed = {tag.split()[0] for tag, _ in page.entries('EXIT STATUS') if tag.split()}
        status, _, _ = run([prog, '--no-such-option-for-the-manpage-test'])
        for what, code in (('--help', 0), ('an unknown option', status)):
            check(code is not None and str(code) in listed,
                  '%s: %s exits %s, which EXIT STATUS does not list (it lists %s)'
                  % (name, what, code, sorted(listed)))


def test_rendering():
    man, groff = shutil.which('man'), shutil.which('groff')
    if man is None and groff is None:
        print('rendering: skipped, neither man nor groff is installed')
        return
    env = dict(ENV, LC_ALL='C.UTF-8', MANROFFSEQ='', MANWIDTH='80')
    env.pop('MANOPT', None)
    for name in PROGRAMS:
        path = os.path.join(MAN_DIR, name + '.1')
        if not os.path.isfile(path):
            continue  # program() says so
        runs = []
        if man is not None:
            runs.append([man, '--warnings', '-E', 'UTF-8', '-l', path])
        if groff is not None:
            runs.append([groff, '-man', '-ww', '-z', path])
        for args in runs:
            try:
                r = subprocess.run(args, capture_output=True, text=True, timeout=STEP,
                                   env=env, stdin=subprocess.DEVNULL)
            except subprocess.TimeoutExpired:
                check(False, '%s: %s did not finish' % (name, os.path.basename(args[0])))
                continue
            tool = os.path.basename(args[0])
            check(r.returncode == 0 and not r.stderr.strip(),
                  '%s: %s warns (status %s): %s' % (name, tool, r.returncode, r.stderr.strip()))
            if tool == 'man':
                check('OPTIONS' in r.stdout and name in r.stdout,
                      '%s: man rendered no page: %r' % (name, r.stdout[:200]))


if __name__ == '__main__':
    sys.exit(run_tests([test_structure, test_documented, test_not_stale, test_defaults,
                        test_versions, test_exit_status, test_rendering]))
