/* programs/chat.c: the chat app and its rooms. See chat.h.
 *
 * A relay is made once (the JSON with "from" serialised, or the marked
 * line) and the same bytes go to every member of the room; with a cluster
 * the message as it came is published too, and what other nodes publish
 * is made into the same relay for this node's members.
 */
#include "chat.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "rooms.h"
#include "roomset.h"

enum {
    CHAT_WHY = 240,        /* the longest refusal sentence, NUL included */
    CHAT_BUF = 65536 + 256 /* one relay: the longest message and its mark */
};

typedef struct chat_player {
    rset_member in; /* its room; in.owner is the gmud_conn */
} chat_player;

struct chat {
    gmud_server *server;
    const prog_options *o;
    gmud_cluster *cluster;
    const char *node;  /* the cluster's node name; NULL without one */
    rset *rooms;       /* this server's players, by room */
    int json;
    uint8_t buf[CHAT_BUF];
};

chat *chat_create(gmud_server *server, const prog_options *o, gmud_cluster *cluster)
{
    chat *c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    if ((c->rooms = rset_create()) == NULL) {
        free(c);
        return NULL;
    }
    c->server = server;
    c->o = o;
    c->cluster = cluster;
    c->node = cluster != NULL ? gmud_cluster_node(cluster) : NULL;
    c->json = o->conn.payload == GMUD_PAYLOAD_JSON;
    return c;
}

void chat_destroy(chat *c)
{
    if (c != NULL)
        rset_destroy(c->rooms);
    free(c);
}

void chat_detach_cluster(chat *c)
{
    if (c != NULL)
        c->cluster = NULL; /* the node name stays: it is in every relay still sent */
}

static chat_player *player_of(const gmud_conn *conn)
{
    return gmud_conn_data(conn);
}

/* ---- Sending to a room ------------------------------------------------ */

typedef struct room_send {
    const char *room;
    const gmud_conn *except;
    const void *data;
    size_t len;
    int sent;
    int rc;
    gmud_error err;
} room_send;

static void send_one(void *owner, void *user)
{
    room_send *s = user;
    gmud_conn *conn = owner;
    if (s->rc == GMUD_ERR_UNENCODABLE || conn == s->except)
        return;
    gmud_error err;
    int rc = gmud_conn_send(conn, s->data, s->len, &err);
    if (rc == 0) {
        s->sent++;
    } else if (rc == GMUD_ERR_CLOSED) {
        /* closing: it leaves the room at its on_close */
    } else if (s->rc == 0 || rc == GMUD_ERR_UNENCODABLE) {
        s->rc = rc; /* the framing's refusal is the same for every member */
        s->err = err;
    }
}

/* data to everyone in room but except; how many, or a negative code with
 * err (GMUD_ERR_UNENCODABLE: no one got it). */
static int to_room(chat *c, const char *room, const gmud_conn *except, const void *data,
                   size_t len, gmud_error *err)
{
    room_send s = {room, except, data, len, 0, 0, {0}};
    rset_each(c->rooms, room, send_one, &s);
    if (s.rc == GMUD_ERR_UNENCODABLE || (s.rc < 0 && s.sent == 0)) {
        *err = s.err;
        return s.rc;
    }
    return s.sent;
}

static int to_room_json(chat *c, const char *room, const gmud_conn *except, const json_t *v,
                        gmud_error *err)
{
    ptrdiff_t n = gmud_json_dump(v, c->buf, sizeof c->buf, err);
    return n < 0 ? (int)n : to_room(c, room, except, c->buf, (size_t)n, err);
}

static void to_one_json(chat *c, gmud_conn *conn, const json_t *v)
{
    gmud_error err;
    if (gmud_conn_send_json(conn, v, &err) != 0)
        prog_logf(c->o, GMUD_LOG_WARN, gmud_conn_peer(conn), "chat", "not sent: %s",
                  err.message);
}

static void to_one_text(chat *c, gmud_conn *conn, const char *line)
{
    gmud_error err;
    if (gmud_conn_send(conn, line, strlen(line), &err) != 0)
        prog_logf(c->o, GMUD_LOG_WARN, gmud_conn_peer(conn), "chat", "not sent: %s",
                  err.message);
}

/* ---- Refusals ----------------------------------------------------------- */

/* Tells a sender what went wrong, with an error packet in its payload type
 * shaped as the library's own (PROTOCOL.md 5): nothing refused unsaid. */
