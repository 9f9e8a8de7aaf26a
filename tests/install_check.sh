#!/usr/bin/env bash
# The library as another project uses it. Installs the build into a temporary prefix (DESTDIR), then
# builds examples/first.cpp (autograd) and tests/install/fit.cpp (nn) out of the tree three ways:
#   1. g++ $(pkg-config --cflags --libs autograd / nn)
#   2. a CMake project with find_package(tapegrad)              (tests/install/CMakeLists.txt)
#   3. a meson project with dependency('autograd' / 'nn')       (tests/install/meson.build)
# and runs the six programs with LD_LIBRARY_PATH as the only help, as a user of a non-system prefix
# would. Finally it configures the meson project with tapegrad as a subproject (no build).
#
# The packages our headers include (fmt, xtensor, xtl, xsimd) are moved to prefixes of their own,
# out of the compiler's default paths (a --sysroot whose /usr/include lacks them), as on a machine
# where they come from conda or a source build: the programs build only if the pkg-config files and
# the CMake package name every one of them. The sysroot also hides /usr/local, so a tapegrad
# installed there cannot stand in for the one under test.
#
#   install_check.sh <build dir> <source dir> [flags]
# flags (e.g. -fsanitize=address,undefined) are added to every compile and link: a program using a
# sanitized library must link the sanitizer runtime first. $CXX is the compiler (default g++).
set -euo pipefail
build=$(realpath "$1")
src=$(realpath "$2")
shift 2
flags="$*"
cxx=${CXX:-g++}
work=$build/install-check
rm -rf "$work"
mkdir -p "$work"
trap 'status=$?; if [ $status -eq 0 ]; then rm -rf "$work"; else echo "FAILED; files kept in $work"; fi' EXIT
fail() { echo "FAIL: $*"; exit 1; }

# ---- install --------------------------------------------------------------------------------
meson install -C "$build" --no-rebuild --destdir "$work/dest" --quiet > /dev/null
pc=$(find "$work/dest" -name autograd.pc -printf '%h\n')
grep -q '^prefix=${pcfiledir}' "$pc/autograd.pc" ||
  fail "autograd.pc has a fixed prefix; this build was set up before pkgconfig.relocatable became" \
       "the project's default: meson configure $build -Dpkgconfig.relocatable=true"
prefix=$(realpath "$pc/$(sed -n 's|^prefix=${pcfiledir}/||p' "$pc/autograd.pc")")
libdir=$(realpath "$pc/..")
for lib in autograd nn; do
  [ "$(readelf -d "$libdir/lib$lib.so.0" | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')" = "lib$lib.so.0" ] ||
    fail "lib$lib.so.0: SONAME is not lib$lib.so.0"
done

# ---- the header-only / public dependencies, each in a prefix of its own ----------------------
# Each keeps Debian's layout under its new prefix (the CMake files find the prefix from where they
# are): headers in include/, fmt's library and CMake files in lib/<multiarch>/, xtl's in share/.
sys_libdir=$(pkg-config --variable=libdir fmt)
mkdir -p "$work/deps/pc" "$work/sysroot/usr"
for p in fmt xtensor xtl xsimd; do
  dir=$work/deps/$p
  mkdir -p "$dir/include" "$dir/${sys_libdir#/usr/}"
  ln -s "$(pkg-config --variable=includedir "$p")/$p" "$dir/include/$p"
  for f in "$sys_libdir/lib$p".so*; do
    if [ -e "$f" ]; then ln -s "$f" "$dir/${sys_libdir#/usr/}/"; fi
  done
  sed -e "s|^prefix=.*|prefix=$dir|" -e "s|^exec_prefix=.*|exec_prefix=$dir|" \
      -e "s|^libdir=.*|libdir=$dir/${sys_libdir#/usr/}|" -e "s|^includedir=.*|includedir=$dir/include|" \
      "$(pkg-config --path "$p")" > "$work/deps/pc/$p.pc"
  # CMake package files are copied, not linked: they find their prefix from their real path.
  found=
  for c in "$sys_libdir/cmake/$p" "/usr/share/cmake/$p"; do
    if [ -d "$c" ]; then
      mkdir -p "$dir/$(dirname "${c#/usr/}")" && cp -r "$c" "$dir/$(dirname "${c#/usr/}")/" && found=1
    fi
  done
  [ -n "$found" ] || fail "no CMake package files for $p"
done
mkdir -p "$work/sysroot/usr/include"
for f in /usr/include/*; do
  case ${f##*/} in fmt | xtensor | xtl | xsimd) ;; *) ln -s "$f" "$work/sysroot/usr/include/" ;; esac
done
for d in /usr/lib /usr/lib64 /lib /lib64; do
  if [ -e "$d" ]; then ln -s "$d" "$work/sysroot$d"; fi
