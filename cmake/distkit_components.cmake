# SPDX-License-Identifier: MIT
# Optional components of distkit, one INTERFACE target each, created only when their packages
# are found. The installed package config finds those packages again when a component is asked for.
#   distkit::openssl  MD5 (ketama) and HMAC-SHA256 (authenticated Paxos frames): OpenSSL 3
#   distkit::tcp      the Paxos TCP transport: standalone Asio (header-only) + OpenSSL (libssl for TLS)
#   distkit::redis    the Redis-backed stores (rate limiter, work queue on Redis Streams): hiredis
#   distkit::prometheus_cpp  distkit metrics served through prometheus-cpp: its core library
include_guard(GLOBAL)

find_package(OpenSSL 3 QUIET COMPONENTS Crypto SSL)
find_path(DISTKIT_ASIO_INCLUDE_DIR asio.hpp)
find_path(DISTKIT_HIREDIS_INCLUDE_DIR hiredis/hiredis.h)
find_library(DISTKIT_HIREDIS_LIBRARY hiredis)

set(DISTKIT_COMPONENT_TARGETS "")
if(OpenSSL_FOUND)
  add_library(distkit_openssl INTERFACE)
  set_target_properties(distkit_openssl PROPERTIES EXPORT_NAME openssl)
  add_library(distkit::openssl ALIAS distkit_openssl)
  target_link_libraries(distkit_openssl INTERFACE distkit OpenSSL::Crypto)
  list(APPEND DISTKIT_COMPONENT_TARGETS distkit_openssl)
endif()
if(OpenSSL_FOUND AND TARGET OpenSSL::SSL AND DISTKIT_ASIO_INCLUDE_DIR)
  add_library(distkit_tcp INTERFACE)
  set_target_properties(distkit_tcp PROPERTIES EXPORT_NAME tcp)
  add_library(distkit::tcp ALIAS distkit_tcp)
  target_compile_definitions(distkit_tcp INTERFACE ASIO_STANDALONE ASIO_NO_DEPRECATED)
  target_link_libraries(distkit_tcp INTERFACE distkit distkit_openssl OpenSSL::SSL)
  list(APPEND DISTKIT_COMPONENT_TARGETS distkit_tcp)
endif()
if(DISTKIT_HIREDIS_INCLUDE_DIR AND DISTKIT_HIREDIS_LIBRARY)
  add_library(distkit_redis INTERFACE)
  set_target_properties(distkit_redis PROPERTIES EXPORT_NAME redis)
  add_library(distkit::redis ALIAS distkit_redis)
  # In the build tree the found library; once installed, the linker finds hiredis by name.
  target_link_libraries(distkit_redis INTERFACE distkit "$<BUILD_INTERFACE:${DISTKIT_HIREDIS_LIBRARY}>"
                                                "$<INSTALL_INTERFACE:hiredis>")
  list(APPEND DISTKIT_COMPONENT_TARGETS distkit_redis)
endif()
find_package(prometheus-cpp CONFIG QUIET)
if(TARGET prometheus-cpp::core)
  add_library(distkit_prometheus_cpp INTERFACE)
  set_target_properties(distkit_prometheus_cpp PROPERTIES EXPORT_NAME prometheus_cpp)
  add_library(distkit::prometheus_cpp ALIAS distkit_prometheus_cpp)
  target_link_libraries(distkit_prometheus_cpp INTERFACE distkit prometheus-cpp::core)
  list(APPEND DISTKIT_COMPONENT_TARGETS distkit_prometheus_cpp)
endif()
