# SPDX-License-Identifier: MIT
distkit_add_test(rate_limiter SOURCES rate_limiter_test.cpp)
# Threads and the Redis store (a real redis-server child process). Without hiredis the Redis
# cases still exist and fail, saying what is missing: they never skip silently.
if(TARGET distkit::redis)
  distkit_add_test(rate_limiter_concurrent SOURCES rate_limiter_concurrent_test.cpp LIBS distkit::redis CONCURRENT)
else()
  distkit_add_test(rate_limiter_concurrent SOURCES rate_limiter_concurrent_test.cpp CONCURRENT)
  target_compile_definitions(rate_limiter_concurrent_test PRIVATE DISTKIT_TEST_NO_HIREDIS=1)
endif()
