# SPDX-License-Identifier: MIT
# The replicated key-value store on Paxos over TCP: a server and a client CLI. Under ctest each
# prints its usage; the cluster itself is exercised by scripts/cluster-demo and the `cluster` test.
if(TARGET distkit::tcp)
  distkit_add_example(paxos_kv_server SOURCES paxos_kv/server.cpp LIBS distkit::tcp ARGS --help)
  distkit_add_example(paxos_kv_client SOURCES paxos_kv/client.cpp LIBS distkit::tcp ARGS --help)
  # --metrics-listen: a one-member server is scraped before and after 20 puts (promtool checks
  # the page, the counters must move).
  find_program(DISTKIT_PROMTOOL promtool)
  find_program(DISTKIT_CURL curl)
  if(DISTKIT_BUILD_TESTS AND DISTKIT_PROMTOOL AND DISTKIT_CURL)
    add_test(NAME "example: paxos_kv_server --metrics-listen serves /metrics"
             COMMAND "${PROJECT_SOURCE_DIR}/tests/support/metrics_paxos_kv.sh" $<TARGET_FILE:paxos_kv_server>
                     $<TARGET_FILE:paxos_kv_client> "${DISTKIT_PROMTOOL}")
    set_tests_properties("example: paxos_kv_server --metrics-listen serves /metrics"
                         PROPERTIES LABELS "example" TIMEOUT 120 PASS_REGULAR_EXPRESSION "metrics endpoint ok")
  endif()
  # A real Prometheus server scrapes a 3-member cluster under load; PromQL must agree with the
  # members and return a positive p99 persist+fsync latency.
  find_program(DISTKIT_PROMETHEUS prometheus)
  if(DISTKIT_BUILD_TESTS AND DISTKIT_PROMETHEUS AND DISTKIT_CURL)
    add_test(NAME "example: Prometheus scrapes a 3-member paxos_kv cluster and PromQL agrees"
             COMMAND "${PROJECT_SOURCE_DIR}/tests/support/metrics_prometheus_cluster.sh" $<TARGET_FILE:paxos_kv_server>
                     $<TARGET_FILE:paxos_kv_client> "${DISTKIT_PROMETHEUS}")
    set_tests_properties("example: Prometheus scrapes a 3-member paxos_kv cluster and PromQL agrees"
                         PROPERTIES LABELS "example" TIMEOUT 180 PASS_REGULAR_EXPRESSION "prometheus scrape ok")
  endif()
endif()
