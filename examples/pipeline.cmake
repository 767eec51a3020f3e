# SPDX-License-Identifier: MIT
distkit_add_example(pipeline SOURCES pipeline.cpp ARGS 300000)