done
flags="--sysroot=$work/sysroot $flags"

export PKG_CONFIG_PATH=$work/deps/pc:$pc
mkdir -p "$work/project"
cp "$src/examples/first.cpp" "$src"/tests/install/{fit.cpp,CMakeLists.txt,meson.build} "$work/project/"

# ---- build the two programs three ways ---------------------------------------------------------
mkdir -p "$work/pkg-config"
# shellcheck disable=SC2046,SC2086  # flags are lists of words
"$cxx" -std=c++20 $flags "$work/project/first.cpp" $(pkg-config --cflags --libs autograd) \
  -o "$work/pkg-config/first" &
# shellcheck disable=SC2046,SC2086
"$cxx" -std=c++20 $flags "$work/project/fit.cpp" $(pkg-config --cflags --libs nn) \
  -o "$work/pkg-config/fit" &
wait %1 || fail "pkg-config: first did not build"
wait %2 || fail "pkg-config: fit did not build"

# CMake and meson give the programs in their build trees a RUNPATH to the prefix's lib folder, and
# drop it when they install them: the installed programs are the ones run below.
CXXFLAGS=$flags LDFLAGS=$flags cmake -S "$work/project" -B "$work/cmake-build" -G Ninja \
  -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_INSTALL_PREFIX="$work/cmake" -DCMAKE_INSTALL_BINDIR=. \
  -DCMAKE_PREFIX_PATH="$prefix;$work/deps/fmt;$work/deps/xtensor;$work/deps/xtl;$work/deps/xsimd" \
  > "$work/cmake.log" 2>&1 || { cat "$work/cmake.log"; fail "cmake: configure"; }
{ cmake --build "$work/cmake-build" -j 2 && cmake --install "$work/cmake-build"; } \
  > "$work/cmake-build.log" 2>&1 || { cat "$work/cmake-build.log"; fail "cmake: build"; }

CXX=$cxx CXXFLAGS=$flags LDFLAGS=$flags meson setup "$work/meson-build" "$work/project" \
  --buildtype=plain --prefix="$work/meson" --bindir=. > "$work/meson.log" 2>&1 ||
  { cat "$work/meson.log"; fail "meson: configure"; }
grep -q "Run-time dependency autograd found: YES" "$work/meson.log" ||
  { cat "$work/meson.log"; fail "meson: autograd not found through pkg-config"; }
{ ninja -C "$work/meson-build" -j 2 && meson install -C "$work/meson-build" --quiet; } \
  > "$work/meson-build.log" 2>&1 || { cat "$work/meson-build.log"; fail "meson: build"; }

# ---- run them ----------------------------------------------------------------------------------
for way in pkg-config cmake meson; do
  for prog in first fit; do
    exe=$work/$way/$prog
    dynamic=$(readelf -d "$exe")
    ! grep -E 'R(UN)?PATH' <<< "$dynamic" || fail "$way/$prog has a RUNPATH"
    # From $libdir, or from the copy for this CPU's level in $libdir/glibc-hwcaps/<level>/ (the
    # portable build, docs/performance.md "Portable build").
    loaded=$(LD_LIBRARY_PATH=$libdir ldd "$exe")
    grep -qE "libautograd.so.0 => $libdir/(glibc-hwcaps/x86-64-v[234]/)?libautograd.so.0 " <<< "$loaded" ||
      fail "$way/$prog does not load libautograd.so.0 from $libdir"
    LD_LIBRARY_PATH=$libdir "$exe" > "$work/$way-$prog.out" 2>&1 ||
      { cat "$work/$way-$prog.out"; fail "$way/$prog exited with an error"; }
  done
  grep -q "gradcheck: passed" "$work/$way-first.out" || fail "$way/first: no passed gradcheck"
  grep -q ": learned" "$work/$way-fit.out" || fail "$way/fit: did not learn"
  echo "$way: $(tail -1 "$work/$way-first.out" | cut -c1-40)... | $(cat "$work/$way-fit.out")"
done

# ---- tapegrad as a meson subproject: the fallback resolves to its targets -----------------------
mkdir -p "$work/project/subprojects"
ln -s "$src" "$work/project/subprojects/tapegrad"
meson setup "$work/subproject" "$work/project" --force-fallback-for=autograd,nn \
  > "$work/subproject.log" 2>&1 || { cat "$work/subproject.log"; fail "subproject: configure"; }
for dep in autograd nn; do
  grep -q "Dependency $dep found: YES .* (overridden)" "$work/subproject.log" ||
    { cat "$work/subproject.log"; fail "subproject: no $dep"; }
done
echo "subproject: dependency('autograd') and dependency('nn') fall back to subprojects/tapegrad"
