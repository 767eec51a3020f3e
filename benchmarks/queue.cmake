# SPDX-License-Identifier: MIT
# Peers: moodycamel::ConcurrentQueue (libconcurrentqueue-dev), atomic_queue (libatomic-queue-dev)
# and Boost.Lockfree (libboost-dev), all header-only, each from its Debian package.
find_package(Boost REQUIRED)
distkit_add_benchmark(queue SOURCES queue_bench.cpp LIBS Boost::headers)
