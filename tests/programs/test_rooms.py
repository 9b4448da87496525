#!/usr/bin/env python3
"""The chat's rooms on one gmud-server (PROTOCOL.md 5.1), real processes
over loopback: join and leave announced to the rooms concerned and not in
the lobby, chat confined to the sender's room, who, a bad command's error
packet, a disconnect announced, in JSON and as text lines ("//" escaping
a line that begins with "/"), and a big room's who in pages.

Usage: test_rooms.py <gmud-server> <gmud-client>
"""

import json
import re
import sys
import time

from progtest import STEP, check, run_tests
from test_programs import Server, finish, start_client


class Player:
    def __init__(self, srv, *args):
        self.p = start_client(srv.port, '--wait', '0.3', *args)

    def say(self, line):
        self.p.stdin.write(line + '\n')
        self.p.stdin.flush()

    def cmd(self, obj):
        self.say(json.dumps(obj))

    def next_json(self, pred=lambda o: True, timeout=STEP):
        return self.p.out.next_json(pred, timeout)

    def next_line(self, pattern, timeout=STEP):
        m = self.p.out.wait_for(pattern, timeout)
        return m.string if m else None

    def quiet(self, timeout=0.4):
        """Whatever arrives within timeout (should be nothing)."""
        line = self.p.out.get(timeout)
        return line

    def close(self):
        return finish(self.p)


def who_pages(p, timeout=2):
    """Every page of one who answer: the objects, all but the last with
    "more" (bounded by the timeout)."""
    pages = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        obj = p.next_json(lambda o: o.get('event') == 'who', deadline - time.monotonic())
        if obj is None:
            break
        pages.append(obj)
        if not obj.get('more'):
            break
    return pages


def ready(players):
    """Every player connected: each asks who in the lobby until all are
    there. Each player's last answer (its pages joined), or None."""
    n = len(players)
    answers = []
    for p in players:
        deadline = time.monotonic() + STEP
        got = None
        while time.monotonic() < deadline:
            p.cmd({'cmd': 'who'})
            pages = who_pages(p)
            listed = [x for page in pages for x in page['players']]
            if pages and not pages[-1].get('more') and len(listed) == n:
                got = dict(pages[-1], players=listed)
                break
            time.sleep(0.05)
        answers.append(got)
    return answers


