#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# tests/package/deb.sh <step> <build dir> <work dir> <source dir> <c++ compiler>
# The Debian package, as a user meets it (registered in tests/package.cmake, one ctest test per step):
#   build         cpack -G DEB in the build directory: exactly one libdistkit-dev_<version>_all.deb
#   control       its control fields (dpkg-deb -f) and its file list (dpkg-deb -c)
#   install       dpkg -i into a fresh root with an empty dpkg database (dpkg --root)
#   find_package  a CMake consumer finds distkit in the installed root and runs
#   pkg_config    a consumer compiled with `pkg-config --cflags distkit` from that root runs
set -euo pipefail
step="$1" build="$2" work="$3" source="$4" cxx="$5"
root="$work/root"
version="$(sed -n 's/^#define DISTKIT_VERSION_\(MAJOR\|MINOR\|PATCH\) \([0-9]*\)$/\2/p' "$source/include/distkit/version.hpp" | paste -sd.)"
deb="$work/libdistkit-dev_${version}_all.deb"
fail() { echo "deb.sh $step: $*" >&2; exit 1; }

case "$step" in
  build)
    rm -rf "$work"
    mkdir -p "$work"
    cpack -G DEB --config "$build/CPackConfig.cmake" -B "$work/cpack" >"$work/cpack.log" 2>&1 || { cat "$work/cpack.log"; fail "cpack failed"; }
    mapfile -t debs < <(find "$work/cpack" -maxdepth 1 -name '*.deb')
    ((${#debs[@]} == 1)) || fail "expected one .deb, got: ${debs[*]:-none}"
    [[ "$(basename "${debs[0]}")" == "$(basename "$deb")" ]] || fail "package file is $(basename "${debs[0]}"), expected $(basename "$deb")"
    mv "${debs[0]}" "$deb"
    echo "built $deb"
    ;;
  control)
    dpkg-deb -I "$deb"
    field() { dpkg-deb -f "$deb" "$1"; }
    [[ "$(field Package)" == "libdistkit-dev" ]] || fail "Package: $(field Package)"
    [[ "$(field Version)" == "$version" ]] || fail "Version: $(field Version), expected $version"
    [[ "$(field Architecture)" == "all" ]] || fail "Architecture: $(field Architecture) (header-only: all)"
    [[ "$(field Section)" == "libdevel" ]] || fail "Section: $(field Section)"
    [[ -n "$(field Maintainer)" && -n "$(field Description)" ]] || fail "no Maintainer or Description"
    [[ "$(field Depends)" == "libxxhash-dev" ]] || fail "Depends: '$(field Depends)', expected 'libxxhash-dev'"
    suggests="$(field Suggests)"
    for p in libssl-dev libasio-dev libhiredis-dev prometheus-cpp-dev; do
      grep -qw -- "$p" <<<"$suggests" || fail "Suggests: '$suggests' lacks $p"
    done
    files="$(dpkg-deb -c "$deb" | awk '{print $6}')"
    for f in ./usr/include/distkit/distkit.hpp ./usr/include/distkit/bloom_filter.hpp ./usr/include/distkit/paxos/replica.hpp \
             ./usr/include/distkit/detail/crc32c.hpp ./usr/share/cmake/distkit/distkitConfig.cmake \
             ./usr/share/cmake/distkit/distkitConfigVersion.cmake ./usr/share/cmake/distkit/distkitTargets.cmake \
             ./usr/share/pkgconfig/distkit.pc ./usr/share/doc/libdistkit-dev/copyright; do
      grep -qxF -- "$f" <<<"$files" || fail "the package lacks $f"
    done
    # Every public header of the source tree is in the package.
    while IFS= read -r h; do
      grep -qxF -- "./usr/include/$h" <<<"$files" || fail "the package lacks header $h"
    done < <(cd "$source/include" && find distkit -name '*.hpp' | sort)
    # Nothing outside /usr, and no build-tree path in the shipped CMake and pkg-config files.
    if grep -v '^\./usr/\|^\./$\|^\./usr$' <<<"$files" | grep -q .; then fail "files outside /usr"; fi
    mkdir -p "$work/x"
    dpkg-deb -x "$deb" "$work/x"
    if grep -rlF -- "$build" "$work/x/usr/share"; then fail "the files above name the build directory"; fi
    echo "control fields and file list ok"
    ;;
  install)
    rm -rf "$root"
    mkdir -p "$root/var/lib/dpkg/info" "$root/var/lib/dpkg/updates"
    touch "$root/var/lib/dpkg/status" "$root/var/lib/dpkg/available"
    # A fresh root knows no other package, so the dependency is checked on this machine instead.
    dpkg-query -W -f='${Status}' libxxhash-dev | grep -q "install ok installed" || fail "libxxhash-dev is not installed here"
    dpkg --root="$root" --force-depends --force-not-root --force-script-chrootless -i "$deb"
    dpkg --root="$root" -s libdistkit-dev | grep -q "^Status: install ok installed" || fail "dpkg does not list libdistkit-dev as installed"
    [[ -f "$root/usr/include/distkit/distkit.hpp" ]] || fail "headers not installed under $root/usr"
    echo "installed into $root"
    ;;
  find_package)
    cmake -S "$source/tests/cmake_consumer/find_package" -B "$work/find_package" -DCMAKE_CXX_COMPILER="$cxx" \
      -DCMAKE_PREFIX_PATH="$root/usr" -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF >"$work/find_package.log" 2>&1 \
      || { cat "$work/find_package.log"; fail "configure failed"; }
    grep -q "distkit_DIR:PATH=$root/usr/share/cmake/distkit" "$work/find_package/CMakeCache.txt" \
      || fail "CMake found distkit elsewhere: $(grep distkit_DIR "$work/find_package/CMakeCache.txt")"
    cmake --build "$work/find_package" >>"$work/find_package.log" 2>&1 || { cat "$work/find_package.log"; fail "build failed"; }
    "$work/find_package/consumer"
    ;;
  pkg_config)
    export PKG_CONFIG_PATH="$root/usr/share/pkgconfig" PKG_CONFIG_SYSROOT_DIR=""
    pkg-config --exists --print-errors distkit || fail "pkg-config cannot find distkit"
    [[ "$(pkg-config --modversion distkit)" == "$version" ]] || fail "pkg-config version $(pkg-config --modversion distkit)"
    cflags="$(pkg-config --cflags distkit)"
    libs="$(pkg-config --libs distkit)"
    echo "pkg-config --cflags distkit: $cflags"
    grep -qF -- "-I$root/usr/share/pkgconfig/../../include" <<<"$cflags" || fail "cflags do not point into the installed root"
    # shellcheck disable=SC2086  # pkg-config output is a list of flags
    "$cxx" -std=c++20 -Wall -Wextra -Werror $cflags "$source/tests/package/pkg_config_consumer/main.cpp" $libs -o "$work/pkg_config_consumer"
    "$work/pkg_config_consumer"
    ;;
  *) fail "unknown step" ;;
esac
