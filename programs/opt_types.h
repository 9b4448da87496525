/* programs/opt_types.h: internal to the option parser (options.c): an
 * option's spec, and the types of value it can take, each with all its
 * handlers (opt_types.c): how a value is taken and checked, and how its
 * default reads in --help. A new type is one more opt_type there. */
#ifndef GMUD_PROG_OPT_TYPES_H
#define GMUD_PROG_OPT_TYPES_H

#include <stddef.h>

#include "options.h"

/* Framing settings are gathered and applied together at the end
 * (prog_framing_apply), whatever their order on the command line. */
typedef prog_framing_args pending;

typedef struct opt_spec opt_spec;

/* Taking one value: the options filled in, the framing settings gathered,
 * the option and its value, and why the value was refused. */
typedef struct opt_take {
    prog_options *o;
    pending p;
    const opt_spec *s;
    const char *val;
    char why[200];
} opt_take;

/* Showing one option's default in --help: the defaults, the option, the
 * text. */
typedef struct opt_show {
    const prog_options *d;
    const opt_spec *s;
    char text[64];
} opt_show;

/* A whole-number type (take_whole, show_whole): the values taken, whether
 * with k and m suffixes (KiB, MiB), the field's size, what a refusal says
 * after the value, and what a default of 0 reads as (NULL: "0"). */
typedef struct opt_whole {
    unsigned long long least, most;
    int suffix;
    size_t size;
    const char *why;
    const char *zero;
} opt_whole;

/* A type of value: take stores t->val (0) or refuses it (-1, with t->why
 * saying what is wrong); show writes the default, as text. Everything about
 * a type is in its functions, and a new type is one more opt_type. */
typedef struct opt_type {
    int (*take)(opt_take *t);
    void (*show)(opt_show *w);
    int flag;              /* takes no value */
    const opt_whole *whole; /* the whole-number types' */
} opt_type;

struct opt_spec {
    const char *name;
    unsigned who;         /* PROG_SERVER | PROG_CLIENT */
    const opt_type *type;
    size_t off;           /* the field in prog_options (for the framing
                             types: in prog_framing_args) */
    const char *metavar;
    const char *help;
};

/* An unsigned decimal with an optional k or m suffix (KiB, MiB) if allowed.
 * 0 on success, -1 if not a number or out of range. */
int parse_ull(const char *text, int suffix, unsigned long long max, unsigned long long *out);

/* The types. */
extern const opt_type t_help, t_host, t_port, t_framing, t_label, t_delim, t_max_message,
    t_payload, t_rate_policy, t_log_level, t_app, t_session, t_reply_data, t_flag, t_size,
    t_size_off, t_uint, t_count, t_u32, t_prefix6, t_ms, t_ms_off, t_ms_pos, t_text, t_listen, t_log_format,
    t_metrics;

#endif
