// SPDX-License-Identifier: MIT
// distkit/distkit.hpp: the umbrella header; includes every primitive that needs no optional
// dependency. Optional-dependency headers (distkit/md5.hpp, the TCP transport, the Redis store)
// are included on their own, with their component target linked.
#pragma once

#include "distkit/adaptive_limit.hpp"
#include "distkit/bloom_filter.hpp"
#include "distkit/breaker_window.hpp"
#include "distkit/circuit_breaker.hpp"
#include "distkit/clock.hpp"
#include "distkit/errors.hpp"
#include "distkit/hash.hpp"
#include "distkit/hash_ring.hpp"
#include "distkit/load_balancer.hpp"
#include "distkit/metrics.hpp"
#include "distkit/overflow.hpp"
#include "distkit/paxos.hpp"
#include "distkit/pipeline.hpp"
#include "distkit/queue.hpp"
#include "distkit/rate_limiter.hpp"
#include "distkit/task_group.hpp"
#include "distkit/version.hpp"
#include "distkit/work_queue.hpp"
#include "distkit/worker_pool.hpp"
