/* programs/rooms.c: the chat's room commands. See rooms.h. */
#include "rooms.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int room_name_ok(const char *s, size_t n)
{
    if (n == 0 || n > ROOM_NAME_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

static void bad(room_cmd *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void bad(room_cmd *out, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    out->verb = ROOM_BAD;
    vsnprintf(out->why, sizeof out->why, fmt, ap);
    va_end(ap);
}

/* The room argument s[0..n): a name, or a refusal. */
static void take_room(room_cmd *out, const char *s, size_t n, const char *verb)
{
    if (!room_name_ok(s, n)) {
        bad(out, "%s: a room is 1 to 64 of A-Z a-z 0-9 . _ -", verb);
        return;
    }
    memcpy(out->room, s, n);
    out->room[n] = '\0';
}

static room_verb verb_of(const char *s, size_t n)
{
    if (n == 4 && memcmp(s, "join", 4) == 0)
        return ROOM_JOIN;
    if (n == 5 && memcmp(s, "leave", 5) == 0)
        return ROOM_LEAVE;
    if (n == 3 && memcmp(s, "who", 3) == 0)
        return ROOM_WHO;
    return ROOM_BAD;
}

void room_parse_json(const json_t *msg, room_cmd *out)
{
    memset(out, 0, sizeof *out);
    const json_t *cmd = json_is_object(msg) ? json_object_get(msg, "cmd") : NULL;
    if (cmd == NULL)
        return; /* chat */
    if (!json_is_string(cmd)) {
        bad(out, "%s", "\"cmd\" must be a string: join, leave or who");
        return;
    }
    const char *name = json_string_value(cmd);
    out->verb = verb_of(name, json_string_length(cmd));
    if (out->verb == ROOM_BAD) {
        bad(out, "unknown command \"%.40s\": join, leave or who", name);
        return;
    }
    const json_t *room = json_object_get(msg, "room");
    if (out->verb == ROOM_LEAVE && room != NULL) {
        bad(out, "%s", "leave takes no \"room\": it goes back to the lobby");
    } else if (room != NULL && !json_is_string(room)) {
        bad(out, "%s", "\"room\" must be a string");
    } else if (room != NULL) {
        take_room(out, json_string_value(room), json_string_length(room), name);
    } else if (out->verb == ROOM_JOIN) {
        bad(out, "%s", "join needs a \"room\"");
    }
}

void room_parse_text(const uint8_t *line, size_t len, room_cmd *out)
{
    memset(out, 0, sizeof *out);
    const char *s = (const char *)line;
    if (len == 0 || s[0] != '/')
        return;
    if (len >= 2 && s[1] == '/') {
        out->skip = 1; /* "//...": chat, the escape dropped */
        return;
    }
    if (len > 1 && s[len - 1] == '\r')
        len--; /* a CRLF client on a "\n" server: the command, not its "\r" */
    size_t v = 1;
    while (v < len && s[v] != ' ')
        v++;
    out->verb = verb_of(s + 1, v - 1);
    if (out->verb == ROOM_BAD) {
        char name[41];
        size_t n = v - 1 < sizeof name - 1 ? v - 1 : sizeof name - 1;
        for (size_t i = 0; i < n; i++)
            name[i] = s[1 + i] >= 0x20 && s[1 + i] < 0x7f ? s[1 + i] : '?';
        name[n] = '\0';
        bad(out, "unknown command /%s: /join ROOM, /leave, /who [ROOM]; // begins a chat line "
                 "with /",
            name);
        return;
    }
    const char *arg = v < len ? s + v + 1 : NULL;
    size_t alen = v < len ? len - v - 1 : 0;
    if (out->verb == ROOM_LEAVE && alen > 0)
        bad(out, "%s", "/leave takes no room: it goes back to the lobby");
    else if (alen > 0)
        take_room(out, arg, alen, out->verb == ROOM_JOIN ? "/join" : "/who");
    else if (out->verb == ROOM_JOIN)
        bad(out, "%s", "/join needs a room: /join ROOM");
}
