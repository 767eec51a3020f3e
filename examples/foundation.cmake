# SPDX-License-Identifier: MIT
distkit_add_example(hash SOURCES hash.cpp LIBS distkit::openssl)
distkit_add_example(clock SOURCES clock.cpp)
