/* Internal: servers, clients and blocking clients whose connections run
 * through a transport seam (src/core/seam.h). The public create functions
 * are these with no seam; TLS (issue 11) will choose its seam from the
 * config, and tests use these directly with a seam of their own. */
#ifndef GMUD_RT_SEAMED_H
#define GMUD_RT_SEAMED_H

#include "seam.h"
#include "gmud/client.h"
#include "gmud/server.h"
#include "gmud/sync.h"

/* seams may be NULL (plain TCP); *seams is copied. */
gmud_server *server_create_seamed(uv_loop_t *loop, const gmud_server_config *cfg,
                                  const seam_factory *seams, gmud_error *err);
gmud_client *client_create_seamed(uv_loop_t *loop, const gmud_client_config *cfg,
                                  const seam_factory *seams, gmud_error *err);
gmud_sync *sync_create_seamed(const char *host, unsigned port, const gmud_sync_config *cfg,
                              int timeout_ms, const seam_factory *seams, gmud_error *err);

#endif
