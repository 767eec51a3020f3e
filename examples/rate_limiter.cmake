# SPDX-License-Identifier: MIT
distkit_add_example(rate_limiter SOURCES rate_limiter.cpp)
