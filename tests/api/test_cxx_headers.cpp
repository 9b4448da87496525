// The public headers, compiled as C++ and linked against the shared
// library: game code is mostly C++, and a header without extern "C" compiles
// and then fails to link. It calls at least one function of each header.
// (tests/CMakeLists.txt also compiles each header alone as C++, so that a
// header which needs another included first is caught.)
#include "gmud/gmud.h"
#include "gmud/export.h"
#include "gmud/ratelimit.h"
#include "gmud/session.h"
#include "gmud/version.h"

#include <csignal>
#include <cstdio>
#include <cstring>
#include <string>

static int failures = 0;

static void expect(bool ok, const char *what)
{
    if (!ok) {
        std::fprintf(stderr, "FAIL: %s\n", what);
        failures++;
    }
}

int main()
{
    // version.h: the macros of the headers agree with the library's answer.
    std::string want = std::to_string(GMUD_VERSION_MAJOR) + "." +
                       std::to_string(GMUD_VERSION_MINOR) + "." +
                       std::to_string(GMUD_VERSION_PATCH);
    expect(want == gmud_version(), "gmud_version() matches the header's macros");
    expect(gmud_version_number() == GMUD_VERSION_HEX, "gmud_version_number()");

    // error.h, frame.h: a frame round trip.
    gmud_frame_config fc;
    gmud_frame_default_config(&fc, GMUD_FRAMING_GMUD);
    gmud_error err;
    expect(gmud_frame_config_check(&fc, &err) == GMUD_OK, "default frame config");
    uint8_t buf[64];
    ptrdiff_t n = gmud_frame_encode(&fc, "{}", 2, buf, sizeof buf, &err);
    expect(n == 8, "gmud frame of 2 bytes is 8 bytes");
    gmud_frame_decoder *dec = gmud_frame_decoder_create(&fc, &err);
    gmud_slice msg;
    expect(dec != nullptr && gmud_frame_decode(dec, buf, (size_t)n, &msg, &err) == n &&
               msg.len == 2 && std::memcmp(msg.data, "{}", 2) == 0,
           "decode what was encoded");
    gmud_frame_decoder_destroy(dec);
    expect(std::strcmp(gmud_err_name(GMUD_ERR_TOO_LONG), "too_long") == 0, "gmud_err_name");

    // json.h
    gmud_json_limits jl;
    gmud_json_default_config(&jl);
    json_t *v = nullptr;
    expect(gmud_json_parse(reinterpret_cast<const uint8_t *>("{\"a\":1}"), 7, &jl, &v, &err) ==
               GMUD_OK,
           "gmud_json_parse");
    json_decref(v);

    // log.h, session.h, ratelimit.h, iplimit.h
    expect(std::strcmp(gmud_log_level_name(GMUD_LOG_WARN), "warn") == 0, "gmud_log_level_name");
    expect(std::strcmp(gmud_session_mode_name(GMUD_SESSION_ON), "on") == 0,
           "gmud_session_mode_name");
    gmud_bucket b;
    gmud_bucket_init(&b, 10, 10, 0);
    expect(gmud_bucket_take(&b, 1, 0) == 1, "gmud_bucket_take");
    gmud_iplimit_config ic;
    gmud_iplimit_default_config(&ic);
    gmud_iplimit *ipl = gmud_iplimit_create(&ic, &err);
    expect(ipl != nullptr, "gmud_iplimit_create");
    gmud_iplimit_destroy(ipl);

    // cluster.h: a config the library refuses, with the reason.
    expect(gmud_cluster_name_ok("node-1.a_b") && !gmud_cluster_name_ok("no spaces"),
           "gmud_cluster_name_ok");
    gmud_cluster_config clc;
    gmud_cluster_default_config(&clc);
    expect(gmud_cluster_create(nullptr, &clc, &err) == nullptr && err.code == GMUD_ERR_INVALID,
           "gmud_cluster_create without a node name");

    // server.h, client.h, sync.h: default configs, and a server on a loop.
    gmud_server_config sc;
    gmud_server_default_config(&sc);
    sc.port = 0;
    uv_loop_t loop;
    uv_loop_init(&loop);
    // The library leaves process-wide signal dispositions alone
    // (gmud/server.h, SIGPIPE): creating a server and a client must not
    // change SIGPIPE's. Nothing is written here, so it cannot be raised.
    struct sigaction before, after;
    sigaction(SIGPIPE, nullptr, &before);
    gmud_server *server = gmud_server_create(&loop, &sc, &err);
    expect(server != nullptr && gmud_server_port(server) != 0, "gmud_server_create");
    gmud_client_config cc;
    gmud_client_default_config(&cc);
    cc.port = server != nullptr ? gmud_server_port(server) : 1;
    gmud_client *client = gmud_client_create(&loop, &cc, &err);
    expect(client != nullptr, "gmud_client_create");
    gmud_client_destroy(client);
    sigaction(SIGPIPE, nullptr, &after);
    expect(before.sa_handler == SIG_DFL && after.sa_handler == SIG_DFL,
           "SIGPIPE still has its default action after creating a server and a client");
    gmud_sync_config syc;
    gmud_sync_default_config(&syc);
    if (server != nullptr) {
        gmud_server_shutdown(server, 0, nullptr, nullptr);
        uv_run(&loop, UV_RUN_DEFAULT);
        gmud_server_destroy(server);
        uv_run(&loop, UV_RUN_DEFAULT);
    }
    uv_loop_close(&loop);

    if (failures == 0)
        std::printf("test_cxx_headers: ok\n");
    return failures == 0 ? 0 : 1;
}
