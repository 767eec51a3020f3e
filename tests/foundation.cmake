# SPDX-License-Identifier: MIT
distkit_add_test(foundation SOURCES foundation_test.cpp hash_test.cpp clock_test.cpp LIBS distkit::openssl CONCURRENT)