static void refuse(chat *c, gmud_conn *from, int code, const char *why)
{
    const char *name = gmud_err_name(code);
    gmud_error err = {0};
    char pkt[2 * CHAT_WHY + 64];
    size_t max = gmud_conn_max_payload(from);
    ptrdiff_t n = c->json ? app_error_json(name, why, max, pkt, sizeof pkt)
                          : app_error_text(name, why, max, pkt, sizeof pkt);
    int rc = n < 0 ? gmud_error_set(&err, GMUD_ERR_UNENCODABLE, 0,
                                    "no error packet fits a %zu-byte message", max)
                   : gmud_conn_send(from, pkt, (size_t)n, &err);
    if (rc < 0)
        prog_logf(c->o, GMUD_LOG_WARN, gmud_conn_peer(from), "chat",
                  "%s; the sender was not told: %s", why, err.message);
    else
        prog_logf(c->o, GMUD_LOG_INFO, gmud_conn_peer(from), "chat", "%s", why);
}

/* ---- Announcements ------------------------------------------------------ */

/* {"event":E,"room":R,"player":ID[,"node":N]} or "* E R ID[@N]". */
static void announce(chat *c, const char *event, const char *room, uint64_t player,
                     const char *node, const gmud_conn *except, gmud_conn *only)
{
    gmud_error err;
    if (c->json) {
        json_t *v = json_pack("{s:s,s:s,s:I}", "event", event, "room", room, "player",
                              (json_int_t)player);
        if (v != NULL && node != NULL)
            json_object_set_new(v, "node", json_string(node));
        if (v != NULL && only != NULL)
            to_one_json(c, only, v);
        else if (v != NULL)
            to_room_json(c, room, except, v, &err);
        json_decref(v);
        return;
    }
    char line[160];
    snprintf(line, sizeof line, "* %s %s %" PRIu64 "%s%s", event, room, player,
             node != NULL ? "@" : "", node != NULL ? node : "");
    if (only != NULL)
        to_one_text(c, only, line);
    else
        to_room(c, room, except, line, strlen(line), &err);
}

static int silent(const char *room)
{
    return strcmp(room, ROOM_LOBBY) == 0;
}

/* conn goes from its room to room (NULL: it is leaving). */
static void move(chat *c, gmud_conn *conn, const char *room)
{
    chat_player *p = player_of(conn);
    uint64_t id = gmud_conn_id(conn);
    if (p == NULL)
        return;
    if (room != NULL && strcmp(rset_name(&p->in), room) == 0) {
        if (!silent(room))
            announce(c, "join", room, id, c->node, NULL, conn); /* a confirmation */
        return;
    }
    char old[ROOM_NAME_MAX + 1];
    snprintf(old, sizeof old, "%s", rset_name(&p->in));
    if (rset_move(c->rooms, &p->in, room) != 0) {
        refuse(c, conn, GMUD_ERR_NOMEM, "out of memory for a new room: you stay where you are");
        return;
    }
    if (!silent(old))
        announce(c, "leave", old, id, c->node, conn, NULL);
    if (room != NULL && !silent(room))
        announce(c, "join", room, id, c->node, NULL, NULL);
    gmud_error err;
    if (c->cluster != NULL && gmud_cluster_set_room(c->cluster, id, room, &err) != 0)
        prog_logf(c->o, GMUD_LOG_WARN, gmud_conn_peer(conn), "cluster", "presence: %s",
                  err.message);
}

void chat_connect(chat *c, gmud_conn *conn)
{
    chat_player *p = calloc(1, sizeof *p);
    if (p == NULL) {
        prog_logf(c->o, GMUD_LOG_ERROR, gmud_conn_peer(conn), "chat", "out of memory");
        gmud_conn_close(conn);
        return;
    }
    p->in.owner = conn;
    if (rset_move(c->rooms, &p->in, ROOM_LOBBY) != 0) {
        prog_logf(c->o, GMUD_LOG_ERROR, gmud_conn_peer(conn), "chat", "out of memory");
        free(p);
        gmud_conn_close(conn);
        return;
    }
    gmud_conn_set_data(conn, p);
    gmud_error err;
    if (c->cluster != NULL && gmud_cluster_set_room(c->cluster, gmud_conn_id(conn), ROOM_LOBBY,
                                                    &err) != 0)
        prog_logf(c->o, GMUD_LOG_WARN, gmud_conn_peer(conn), "cluster", "presence: %s",
                  err.message);
}

void chat_close(chat *c, gmud_conn *conn)
{
    if (player_of(conn) == NULL)
        return;
    move(c, conn, NULL);
    free(player_of(conn));
    gmud_conn_set_data(conn, NULL);
}

/* ---- who ---------------------------------------------------------------- */

/* A page of players for one message: each entry takes at most about 110
 * bytes ({"player":<20 digits>,"node":"<64>"},), so a page of (max - 160)
 * / 112 always fits, and a big room is answered in several messages, all
 * but the last with "more": true (text: a trailing " +"). */
