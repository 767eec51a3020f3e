# SPDX-License-Identifier: MIT
# The Debian package (cpack -G DEB): built, its control fields checked, installed with dpkg into
# a fresh root, and used there by a find_package consumer and a pkg-config consumer. With the
# consumer tests (the gcc-asan leg), on Debian only.
find_program(DISTKIT_DPKG dpkg)
find_program(DISTKIT_PKG_CONFIG NAMES pkg-config pkgconf)
if(DISTKIT_CONSUMER_TESTS AND DISTKIT_INSTALL AND NOT DISTKIT_CONCURRENT_ONLY AND DISTKIT_DPKG AND DISTKIT_PKG_CONFIG)
  set(deb_work "${CMAKE_CURRENT_BINARY_DIR}/package")
  foreach(step build control install find_package pkg_config)
    add_test(NAME "package: deb ${step}"
             COMMAND "${CMAKE_CURRENT_SOURCE_DIR}/package/deb.sh" ${step} "${PROJECT_BINARY_DIR}" "${deb_work}"
                     "${PROJECT_SOURCE_DIR}" "${CMAKE_CXX_COMPILER}")
    set_tests_properties("package: deb ${step}" PROPERTIES LABELS "package" TIMEOUT 300)
  endforeach()
  set_tests_properties("package: deb build" PROPERTIES FIXTURES_SETUP distkit_deb_built)
  set_tests_properties("package: deb control" "package: deb install" PROPERTIES FIXTURES_REQUIRED distkit_deb_built)
  set_tests_properties("package: deb install" PROPERTIES FIXTURES_SETUP distkit_deb_installed)
  set_tests_properties("package: deb find_package" "package: deb pkg_config"
                       PROPERTIES FIXTURES_REQUIRED "distkit_deb_built;distkit_deb_installed")
endif()