def test_json_rooms():
    srv = Server('--app', 'chat')
    a, b, c = Player(srv), Player(srv), Player(srv)
    w = ready([a, b, c])
    lobby = w[0]
    check(lobby is not None and lobby.get('room') == 'lobby' and len(lobby['players']) == 3
          and 'partial' not in lobby and all(set(x) == {'player'} for x in lobby['players']),
          'who in the lobby lists the three, by id: %r' % lobby)
    ids = [x['player'] for x in (lobby or {}).get('players', [])]
    check(len(ids) == 3 and ids == sorted(ids) and len(set(ids)) == 3,
          'who lists the players by ascending id: %r' % ids)
    # The lobby is silent: a player who comes and goes there is not announced.
    d = Player(srv)
    check(len(ready([a, b, c, d])) == 4, 'a fourth player connects')
    check(d.close() == 0, 'the fourth exits 0')
    check(c.quiet() is None and b.quiet() is None,
          'no one hears an arrival in or a departure from the lobby')
    a.cmd({'cmd': 'join', 'room': 'tavern'})
    me = a.next_json(lambda o: o.get('event') == 'join')
    aid = (me or {}).get('player')
    check(me == {'event': 'join', 'room': 'tavern', 'player': aid} and aid in ids,
          'the mover hears its join: %r' % me)
    check(b.quiet() is None, 'the lobby hears nothing of a departure from the lobby')
    b.cmd({'cmd': 'join', 'room': 'tavern'})
    bj = a.next_json(lambda o: o.get('event') == 'join')
    bid = (bj or {}).get('player')
    check(bj == {'event': 'join', 'room': 'tavern', 'player': bid} and bid in ids
          and bid != aid, 'a hears b join the tavern: %r' % bj)
    bown = b.next_json(lambda o: o.get('event') == 'join')
    check(bown == bj, 'b hears its own join as a does: %r' % bown)
    # Chat stays in its room.
    a.cmd({'say': 'hi tavern', 'from': 999})
    got = b.next_json(lambda o: 'say' in o)
    check(got == {'say': 'hi tavern', 'from': aid}, 'b hears a in the tavern, with from: %r' % got)
    check(c.quiet() is None, 'c in the lobby does not hear the tavern')
    check(a.quiet() is None, 'a does not hear itself')
    c.cmd({'say': 'hi lobby'})
    check(a.quiet() is None and b.quiet() is None, 'the tavern does not hear the lobby')
    b.cmd({'say': 'back'})
    got = a.next_json(lambda o: 'say' in o)
    check(got == {'say': 'back', 'from': bid}, 'a hears b: %r' % got)
    a.cmd({'cmd': 'who'})
    who = a.next_json(lambda o: o.get('event') == 'who')
    check(who == {'event': 'who', 'room': 'tavern',
                  'players': [{'player': i} for i in sorted([aid, bid])]},
          'who in the tavern, by ascending id: %r' % who)
    c.cmd({'cmd': 'who', 'room': 'tavern'})
    who = c.next_json(lambda o: o.get('event') == 'who')
    check(who is not None and who.get('room') == 'tavern' and len(who['players']) == 2,
          'who of another room: %r' % who)
    c.cmd({'cmd': 'who', 'room': 'empty'})
    who = c.next_json(lambda o: o.get('event') == 'who')
    check(who == {'event': 'who', 'room': 'empty', 'players': []}, 'who of no one: %r' % who)
    # Joining the room one is in: a confirmation only.
    a.cmd({'cmd': 'join', 'room': 'tavern'})
    again = a.next_json(lambda o: o.get('event') == 'join')
    check(again == {'event': 'join', 'room': 'tavern', 'player': aid},
          'a re-join is confirmed: %r' % again)
    check(b.quiet() is None, 'and not announced to the others')
    # Bad commands: an error packet, the connection stays.
    for bad, word in (({'cmd': 'dance'}, 'unknown command'), ({'cmd': 'join'}, 'needs'),
                      ({'cmd': 'join', 'room': 'no spaces'}, 'room'),
                      ({'cmd': 'leave', 'room': 'x'}, 'no "room"'), ({'cmd': 7}, 'string')):
        a.cmd(bad)
        err = a.next_json(lambda o: 'error' in o)
        check(err is not None and err.get('code') == 'invalid' and word in err.get('error', ''),
              'bad command %r: error packet %r' % (bad, err))
    # leave: back to the lobby, announced to the tavern.
    b.cmd({'cmd': 'leave'})
    left = a.next_json(lambda o: o.get('event') == 'leave')
    check(left == {'event': 'leave', 'room': 'tavern', 'player': bid},
          'a hears b leave the tavern: %r' % left)
    check(c.quiet() is None, 'the lobby hears nothing of an arrival')
    # A move from one named room to another: a leave to the old, a join to the new.
    b.cmd({'cmd': 'join', 'room': 'cellar'})
    bj = b.next_json(lambda o: o.get('event') == 'join')
    check(bj == {'event': 'join', 'room': 'cellar', 'player': bid}, 'b in the cellar: %r' % bj)
    b.cmd({'cmd': 'join', 'room': 'tavern'})
    left = b.next_json(lambda o: o.get('event') in ('join', 'leave'))
    check(left == {'event': 'join', 'room': 'tavern', 'player': bid},
          'b, alone in the cellar, hears no one leave it, only its join: %r' % left)
    got = a.next_json(lambda o: o.get('event') == 'join')
    check(got == {'event': 'join', 'room': 'tavern', 'player': bid}, 'a hears b back: %r' % got)
    # A disconnect in a named room is announced.
    check(b.close() in (0, 1), 'b exits')
    gone = a.next_json(lambda o: o.get('event') == 'leave')
    check(gone == {'event': 'leave', 'room': 'tavern', 'player': bid},
          'a hears b disconnect from the tavern: %r' % gone)
    check(a.close() == 1, 'a exits 1: it had error packets')
    check(c.close() == 0, 'c exits 0')
    check(srv.stop() == 0, 'server exits 0')


