"""Command-line handling shared by the lecture programs in this folder.

Only the argument parsing lives here; every program keeps its own socket
code, written out in full the way the lecture writes it, so each file can be
read (and compared with the lecture) on its own.

Arguments, in any order:
  HOST PORT            positional, defaults 127.0.0.1 8222 (the lecture's)
  --count N            servers: send N messages then close (default: forever)
                       clients: stop after N messages (default: until close)
  --interval SECONDS   servers: pause between messages (default 1, lecture)
  --recv N             servers: after sending, read N messages and print them
  --send TEXT          clients: send TEXT as one message (repeatable)
  --label ABCD         approach 5: the packet ID to send and expect (GMUD)
  --send-label ABCD    approach 5: the packet ID to send (default --label)
  --pause SECONDS      clients: sleep before the first recv (the lecture's
                       debugger pause, showing messages glued together)
  --show-data          json clients/servers: also print the raw JSON text
  --timeout SECONDS    socket timeout, so nothing hangs (default 10)
"""

import sys

DEFAULTS = {
    'host': '127.0.0.1',
    'port': 8222,
    'count': None,
    'interval': 1.0,
    'recv': 0,
    'send': [],
    'label': 'GMUD',
    'send_label': None,
    'pause': 0.0,
    'show_data': False,
    'timeout': 10.0,
}

VALUED = {'--count': int, '--interval': float, '--recv': int, '--send': str,
          '--label': str, '--send-label': str, '--pause': float,
          '--timeout': float}


class Args:
    pass


def usage(prog, message):
    print('%s: %s' % (prog, message), file=sys.stderr)
    print(__doc__, file=sys.stderr)
    sys.exit(2)


def parse(argv):
    prog = argv[0]
    args = Args()
    for key, value in DEFAULTS.items():
        setattr(args, key, list(value) if isinstance(value, list) else value)
    positional = []
    i = 1
    while i < len(argv):
        a = argv[i]
        if a in ('-h', '--help'):
            print(__doc__)
            sys.exit(0)
        if a == '--show-data':
            args.show_data = True
        elif a in VALUED:
            if i + 1 >= len(argv):
                usage(prog, a + ' needs a value')
            try:
                value = VALUED[a](argv[i + 1])
            except ValueError:
                usage(prog, 'bad value for %s: %r' % (a, argv[i + 1]))
            key = a[2:].replace('-', '_')
            if key == 'send':
                args.send.append(value)
            else:
                setattr(args, key, value)
            i += 1
        elif a.startswith('--'):
            usage(prog, 'unknown option ' + a)
        else:
            positional.append(a)
        i += 1
    if len(positional) > 2:
        usage(prog, 'too many arguments')
    if positional:
        args.host = positional[0]
    if len(positional) > 1:
        try:
            args.port = int(positional[1])
        except ValueError:
            usage(prog, 'bad port %r' % positional[1])
    if len(args.label) != 4:
        usage(prog, '--label must be 4 characters')
    if args.send_label is None:
        args.send_label = args.label
    if len(args.send_label) != 4:
        usage(prog, '--send-label must be 4 characters')
    return args