typedef struct who_page {
    chat *c;
    gmud_conn *to;
    const char *room;
    size_t per_page, in_page;
    int partial;
    json_t *players;  /* JSON */
    char line[8192];  /* text */
    size_t used;
} who_page;

static void who_flush(who_page *w, int more)
{
    chat *c = w->c;
    if (c->json) {
        json_t *v = json_pack("{s:s,s:s,s:O}", "event", "who", "room", w->room, "players",
                              w->players);
        if (v != NULL && more)
            json_object_set_new(v, "more", json_true());
        if (v != NULL && w->partial)
            json_object_set_new(v, "partial", json_true());
        if (v != NULL)
            to_one_json(c, w->to, v);
        json_decref(v);
        json_array_clear(w->players);
    } else {
        snprintf(w->line + w->used, sizeof w->line - w->used, "%s%s", more ? " +" : "",
                 w->partial && !more ? " (partial)" : "");
        to_one_text(c, w->to, w->line);
        w->used = (size_t)snprintf(w->line, sizeof w->line, "* who %s", w->room);
    }
    w->in_page = 0;
}

static void who_add(who_page *w, uint64_t player, const char *node)
{
    if (w->in_page == w->per_page)
        who_flush(w, 1);
    if (w->c->json) {
        json_t *e = json_pack("{s:I}", "player", (json_int_t)player);
        if (e != NULL && node != NULL)
            json_object_set_new(e, "node", json_string(node));
        json_array_append_new(w->players, e);
    } else {
        int n = snprintf(w->line + w->used, sizeof w->line - w->used, " %" PRIu64 "%s%s",
                         player, node != NULL ? "@" : "", node != NULL ? node : "");
        w->used += n > 0 ? (size_t)n : 0;
    }
    w->in_page++;
}

/* This server's members of a room, gathered to be listed by ascending id. */
typedef struct who_ids {
    uint64_t *id;
    size_t n;
} who_ids;

static void who_local(void *owner, void *user)
{
    who_ids *w = user;
    w->id[w->n++] = gmud_conn_id(owner);
}

static int id_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* A query, not the relay path: one allocation is allowed here. */
static int who_here(chat *c, who_page *w)
{
    size_t n = rset_size(c->rooms, w->room);
    who_ids ids = {malloc((n > 0 ? n : 1) * sizeof *ids.id), 0};
    if (ids.id == NULL)
        return -1;
    rset_each(c->rooms, w->room, who_local, &ids);
    if (ids.n > 1)
        qsort(ids.id, ids.n, sizeof *ids.id, id_cmp);
    for (size_t i = 0; i < ids.n; i++)
        who_add(w, ids.id[i], NULL);
    free(ids.id);
    return 0;
}

static void who_cluster(const gmud_cluster_player *p, void *user)
{
    who_add(user, p->player, p->node);
}

static void who(chat *c, gmud_conn *conn, const char *room)
{
    size_t max = gmud_conn_max_payload(conn);
    who_page w = {c, conn, room, 1, 0, 0, NULL, "", 0};
    w.per_page = max > 160 + 112 ? (max - 160) / 112 : 1;
    if (!c->json && w.per_page > (sizeof w.line - 200) / 90)
        w.per_page = (sizeof w.line - 200) / 90;
    w.players = json_array();
    w.used = (size_t)snprintf(w.line, sizeof w.line, "* who %s", room);
    if (c->cluster != NULL) {
        gmud_cluster_who(c->cluster, room, who_cluster, &w, &w.partial);
    } else if (w.players == NULL || who_here(c, &w) != 0) {
        refuse(c, conn, GMUD_ERR_NOMEM, "out of memory: who cannot be answered now");
        json_decref(w.players);
        return;
    }
    who_flush(&w, 0);
    json_decref(w.players);
}

/* ---- Chat --------------------------------------------------------------- */

/* The relay of a JSON message: the object with "from" (and "node"). */
static json_t *tag(const json_t *msg, uint64_t from, const char *node)
{
    json_t *v = app_chat_tag(msg, from);
    if (v != NULL && node != NULL && json_object_set_new(v, "node", json_string(node)) != 0) {
        json_decref(v);
        return NULL;
    }
    return v;
}

/* The relay of a text line: "<from>: " or "<from>@<node>: ", then the line. */
static ptrdiff_t mark(chat *c, uint64_t from, const char *node, const uint8_t *line, size_t len,
                      size_t max)
{
    int n = node != NULL ? snprintf((char *)c->buf, sizeof c->buf, "%" PRIu64 "@%s: ", from, node)
                         : snprintf((char *)c->buf, sizeof c->buf, "%" PRIu64 ": ", from);
    if (n < 0 || (size_t)n + len > max || (size_t)n + len > sizeof c->buf)
        return -1;
    if (len > 0)
        memcpy(c->buf + n, line, len);
    return (ptrdiff_t)((size_t)n + len);
}

