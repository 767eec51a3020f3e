# SPDX-License-Identifier: MIT
distkit_add_test(circuit_breaker SOURCES circuit_breaker_test.cpp)
distkit_add_test(circuit_breaker_concurrent SOURCES circuit_breaker_concurrent_test.cpp CONCURRENT)
