# SPDX-License-Identifier: MIT
# The replicated key-value store on Paxos over TCP: a server and a client CLI. Under ctest each
# prints its usage; the cluster itself is exercised by scripts/cluster-demo and the `cluster` test.
if(TARGET distkit::tcp)
  distkit_add_example(paxos_kv_server SOURCES paxos_kv/server.cpp LIBS distkit::tcp ARGS --help)
  distkit_add_example(paxos_kv_client SOURCES paxos_kv/client.cpp LIBS distkit::tcp ARGS --help)
endif()
