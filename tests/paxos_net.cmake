# SPDX-License-Identifier: MIT
# Included by tests/CMakeLists.txt: the framing and TCP transport tests, and the tests that run
# real paxos_kv server processes (they need the examples, see examples/CMakeLists.txt).
if(TARGET distkit::openssl)
  distkit_add_test(paxos_frame SOURCES paxos_net/frame_test.cpp LIBS distkit::openssl)
endif()
if(TARGET distkit::tcp)
  distkit_add_test(paxos_tcp SOURCES paxos_net/tcp_transport_test.cpp LIBS distkit::tcp CONCURRENT TIMEOUT 60)
  # Mutual TLS 1.3 on the peer port, with certificates made at test time.
  distkit_add_test(paxos_tls SOURCES paxos_net/tls_transport_test.cpp LIBS distkit::tcp CONCURRENT TIMEOUT 60)
  # The same file with the peer verification and the identity check taken out (test-only
  # mutations): the strangers of the refusal tests must then get in.
  distkit_add_test(paxos_tls_mutation SOURCES paxos_net/tls_transport_test.cpp LIBS distkit::tcp TIMEOUT 60)
  if(TARGET paxos_tls_mutation_test)
    target_compile_definitions(paxos_tls_mutation_test PRIVATE DISTKIT_TLS_MUTATION_NO_PEER_VERIFY=1
                                                               DISTKIT_TLS_MUTATION_NO_IDENTITY_CHECK=1)
  endif()
endif()

# The process-level fault test: 3 real servers, kill -9, restarts, partitions, a linearizable
# history. Label `cluster`; it runs in the unsanitised leg (clang-release) only, where the
# servers are fast enough for its time bound.
if(TARGET distkit::tcp AND DISTKIT_BUILD_EXAMPLES AND NOT DISTKIT_SANITIZE AND NOT DISTKIT_CONCURRENT_ONLY
   AND EXISTS "${PROJECT_SOURCE_DIR}/include/distkit/paxos/testing/linearizability.hpp")
  add_executable(paxos_kv_cluster_test paxos_net/cluster_test.cpp $<TARGET_OBJECTS:distkit_catch_main>)
  target_include_directories(paxos_kv_cluster_test PRIVATE ${CMAKE_CURRENT_SOURCE_DIR} ${PROJECT_SOURCE_DIR}/examples)
  target_link_libraries(paxos_kv_cluster_test PRIVATE distkit::tcp Catch2::Catch2 distkit_warnings distkit_sanitize)
  target_compile_definitions(paxos_kv_cluster_test PRIVATE PAXOS_KV_SERVER="$<TARGET_FILE:paxos_kv_server>")
  add_dependencies(paxos_kv_cluster_test paxos_kv_server)
  add_test(NAME "paxos_kv: a cluster of 3 processes stays linearizable under kill -9, restart and partition, and keeps its data"
           COMMAND paxos_kv_cluster_test)
  set_tests_properties("paxos_kv: a cluster of 3 processes stays linearizable under kill -9, restart and partition, and keeps its data"
                       PROPERTIES LABELS "paxos_kv;cluster" TIMEOUT 180)
endif()

# Byte-bounded flow control on 3 real servers: a follower catches up over 100 MiB, an oversized
# request is refused. Unsanitised leg only, like the fault test above.
if(TARGET distkit::tcp AND DISTKIT_BUILD_EXAMPLES AND NOT DISTKIT_SANITIZE AND NOT DISTKIT_CONCURRENT_ONLY)
  add_executable(paxos_kv_flow_test paxos_net/flow_cluster_test.cpp $<TARGET_OBJECTS:distkit_catch_main>)
  target_include_directories(paxos_kv_flow_test PRIVATE ${CMAKE_CURRENT_SOURCE_DIR} ${PROJECT_SOURCE_DIR}/examples)
  target_link_libraries(paxos_kv_flow_test PRIVATE distkit::tcp Catch2::Catch2 distkit_warnings distkit_sanitize)
  target_compile_definitions(paxos_kv_flow_test PRIVATE PAXOS_KV_SERVER="$<TARGET_FILE:paxos_kv_server>")
  add_dependencies(paxos_kv_flow_test paxos_kv_server)
  add_test(NAME "paxos_kv: a follower that missed over 100 MiB catches up; an oversized request is refused"
           COMMAND paxos_kv_flow_test)
  set_tests_properties("paxos_kv: a follower that missed over 100 MiB catches up; an oversized request is refused"
                       PROPERTIES LABELS "paxos_kv;cluster" TIMEOUT 240)
endif()

# Attacks through the sockets of 3 real servers: strangers on the peer port, stalled and
# never-reading clients and huge lengths on the client port, start-up refusals. Unsanitised leg
# only, like the fault test above (RSS bounds are stated for an unsanitised build).
if(TARGET distkit::tcp AND DISTKIT_BUILD_EXAMPLES AND NOT DISTKIT_SANITIZE AND NOT DISTKIT_CONCURRENT_ONLY)
  add_executable(paxos_kv_attack_test paxos_net/attack_cluster_test.cpp $<TARGET_OBJECTS:distkit_catch_main>)
  target_include_directories(paxos_kv_attack_test PRIVATE ${CMAKE_CURRENT_SOURCE_DIR} ${PROJECT_SOURCE_DIR}/examples)
  target_link_libraries(paxos_kv_attack_test PRIVATE distkit::tcp Catch2::Catch2 distkit_warnings distkit_sanitize)
  target_compile_definitions(paxos_kv_attack_test PRIVATE PAXOS_KV_SERVER="$<TARGET_FILE:paxos_kv_server>")
  add_dependencies(paxos_kv_attack_test paxos_kv_server)
  add_test(NAME "paxos_kv: strangers on the peer and client ports exhaust neither memory nor connection slots"
           COMMAND paxos_kv_attack_test)
  set_tests_properties("paxos_kv: strangers on the peer and client ports exhaust neither memory nor connection slots"
                       PROPERTIES LABELS "paxos_kv;cluster;security" TIMEOUT 240)
endif()

# Mutual TLS on 3 real servers: writes and reads, strangers with a wrong-CA certificate or
# plain TCP refused, SIGHUP reload. Unsanitised leg only, like the fault test above.
if(TARGET distkit::tcp AND DISTKIT_BUILD_EXAMPLES AND NOT DISTKIT_SANITIZE AND NOT DISTKIT_CONCURRENT_ONLY)
  add_executable(paxos_kv_tls_test paxos_net/tls_cluster_test.cpp $<TARGET_OBJECTS:distkit_catch_main>)
  target_include_directories(paxos_kv_tls_test PRIVATE ${CMAKE_CURRENT_SOURCE_DIR} ${PROJECT_SOURCE_DIR}/examples)
  target_link_libraries(paxos_kv_tls_test PRIVATE distkit::tcp Catch2::Catch2 distkit_warnings distkit_sanitize)
  target_compile_definitions(paxos_kv_tls_test PRIVATE PAXOS_KV_SERVER="$<TARGET_FILE:paxos_kv_server>")
  add_dependencies(paxos_kv_tls_test paxos_kv_server)
  add_test(NAME "paxos_kv: a cluster of 3 processes over mutual TLS serves writes and reads and refuses strangers"
           COMMAND paxos_kv_tls_test)
  set_tests_properties("paxos_kv: a cluster of 3 processes over mutual TLS serves writes and reads and refuses strangers"
                       PROPERTIES LABELS "paxos_kv;cluster;security" TIMEOUT 120)
endif()
