#!/usr/bin/env bash
# Build the room binary reproducibly: the one input of the image built from source.
#
#   images/build-room.sh [OUT]     (default: images/build/cleanroom-room)
#
# Two runs from the same commit, in any two checkouts, on any x86_64 Linux machine with
# rustup, give the same bytes (docs/deploy.md, "Reproduce the measurement"). What makes it so:
#  - the toolchain is the one rust-toolchain.toml pins, and Cargo.lock is used as is (--locked);
#  - paths are remapped (--remap-path-prefix): the checkout, CARGO_HOME and the build
#    directory do not reach the binary through panic locations or generated code;
#  - the build directory is fixed (/tmp/cleanroom-room-build unless CLEANROOM_ROOM_BUILD_DIR
#    says otherwise; use the same on both sides): the vendored OpenSSL (through OpenDP)
#    writes its install directory into the binary as C strings, which remapping does not reach;
#  - it starts from an empty build directory, without incremental compilation, and only
#    the room binary's own features (no test-only `failpoints`).
set -euo pipefail

src="$(cd "$(dirname "$0")/.." && pwd)"
out="${1:-$src/images/build/cleanroom-room}"
build="${CLEANROOM_ROOM_BUILD_DIR:-/tmp/cleanroom-room-build}"
marker="$build/.cleanroom-room-build"
cargo_home="${CARGO_HOME:-$HOME/.cargo}"

if [ -e "$build" ] && [ ! -e "$marker" ]; then
  echo "build-room.sh: $build exists and is not a directory this script made; remove it or set CLEANROOM_ROOM_BUILD_DIR" >&2
  exit 2
fi
rm -rf "$build"
mkdir -p "$build" "$(dirname "$out")"
touch "$marker"

# Nothing from the caller's environment changes the code: no extra flags, no wrapper.
unset RUSTFLAGS CARGO_ENCODED_RUSTFLAGS RUSTC_WRAPPER RUSTC_WORKSPACE_WRAPPER CARGO_BUILD_TARGET
export CARGO_INCREMENTAL=0
export CARGO_ENCODED_RUSTFLAGS="--remap-path-prefix=$src=/cleanroom"$'\x1f'"--remap-path-prefix=$cargo_home=/cargo"$'\x1f'"--remap-path-prefix=$build=/build"

# The C parts (ring, the vendored OpenSSL, zstd) come from the system's C compiler: the same
# compiler version on both sides, and the same path mapping for their __FILE__ strings.
export CFLAGS="-ffile-prefix-map=$src=/cleanroom -ffile-prefix-map=$cargo_home=/cargo -ffile-prefix-map=$build=/build"

cd "$src"
echo "build-room.sh: $(cargo --version) / $(rustc --version), building in $build" >&2
cargo build --release --locked --package cleanroom-room --bin cleanroom-room --target-dir "$build"
install -m 0755 "$build/release/cleanroom-room" "$out"
sha256sum "$out"
