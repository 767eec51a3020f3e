// SPDX-License-Identifier: MIT
// distkit/paxos.hpp: Multi-Paxos replicated log (umbrella for distkit/paxos/).
#pragma once

#include "distkit/paxos/concepts.hpp"
#include "distkit/paxos/kv_state_machine.hpp"
#include "distkit/paxos/message.hpp"
#include "distkit/paxos/node.hpp"
#include "distkit/paxos/replica.hpp"
#include "distkit/paxos/sim.hpp"
#include "distkit/paxos/storage.hpp"
#include "distkit/paxos/synod.hpp"
#include "distkit/paxos/types.hpp"
