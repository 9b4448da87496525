/* programs/rooms.h: the chat's room commands (docs/PROTOCOL.md section
 * 6.3), read from a message: pure functions, no sockets.
 *
 * JSON: an object with a "cmd" member is a command:
 *   {"cmd":"join","room":"tavern"}  {"cmd":"leave"}  {"cmd":"who"[,"room":R]}
 * Text: a line beginning with "/": "/join ROOM", "/leave", "/who [ROOM]";
 * "//..." is a chat line, the first "/" dropped. Anything else is chat.
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
    char room[ROOM_NAME_MAX + 1];
    size_t skip;     /* text chat: bytes of the line not relayed (the escape) */
    char why[160];
} room_cmd;

/* 1..64 bytes of A-Z a-z 0-9 . _ - */
int room_name_ok(const char *s, size_t n);

void room_parse_json(const json_t *msg, room_cmd *out);
void room_parse_text(const uint8_t *line, size_t len, room_cmd *out);

#endif
