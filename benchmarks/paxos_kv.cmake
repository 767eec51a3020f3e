# SPDX-License-Identifier: MIT
# paxos_kv against etcd: the server and client built -O3 for scripts/bench-paxos-kv, which runs
# both clusters (3 processes each, loopback, fsync on) under the same load. The etcd load
# generator is benchmarks/paxos_kv_bench/etcd_load.go, built by the script with Debian's Go and
# etcd client sources.
if(TARGET distkit::tcp)
  foreach(part server client)
    add_executable(paxos_kv_bench_${part} ${PROJECT_SOURCE_DIR}/examples/paxos_kv/${part}.cpp)
    target_link_libraries(paxos_kv_bench_${part} PRIVATE distkit::tcp distkit_warnings)
  endforeach()
endif()
