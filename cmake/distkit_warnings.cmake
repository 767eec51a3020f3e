# SPDX-License-Identifier: MIT
# distkit_warnings: the warning set of distkit's own targets (tests, examples, benchmarks).
# Never on distkit's INTERFACE: a user's flags are theirs.
include_guard(GLOBAL)
add_library(distkit_warnings INTERFACE)
target_compile_options(distkit_warnings INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor -Woverloaded-virtual -Wundef
  $<$<BOOL:${DISTKIT_WERROR}>:-Werror>)
