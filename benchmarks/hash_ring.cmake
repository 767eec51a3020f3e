# SPDX-License-Identifier: MIT
# Peer: libmemcached's ketama (Debian libmemcached-dev), asked through memcached_generate_hash.
find_path(DISTKIT_LIBMEMCACHED_INCLUDE_DIR libmemcached/memcached.h)
find_library(DISTKIT_LIBMEMCACHED_LIBRARY memcached)
find_library(DISTKIT_LIBHASHKIT_LIBRARY hashkit)
if(DISTKIT_LIBMEMCACHED_INCLUDE_DIR AND DISTKIT_LIBMEMCACHED_LIBRARY AND DISTKIT_LIBHASHKIT_LIBRARY)
  distkit_add_benchmark(hash_ring SOURCES hash_ring_bench.cpp
                        LIBS distkit::openssl ${DISTKIT_LIBMEMCACHED_LIBRARY} ${DISTKIT_LIBHASHKIT_LIBRARY})
  target_include_directories(hash_ring_bench SYSTEM PRIVATE ${DISTKIT_LIBMEMCACHED_INCLUDE_DIR})
else()
  message(WARNING "hash_ring_bench needs libmemcached-dev (the peer); not built")
endif()
