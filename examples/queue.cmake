# SPDX-License-Identifier: MIT
distkit_add_example(queue SOURCES queue.cpp)
distkit_add_example(queue_work SOURCES queue_work.cpp)
distkit_add_example(queue_fanout SOURCES queue_fanout.cpp)
distkit_add_example(queue_dlq SOURCES queue_dlq.cpp)
