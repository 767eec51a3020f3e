# SPDX-License-Identifier: MIT
# distkit_sanitize: sanitizer flags for distkit's own targets, chosen by DISTKIT_SANITIZE.
include_guard(GLOBAL)
add_library(distkit_sanitize INTERFACE)
if(DISTKIT_SANITIZE)
  target_compile_options(distkit_sanitize INTERFACE -fsanitize=${DISTKIT_SANITIZE} -fno-omit-frame-pointer -g)
  target_link_options(distkit_sanitize INTERFACE -fsanitize=${DISTKIT_SANITIZE})
  if(DISTKIT_SANITIZE MATCHES "undefined")
    target_compile_options(distkit_sanitize INTERFACE -fno-sanitize-recover=all)
  endif()
  # Sanitizer builds keep DISTKIT_ASSERT on even when optimised.
  target_compile_definitions(distkit_sanitize INTERFACE DISTKIT_ENABLE_ASSERTS)
endif()
