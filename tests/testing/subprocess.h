// Runs a real binary for an end-to-end test: stdin and stdout are pipes the
// test writes commands to and reads result lines from, with deadlines;
// stderr goes to a file. The process is killed when the object goes.
#ifndef GROUPSHARE_TESTS_TESTING_SUBPROCESS_H_
#define GROUPSHARE_TESTS_TESTING_SUBPROCESS_H_

#include <sys/types.h>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace groupshare::testing {

class Subprocess {
 public:
  // Starts argv[0] with `env` added to (or replacing in) this environment.
  // stderr is appended to `stderr_path` ("" keeps the test's stderr).
  Subprocess(const std::vector<std::string>& argv,
             const std::map<std::string, std::string>& env = {},
             const std::string& stderr_path = "");
  ~Subprocess();
  Subprocess(const Subprocess&) = delete;
  Subprocess& operator=(const Subprocess&) = delete;

  pid_t pid() const { return pid_; }

  // Writes `line` and a newline to the process's stdin.
  void Send(absl::string_view line);
  void CloseStdin();

  // The next line of stdout, or nullopt at end of output or after `timeout`.
  // Lines that start with "notice: " (news the client prints unasked) are
  // set aside in notices() instead.
  std::optional<std::string> ReadLine(absl::Duration timeout = absl::Seconds(20));
  // The first notice that contains `needle`, waiting for it up to `timeout`.
  std::optional<std::string> WaitForNotice(absl::string_view needle,
                                           absl::Duration timeout = absl::Seconds(20));
  const std::vector<std::string>& notices() const { return notices_; }
  // Reads lines until one contains `needle`; returns it, or nullopt after
  // `timeout` or at end of output. Every line read is added to transcript().
  std::optional<std::string> WaitFor(absl::string_view needle,
                                     absl::Duration timeout = absl::Seconds(20));
  // Sends `command` and returns the next line of output ("" on timeout).
  std::string Run(absl::string_view command, absl::Duration timeout = absl::Seconds(20));
  const std::string& transcript() const { return transcript_; }

  void Signal(int sig);
  // Waits for the process to end: its exit code, 128+signal when a signal
  // ended it, or nullopt if it is still running after `timeout`.
  std::optional<int> Wait(absl::Duration timeout = absl::Seconds(20));

 private:
  pid_t pid_ = -1;
  int in_fd_ = -1;
  int out_fd_ = -1;
  std::string buffer_;
  std::string transcript_;
  std::vector<std::string> notices_;
  // The next line, notice or not.
  std::optional<std::string> ReadAnyLine(absl::Time deadline);
  bool eof_ = false;
  std::optional<int> exit_code_;
};

// Polls until `path` exists and is not empty, or `timeout`; returns its
// content ("" on timeout).
std::string WaitForFile(const std::string& path, absl::Duration timeout = absl::Seconds(20));

// A TCP port on 127.0.0.1 that nothing listens on (bound, then released),
// out of the range the system draws from for port 0 and for connections.
int UnusedPort();

// A TCP connection to 127.0.0.1:`port` from `source`, another loopback
// address (as from another machine), given a second to connect (a full
// listen queue drops the SYN); -1 if it did not connect.
int ConnectFrom(const std::string& source, int port);

}  // namespace groupshare::testing

#endif  // GROUPSHARE_TESTS_TESTING_SUBPROCESS_H_
