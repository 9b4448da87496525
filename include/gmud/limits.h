/* gmud/limits.h: every limit gmud enforces, with its unit and default.
 *
 * Each default is bounded: no limit means "unlimited". A configuration that
 * sets a limit to 0 is refused by the code that takes it, so a zeroed struct
 * can never switch a limit off by accident.
 */
#ifndef GMUD_LIMITS_H
#define GMUD_LIMITS_H

enum {
    /* Largest payload any framing carries (bytes). length/gmud frames hold a
     * 16-bit unsigned length, so 65535 is also their hard ceiling. */
    GMUD_MAX_MESSAGE_DEFAULT = 65535,
    GMUD_MAX_MESSAGE_16BIT = 65535,

    /* Hard ceiling for max_message on framings without a length field
     * (raw, line, fixed): 16 MiB. Keeps one connection's buffer bounded even
     * if a caller asks for more. */
    GMUD_MAX_MESSAGE_CEILING = 16 * 1024 * 1024,

    /* fixed:N packet size (bytes), the lecture's 100. */
    GMUD_FIXED_SIZE_DEFAULT = 100,

    /* line framing delimiter length (bytes), at most. Default is "\n". */
    GMUD_DELIM_MAX = 8,

    /* gmud framing label length (bytes); the default label is "GMUD". */
    GMUD_LABEL_SIZE = 4,

    /* Untrusted JSON: nesting depth of arrays/objects (levels). */
    GMUD_JSON_MAX_DEPTH_DEFAULT = 32,

    /* Untrusted JSON: object keys in one document, all levels together. */
    GMUD_JSON_MAX_KEYS_DEFAULT = 1024,

    /* Untrusted JSON: one string or key, as encoded bytes between quotes. */
    GMUD_JSON_MAX_STRING_DEFAULT = 16384
};

#endif
