# Runtime benchmarks (libuv server/client, blocking client): included at the
# end of bench/CMakeLists.txt. Never part of ctest.
#
# `cmake --build <dir> --target bench_runtime` builds and runs all of
# them; the `bench` target depends on bench_runtime, so `--target bench`
# runs them too (before the core benchmarks). Each prints a table with its
# figures beside a baseline measured in the same run, and stops by itself
# within a minute or so. They use loopback only and fork their peers.

set(GMUD_RUNTIME_BENCHES bench_stream bench_rtt bench_conns bench_clients bench_fanout
    bench_session bench_flood bench_memory bench_tls_memory bench_tls_stream)
set(GMUD_RUNTIME_BENCH_COMMANDS)
foreach(b IN LISTS GMUD_RUNTIME_BENCHES)
  add_executable(${b} ${CMAKE_CURRENT_LIST_DIR}/${b}.c)
  target_link_libraries(${b} PRIVATE gmud_static)
  # sched_setaffinity, CPU_SET, mallinfo2.
  target_compile_definitions(${b} PRIVATE _GNU_SOURCE)
  list(APPEND GMUD_RUNTIME_BENCH_COMMANDS COMMAND $<TARGET_FILE:${b}>)
endforeach()

# bench_cluster runs redis-server and two gmud-server nodes (issue 13).
add_executable(bench_cluster ${CMAKE_CURRENT_LIST_DIR}/bench_cluster.c)
target_link_libraries(bench_cluster PRIVATE gmud_static m)
target_compile_definitions(bench_cluster PRIVATE _GNU_SOURCE)
list(APPEND GMUD_RUNTIME_BENCH_COMMANDS
  COMMAND $<TARGET_FILE:bench_cluster> $<TARGET_FILE:gmud-server>)
list(APPEND GMUD_RUNTIME_BENCHES bench_cluster gmud-server)

add_custom_target(bench_runtime
  ${GMUD_RUNTIME_BENCH_COMMANDS}
  DEPENDS ${GMUD_RUNTIME_BENCHES}
  USES_TERMINAL
  COMMENT "Running the runtime benchmarks (each beside a raw-socket baseline from the same run)")

if(TARGET bench)
  add_dependencies(bench bench_runtime)
endif()
