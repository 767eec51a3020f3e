# SPDX-License-Identifier: MIT
# Peers: oneTBB (libtbb-dev), Boost.Asio's thread_pool (libboost-dev, header-only) and
# rvaser/thread_pool (libthread-pool-dev), each from its Debian package.
find_package(TBB REQUIRED)
find_package(Boost REQUIRED)
find_package(thread_pool REQUIRED)
distkit_add_benchmark(worker_pool SOURCES worker_pool_bench.cpp LIBS TBB::tbb Boost::headers thread_pool::thread_pool)
