# SPDX-License-Identifier: MIT
# The ketama compatibility test asks libmemcached itself (Debian libmemcached-dev) where each key
# goes; the MD5 test compares distkit's own MD5 with OpenSSL's. Both are required: a missing
# oracle fails the configuration rather than skipping the test.
find_path(DISTKIT_LIBMEMCACHED_INCLUDE_DIR libmemcached/memcached.h)
find_library(DISTKIT_LIBMEMCACHED_LIBRARY memcached)
if(NOT DISTKIT_CONCURRENT_ONLY)
  if(NOT DISTKIT_LIBMEMCACHED_INCLUDE_DIR OR NOT DISTKIT_LIBMEMCACHED_LIBRARY)
    message(FATAL_ERROR "hash_ring tests need libmemcached (apt-get install libmemcached-dev)")
  endif()
  distkit_add_test(hash_ring SOURCES hash_ring_test.cpp LIBS distkit::openssl ${DISTKIT_LIBMEMCACHED_LIBRARY})
  target_include_directories(hash_ring_test SYSTEM PRIVATE ${DISTKIT_LIBMEMCACHED_INCLUDE_DIR})
endif()
distkit_add_test(hash_ring_concurrent SOURCES hash_ring_concurrent_test.cpp CONCURRENT)
