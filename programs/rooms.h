/* programs/rooms.h: the chat's room commands (docs/PROTOCOL.md 5.1),
 * read from a message: pure functions, no sockets.
 *
 * JSON: an object with a "cmd" member is a command:
 *   {"cmd":"join","room":"tavern"}  {"cmd":"leave"}  {"cmd":"who"[,"room":R]}
 * Text: a line beginning with "/": "/join ROOM", "/leave", "/who [ROOM]";
 * "//..." is a chat line, the first "/" dropped. Anything else is chat.
 * A text command may end in "\r" (a client sending CRLF lines to a server
 * on "\n"): it is dropped. A chat line is never changed but for the escape.
 *
 * Threads: everything here is reentrant.
 */
#ifndef GMUD_PROGRAMS_ROOMS_H
#define GMUD_PROGRAMS_ROOMS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define ROOM_LOBBY "lobby" /* where every player starts; arrivals there are not announced */

enum { ROOM_NAME_MAX = 64 };

typedef enum room_verb {
    ROOM_CHAT,  /* not a command: relay it (text: from byte skip on) */
    ROOM_JOIN,
    ROOM_LEAVE,
    ROOM_WHO,   /* room "" : the sender's own */
    ROOM_BAD    /* a command that is wrong: why says how */
} room_verb;

typedef struct room_cmd {
    room_verb verb;
    char room[ROOM_NAME_MAX + 1]; /* JOIN, and WHO with a room: the name; else "" */
    size_t skip;     /* text chat: bytes of the line not relayed (the escape) */
    char why[160];   /* BAD: a sentence for the error packet, printable ASCII */
} room_cmd;

/* Is s[0..n) a room name: 1..64 bytes of A-Z a-z 0-9 . _ - ? (The same
 * rule as gmud_cluster_name_ok(), on a counted string: a text line's
 * argument is not NUL-terminated.) */
int room_name_ok(const char *s, size_t n);

/* Reads a JSON message (borrowed): a command if it is an object with a
 * "cmd" member, else ROOM_CHAT. Members other than "cmd" and "room" are
 * ignored. */
void room_parse_json(const json_t *msg, room_cmd *out);

/* Reads a text message line[0..len), which may hold any bytes. */
void room_parse_text(const uint8_t *line, size_t len, room_cmd *out);

#endif
