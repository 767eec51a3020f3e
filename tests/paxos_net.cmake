# SPDX-License-Identifier: MIT
if(TARGET distkit::openssl)
  distkit_add_test(paxos_frame SOURCES paxos_net/frame_test.cpp LIBS distkit::openssl)
endif()
if(TARGET distkit::tcp)
  distkit_add_test(paxos_tcp SOURCES paxos_net/tcp_transport_test.cpp LIBS distkit::tcp CONCURRENT TIMEOUT 60)
endif()
