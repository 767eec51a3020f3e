# SPDX-License-Identifier: MIT
distkit_add_test(paxos SOURCES paxos/core_test.cpp paxos/storage_test.cpp paxos/linearizability_test.cpp
                 paxos/sim_test.cpp paxos/safety_test.cpp TIMEOUT 300)
