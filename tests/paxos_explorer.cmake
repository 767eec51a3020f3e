# SPDX-License-Identifier: MIT
distkit_add_test(paxos_explorer SOURCES paxos/explorer_test.cpp TIMEOUT 300)
