# SPDX-License-Identifier: MIT
distkit_add_example(paxos_sim SOURCES paxos_sim.cpp ARGS 2026)