static int relay(chat *c, const char *room, const gmud_conn *except, uint64_t from,
                 const char *node, const uint8_t *data, size_t len, const json_t *json,
                 size_t max, gmud_error *err)
{
    if (json != NULL) {
        json_t *v = tag(json, from, node);
        if (v == NULL)
            return gmud_error_set(err, GMUD_ERR_NOMEM, 0, "out of memory");
        int rc = to_room_json(c, room, except, v, err);
        json_decref(v);
        return rc;
    }
    ptrdiff_t n = mark(c, from, node, data, len, max);
    if (n < 0)
        return gmud_error_set(err, GMUD_ERR_UNENCODABLE, 0,
                              "%zu bytes with the mark, over the maximum message of %zu", len,
                              max);
    return to_room(c, room, except, c->buf, (size_t)n, err);
}

static void say(chat *c, gmud_conn *from, const uint8_t *data, size_t len, json_t *json)
{
    const chat_player *p = player_of(from);
    uint64_t id = gmud_conn_id(from);
    gmud_error err = {0};
    int rc = relay(c, rset_name(&p->in), from, id, c->node, data, len, json, gmud_conn_max_payload(from),
                   &err);
    if (rc == GMUD_ERR_UNENCODABLE) {
        char why[CHAT_WHY];
        if (json != NULL)
            snprintf(why, sizeof why, "not relayed with \"from\": %s", err.message);
        else
            snprintf(why, sizeof why, "not relayed with its mark \"%" PRIu64 "%s%s: \": %s", id,
                     c->node != NULL ? "@" : "", c->node != NULL ? c->node : "", err.message);
        refuse(c, from, GMUD_ERR_UNENCODABLE, why);
        return; /* nor to the other nodes: all or nothing */
    }
    if (rc < 0)
        prog_logf(c->o, GMUD_LOG_WARN, gmud_conn_peer(from), "chat", "not relayed: %s",
                  err.message);
    if (c->cluster != NULL &&
        gmud_cluster_publish(c->cluster, rset_name(&p->in), id, data, len, json != NULL, &err) != 0)
        prog_logf(c->o, GMUD_LOG_DEBUG, gmud_conn_peer(from), "cluster",
                  "not sent to the other nodes: %s", err.message);
}

static void command(chat *c, gmud_conn *conn, const room_cmd *cmd)
{
    const chat_player *p = player_of(conn);
    switch (cmd->verb) {
    case ROOM_JOIN:
        move(c, conn, cmd->room);
        break;
    case ROOM_LEAVE:
        move(c, conn, ROOM_LOBBY);
        break;
    case ROOM_WHO:
        who(c, conn, cmd->room[0] != '\0' ? cmd->room : rset_name(&p->in));
        break;
    case ROOM_BAD:
        refuse(c, conn, GMUD_ERR_INVALID, cmd->why);
        break;
    case ROOM_CHAT:
        break;
    }
}

void chat_message(chat *c, gmud_conn *conn, const uint8_t *data, size_t len, json_t *json)
{
    if (player_of(conn) == NULL)
        return;
    room_cmd cmd;
    if (json != NULL)
        room_parse_json(json, &cmd);
    else
        room_parse_text(data, len, &cmd);
    if (cmd.verb != ROOM_CHAT)
        command(c, conn, &cmd);
    else
        say(c, conn, data + cmd.skip, len - cmd.skip, json);
}

/* ---- From the other nodes ---------------------------------------------- */

void chat_remote(chat *c, const gmud_cluster_msg *msg)
{
    if (msg->json != c->json) {
        prog_logf(c->o, GMUD_LOG_WARN, NULL, "cluster",
                  "a %s message from %s, and this node's payload is %s: not relayed",
                  msg->json ? "JSON" : "text", msg->node, c->json ? "JSON" : "text");
        return;
    }
    gmud_error err;
    size_t max = c->o->conn.frame.framing == GMUD_FRAMING_FIXED ? c->o->conn.frame.fixed_size
                                                                  : c->o->conn.frame.max_message;
    int rc = relay(c, msg->room, NULL, msg->player, msg->node, msg->data, msg->len, msg->value,
                   max, &err);
    if (rc < 0)
        prog_logf(c->o, GMUD_LOG_WARN, NULL, "cluster", "a message from %s not relayed: %s",
                  msg->node, err.message);
}

void chat_presence(chat *c, const gmud_cluster_player *p, int joined)
{
    if (!silent(p->room))
        announce(c, joined ? "join" : "leave", p->room, p->player, p->node, NULL, NULL);
}
