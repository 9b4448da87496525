/* gmud/gmud.h: everything gmud offers, in one include. */
#ifndef GMUD_GMUD_H
#define GMUD_GMUD_H

#include "gmud/client.h"
#include "gmud/cluster.h"
#include "gmud/error.h"
#include "gmud/frame.h"
#include "gmud/iplimit.h"
#include "gmud/json.h"
#include "gmud/limits.h"
#include "gmud/log.h"
#include "gmud/metrics.h"
#include "gmud/server.h"
#include "gmud/sync.h"
#include "gmud/tls.h"
#include "gmud/version.h"

#endif