def test_text_rooms():
    args = ('--payload', 'text', '--framing', 'line')
    srv = Server('--app', 'chat', *args)
    a, b, c = Player(srv, *args), Player(srv, *args), Player(srv, *args)
    deadline = time.monotonic() + STEP
    line = None
    while line is None and time.monotonic() < deadline:
        a.say('/who')
        line = a.next_line(r'^\* who lobby \d+ \d+ \d+$', timeout=0.5)
    check(line is not None, 'text who in the lobby lists three: %r' % a.p.out.all)
    ids = [int(x) for x in line.split()[3:]] if line else []
    check(ids == sorted(ids), 'text who by ascending id: %r' % line)
    a.say('/join tavern')
    me = a.next_line(r'^\* join tavern (\d+)$')
    check(me is not None and int(me.split()[-1]) in ids, 'text join confirmed: %r' % a.p.out.all)
    aid = me.split()[-1] if me else '0'
    check(b.quiet() is None, 'text: the lobby hears nothing of a departure')
    b.say('/join tavern')
    bj = a.next_line(r'^\* join tavern (\d+)$')
    bid = bj.split()[-1] if bj else '0'
    check(bj is not None and bid != aid and int(bid) in ids, 'a hears b join: %r' % bj)
    check(b.next_line(r'^\* join ') == bj, 'b hears its own join as a does')
    a.say('plain words')
    got = b.next_line(r'^\d+: ')
    check(got == '%s: plain words' % aid, 'text chat in the tavern, marked: %r' % got)
    check(c.quiet() is None, 'text: the lobby does not hear the tavern')
    c.say('lobby words')
    check(a.quiet() is None and b.quiet() is None, 'text: the tavern does not hear the lobby')
    a.say('//slash at the start')
    got = b.next_line(r'^\d+: ')
    check(got == '%s: /slash at the start' % aid, 'the // escape: %r' % got)
    a.say('///two')
    got = b.next_line(r'^\d+: ')
    check(got == '%s: //two' % aid, 'the // escape drops one slash only: %r' % got)
    for bad, start in (('/wave', 'error invalid: unknown command /wave'),
                       ('/join', 'error invalid: /join needs a room'),
                       ('/join no way', 'error invalid: /join: a room is'),
                       ('/leave now', 'error invalid: /leave takes no room')):
        a.say(bad)
        err = a.next_line(r'^error ')
        check(err is not None and err.startswith(start), 'text bad command %r: %r' % (bad, err))
    check(b.quiet() is None, 'text: a bad command reaches no one else')
    c.say('/who tavern')
    who = c.next_line(r'^\* who ')
    check(who == '* who tavern %s' % ' '.join(sorted([aid, bid], key=int)),
          'text who of another room: %r' % who)
    b.say('/leave')
    left = a.next_line(r'^\* leave ')
    check(left == '* leave tavern %s' % bid, 'text leave: %r' % left)
    check(c.quiet() is None, 'text: the lobby hears nothing of an arrival')
    a.say('/who')
    who = a.next_line(r'^\* who tavern')
    check(who == '* who tavern %s' % aid, 'text who after the leave: %r' % who)
    c.say('/join tavern')
    check(a.next_line(r'^\* join ') is not None, 'c joins a in the tavern')
    check(finish(c.p) == 0, 'c exits 0')
    gone = a.next_line(r'^\* leave ')
    check(gone is not None and re.match(r'^\* leave tavern \d+$', gone)
          and gone.split()[-1] not in (aid, bid), 'text: a disconnect announced: %r' % gone)
    check(a.close() == 1, 'a exits 1: it had error packets')
    check(b.close() == 0, 'b exits 0')
    check(srv.stop() == 0, 'server exits 0')


def test_who_pages():
    """A room bigger than one message's worth of who: several messages, all
    but the last with "more"."""
    srv = Server('--app', 'chat', '--max-message', '512')
    players = [Player(srv, '--max-message', '512') for _ in range(12)]
    ready(players)
    players[0].cmd({'cmd': 'who'})
    pages = who_pages(players[0], timeout=STEP)
    total = sum(len(p['players']) for p in pages)
    listed = [x['player'] for p in pages for x in p['players']]
    check(len(pages) >= 2 and total == 12 and all(p.get('more') for p in pages[:-1])
          and not pages[-1].get('more') and listed == sorted(set(listed)),
          'who in %d pages, %d players, by ascending id: %r' % (len(pages), total, pages))
    for p in players:
        p.close()
    check(srv.stop() == 0, 'server exits 0')


if __name__ == '__main__':
    sys.exit(run_tests([test_json_rooms, test_text_rooms, test_who_pages]))
