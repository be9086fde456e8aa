#!/usr/bin/env bash
# Installs what groupshare needs from Debian 12's packages (only what is
# missing) and builds it into build/ (binaries in build/bin/).
#   scripts/setup.sh            install + build
#   BUILD_DIR=dir scripts/setup.sh
#   UNITY_BUILD=OFF scripts/setup.sh   one file a compile (see below)
set -euo pipefail
cd "$(dirname "$0")/.."

#   BUILD_TESTING=OFF scripts/setup.sh   only what the binaries need (containers)
packages=(
  cmake g++ make pkg-config
  # a linker four times as fast as the default one (used when present)
  lld
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler libabsl-dev
  libssl-dev libsqlite3-dev libpq-dev libreadline-dev
  # ids: Unicode normalization and confusable skeletons (UTS #39)
  libicu-dev
  # health.proto, compiled in so that reflection can describe the health service
  grpc-proto
)
if [ "${BUILD_TESTING:-ON}" != OFF ]; then
  packages+=(
    libgtest-dev libgmock-dev
    # the tests' generic gRPC client, which knows the services only by reflection
    python3 python3-grpcio python3-protobuf
    # checking docker-compose.yml, and running its services' commands
    docker-compose python3-yaml
    # certificates for the TLS test
    openssl
    # the store tests on PostgreSQL, and trackers on hosts of their own
    # (network namespaces) over a primary and a streaming standby
    postgresql iproute2
    # routers that let only connections started inside through (stateful
    # firewalls between namespaces), and captures of what crosses a link
    nftables tcpdump
    # a real terminal for the shell's terminal test
    tmux
    # the sanitizer, thread-safety and fuzzing builds of scripts/test.sh, and
    # llvm-symbolizer, without which sanitizer reports have no names and the
    # suppressions of tests/sanitizers/ cannot match
    clang libclang-rt-14-dev llvm-14
  )
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "setup: run as root or install sudo" >&2; exit 1; }
    sudo=(sudo)
  fi
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get update -q
  "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

build=${BUILD_DIR:-build}
jobs=$(nproc 2>/dev/null || echo 2)
# CMake's unity build compiles a target's sources in batches, reading the
# headers they share once a batch: a fresh build takes a quarter less time
# on two cores. After an edit it recompiles the file's whole batch, so for
# day-to-day work UNITY_BUILD=OFF may suit better.
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBUILD_TESTING="${BUILD_TESTING:-ON}" \
  -DCMAKE_UNITY_BUILD="${UNITY_BUILD:-ON}" >/dev/null
cmake --build "$build" -j "$jobs"
echo "setup: built $build/bin/tracker and $build/bin/client"
