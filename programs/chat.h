/* programs/chat.h: gmud-server's chat app: rooms, relays marked with their
 * sender, join and leave announcements and who (docs/PROTOCOL.md 5.1,
 * and 5.2 for --cluster), on one server or, with a gmud_cluster, across
 * nodes.
 *
 * The server's callbacks call chat_connect, chat_message and chat_close;
 * the cluster's call chat_remote and chat_presence. Each player's room is
 * its connection's data (gmud_conn_set_data): chat_close frees it.
 */
#ifndef GMUD_PROGRAMS_CHAT_H
#define GMUD_PROGRAMS_CHAT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "gmud/cluster.h"
#include "gmud/server.h"
#include "options.h"

typedef struct chat chat;

/* cluster NULL: one server. NULL on no memory. */
chat *chat_create(gmud_server *server, const prog_options *o, gmud_cluster *cluster);
void chat_destroy(chat *c);

/* The cluster went away (shutdown): no more publishing. */
void chat_detach_cluster(chat *c);

void chat_connect(chat *c, gmud_conn *conn);
void chat_message(chat *c, gmud_conn *conn, const uint8_t *data, size_t len, json_t *json);
void chat_close(chat *c, gmud_conn *conn);

void chat_remote(chat *c, const gmud_cluster_msg *msg);
void chat_presence(chat *c, const gmud_cluster_player *p, int joined);

#endif
