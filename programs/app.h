/* programs/app.h: the applications gmud-server runs (clock, echo, chat), as
 * pure functions: text in, text out. No sockets, no clock reads, no output;
 * the programs pass the time in and send what comes back.
 *
 * Threads: everything here is reentrant.
 */
#ifndef GMUD_PROGRAMS_APP_H
#define GMUD_PROGRAMS_APP_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

typedef enum app_kind { APP_ECHO, APP_CLOCK, APP_CHAT } app_kind;

/* "echo", "clock", "chat". */
const char *app_kind_name(app_kind kind);

/* Parses an application name; 0, or -1 if unknown. */
int app_kind_parse(const char *name, app_kind *out);

/* Bytes app_ctime() writes, NUL included, for years 0..9999:
 * "Sat Mar 30 11:40:50 2019". */
enum { APP_CTIME_SIZE = 25 };

/* Formats t in local time exactly as Python's time.ctime(t) does (C's
 * asctime layout: the day of month space-padded to 2, no newline, English
 * names whatever the locale). Returns the length written (no NUL), or -1 if
 * t cannot be converted or does not fit cap. */
int app_ctime(time_t t, char *out, size_t cap);

/* The lecture's clock message n at time t, as text: "n:<ctime>". Returns the
 * length written (NUL not counted) or -1 if cap is too small. */
int app_clock_text(unsigned long long n, time_t t, char *out, size_t cap);

/* The same message as the lecture's JSON object, byte for byte what Python's
 * json.dumps prints: {"time": "<ctime>", "message": "n:<ctime>", "value": n}.
 * Returns the length written (NUL not counted) or -1 if cap is too small. */
int app_clock_json(unsigned long long n, time_t t, char *out, size_t cap);

/* Room for either clock message, NUL included. */
enum { APP_CLOCK_MAX = 128 };

/* chat: the object to relay for a json message msg from sender id from: a
 * shallow copy of msg with "from": from set (replacing any "from" the sender
 * put there itself, so no one can speak for another). New reference, NULL on
 * no memory; msg is not modified. */
json_t *app_chat_tag(const json_t *msg, uint64_t from);

/* The longest mark app_chat_mark() puts before a line: "18446744073709551615: ". */
enum { APP_CHAT_MARK_MAX = 22 };

/* The length of from's mark, "<from>: ". */
size_t app_chat_mark_len(uint64_t from);

/* chat: the line to relay for a text message line[0..len) from sender id
 * from: the mark "<from>: " (the id in decimal, a colon, a space: the
 * "from" of a json relay), then the line's bytes exactly as they came,
 * whatever they are (empty, "error ...", a delimiter, a NUL). A relayed
 * line begins with a digit, so it never reads as the server's error packet
 * ("error <code>: ..." or "{"error"..."). Writes no NUL. Returns the length
 * written, or -1, with nothing written, if the marked line is longer than
 * max (the longest message the connections take) or than cap: a line is
 * never cut to fit, and one that does not fit is not relayed. */
ptrdiff_t app_chat_mark(uint64_t from, const void *line, size_t len, size_t max, char *out,
                        size_t cap);

/* The chat's own error packets (PROTOCOL.md 5), in at most max and cap
 * bytes: as text "error <code>: <sentence>", as JSON (compact)
 * {"error":"<sentence>","code":"<code>"}. The sentence is made printable
 * (bytes outside 0x20..0x7e become '?') and cut to fit, as the library cuts
 * its own: the code, a name from error.h (nothing to escape), is what
 * counts. Writes no NUL. Return the length written, or -1 if not even the
 * packet with an empty sentence fits. */
ptrdiff_t app_error_text(const char *code, const char *sentence, size_t max, char *out,
                         size_t cap);
ptrdiff_t app_error_json(const char *code, const char *sentence, size_t max, char *out,
                         size_t cap);

#endif
