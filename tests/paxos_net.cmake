# SPDX-License-Identifier: MIT
if(TARGET distkit::openssl)
  distkit_add_test(paxos_frame SOURCES paxos_net/frame_test.cpp LIBS distkit::openssl)
endif()
