// Process plumbing shared by the tracker and client mains: command-line
// flags with a --help that exits 0, SIGINT/SIGTERM handling on a thread of
// its own, and writing a file atomically (port files for tests).
#ifndef GROUPSHARE_SERVICES_COMMON_PROCESS_H_
#define GROUPSHARE_SERVICES_COMMON_PROCESS_H_

#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace groupshare {

// Parses absl flags. `--help` (or -h) prints `usage` and the flags defined
// in the binary's main.cc and exits 0; an unknown or malformed flag
// prints an error and exits 1. Returns the positional arguments (without argv[0]).
std::vector<std::string> ParseFlagsOrExit(int argc, char** argv, absl::string_view usage);

// Overwrites, in the process's own argv (what ps and /proc show), the
// password of a PostgreSQL connection string: "password=..." in libpq's
// key=value form, and "user:password@" in a URI. Call after the flags are
// parsed (they keep their own copy).
void HidePasswordsInArgs(int argc, char** argv);

// Prints "error: <message>" to stderr and returns 2, the exit code of a
// process that could not start (bad arguments, files, addresses).
int FailStartup(absl::string_view message);

// Checks a binary's positional arguments against their `names` (say
// {"<tracker_info.txt>", "<tracker_no>"}). One more argument that repeats
// the one at `repeatable` is accepted and dropped: the original
// specification writes the command lines with the tracker_info file twice.
// INVALID_ARGUMENT saying what is missing or which argument is too many.
absl::Status CheckPositionalArgs(std::vector<std::string>& args,
                                 const std::vector<std::string>& names, size_t repeatable,
                                 absl::string_view binary);

// Debian's Abseil checks every Mutex for lock-order cycles, recording a
// stack trace at each lock: a few percent of a busy client's CPU. The
// binaries turn that off first thing in main; the tests, which link the
// same code without these mains, keep it.
void DisableMutexDeadlockDetection();

// Blocks SIGINT, SIGTERM and SIGHUP (a closed terminal; unless nohup ignores
// it) in this thread and every thread it starts later; call first thing in
// main. Then WatchTermSignals logs each of them that arrives (from a thread
// of its own) and asks the process to stop: the main loop sees it through
// StopRequested and ends in its own time, never in the middle of a command.
// The stop is process-wide state, so the signal thread touches nothing that
// main owns.
void BlockTermSignals();
void WatchTermSignals();
void RequestStop();
bool StopRequested();
// From now on SIGINT interrupts instead of stopping (a terminal's Ctrl-C
// clears the line being typed); TakeInterrupt says whether one came since
// the last call. SIGTERM still stops.
void InterruptOnSigint();
bool TakeInterrupt();
// Waits until a stop is asked for.
void WaitForStop();
// A server's console until a stop is asked for: `quit` or `exit` on stdin
// stops, and so does the end of input on a terminal (Ctrl-D), while a
// closed pipe does not (a server run in the background). Other input gets
// an error naming `server` ("the tracker"). Watches SIGINT and SIGTERM.
void RunConsoleUntilStopped(absl::string_view server);

// Reads lines from `fd` and hands each (without its line end) to `on_line`
// until it returns false, the input ends (a last unterminated line is
// handed over first), or a stop is asked for (seen within 100 ms). Calls
// `on_idle`, if any, whenever 100 ms pass without input. True when the
// input ended.
bool ReadLines(int fd, const std::function<bool(absl::string_view line)>& on_line,
               const std::function<void()>& on_idle = nullptr);

// Locks the file `path` (made 0600 if missing) for the rest of the
// process's life and records the process id in it, so that two processes
// never work on what it guards. FAILED_PRECONDITION ("held by process N")
// when another process holds it; UNAVAILABLE when it cannot be opened. On
// a file system without locks it logs a warning and returns OK.
absl::Status LockForLife(const std::string& path);

// Writes `content` to `path` through a temporary file and a rename, so a
// reader never sees it half written, with permissions `mode`.
absl::Status WriteFileAtomically(const std::string& path, absl::string_view content,
                                 int mode = 0644);

// <home>/.groupshare/<name>, creating the folder: the home is $HOME, or the
// account's home when HOME is not set (as in a service's environment);
// ./<name> when there is neither.
std::string DefaultStatePath(absl::string_view name);

// Makes the state folder `dir` (mode 0700) unless it is there. An error
// says why, and what to do.
absl::Status MakeStateFolder(const std::string& dir);

}  // namespace groupshare

#endif  // GROUPSHARE_SERVICES_COMMON_PROCESS_H_
