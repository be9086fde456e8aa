#!/usr/bin/env bash
# Sets up (scripts/setup.sh) and runs every test:
#   1. the suite (ctest) on the ordinary build (build/);
#   2. a clang build with AddressSanitizer and UndefinedBehaviorSanitizer
#      (build-asan/; lock annotations checked, -Werror=thread-safety): the
#      whole suite again, leaks and the first error fatal;
#   3. the libFuzzer targets of that build, FUZZ_SECONDS (15) each, from
#      the corpus in fuzz/corpus;
#   4. a clang build with ThreadSanitizer (build-tsan/) of the units that
#      share state between threads: picker, part file, hashers, piece
#      writer, piece store, work queue, the download coordinator (with fake
#      peers, and with links and a clock the test drives), the tracker's
#      store (pools, files cache) and service (login guard, ticket keys).
#   scripts/test.sh            all of it
#   scripts/test.sh --quick    only 1
set -euo pipefail
cd "$(dirname "$0")/.."
quick=0
[ "${1:-}" = --quick ] && quick=1
jobs=$(nproc 2>/dev/null || echo 2)
SECONDS=0
step() { echo "test: $* (at ${SECONDS}s)"; }

scripts/setup.sh
step "suite, ordinary build"
# The end-to-end tests wait on processes and the network more than they
# compute (the suite kept under one core of two busy at one more test than
# cores): twice as many at a time as there are cores.
(cd "${BUILD_DIR:-build}" && ctest --output-on-failure --timeout 300 -j "$((jobs * 2))")
[ "$quick" = 1 ] && { step "done"; exit 0; }

# Reports name functions (and suppressions match them) only with a symbolizer.
symbolizer=/usr/lib/llvm-14/bin/llvm-symbolizer
export ASAN_SYMBOLIZER_PATH=$symbolizer TSAN_SYMBOLIZER_PATH=$symbolizer

step "clang build with AddressSanitizer and UndefinedBehaviorSanitizer"
CC=clang CXX=clang++ cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DGS_SANITIZE=address -DGS_FUZZ=ON -DCMAKE_UNITY_BUILD="${UNITY_BUILD:-ON}" >/dev/null
cmake --build build-asan -j "$jobs"
step "suite under AddressSanitizer and UndefinedBehaviorSanitizer"
# A test that fails is run once more, and the suite fails only if it fails
# again: gRPC 1.51 finishes closing transports on its own threads, and now
# and then a process exits before it has, which LeakSanitizer reports as
# leaks of gRPC's objects alone. A failure that repeats still fails; the
# first one stays in the log.
(cd build-asan &&
  ASAN_OPTIONS=detect_leaks=1:halt_on_error=1 \
  UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
  ctest --output-on-failure --timeout 300 -j "$((jobs * 2))" --repeat until-pass:2)

step "fuzzers"
ASAN_OPTIONS=detect_leaks=1:halt_on_error=1 BUILD_DIR=build-asan fuzz/run.sh

step "clang build with ThreadSanitizer"
tsan_tests=(download_test store_test core_test tracker_service_test piece_picker_test
  concurrency_test download_coordinator_test piece_writer_test)  # the longest first
CC=clang CXX=clang++ cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DGS_SANITIZE=thread -DCMAKE_UNITY_BUILD="${UNITY_BUILD:-ON}" >/dev/null
cmake --build build-tsan -j "$jobs" --target "${tsan_tests[@]}"
step "units under ThreadSanitizer, $jobs at a time"
export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 \
external_symbolizer_path=$symbolizer suppressions=$PWD/tests/sanitizers/tsan.supp"
# Each unit's output goes to its own log, shown if it fails.
printf '%s\n' "${tsan_tests[@]}" |
  xargs -P "$jobs" -I{} sh -c 'build-tsan/bin/{} --gtest_brief=1 >build-tsan/{}.log 2>&1 &&
    echo "test: {} passed under ThreadSanitizer" ||
    { echo "test: {} FAILED under ThreadSanitizer:"; cat build-tsan/{}.log; exit 1; }'
step "done"
