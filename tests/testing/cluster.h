// A tracker and clients of the real binaries on loopback, for end-to-end
// tests: every process gets its own state folder and HOME under one
// temporary folder, and listens on a port the system chose.
#ifndef GROUPSHARE_TESTS_TESTING_CLUSTER_H_
#define GROUPSHARE_TESTS_TESTING_CLUSTER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "tests/testing/subprocess.h"
#include "tests/testing/temp_dir.h"

namespace groupshare::testing {

class Cluster {
 public:
  struct Client {
    std::string name;
    std::string state_dir;
    int port = 0;  // of its peer service
    std::unique_ptr<Subprocess> shell;

    // Sends a command and returns the first line of its answer.
    std::string Run(const std::string& command) { return shell->Run(command); }
    std::string Log() const { return ReadFile(state_dir + "/client.log"); }
  };

  // Starts the tracker, with `tracker_flags` added to its command line;
  // every client gets `client_flags` ("--plaintext" for both, say).
  explicit Cluster(const std::vector<std::string>& tracker_flags = {},
                   const std::vector<std::string>& client_flags = {});
  ~Cluster();

  TempDir& dir() { return dir_; }
  // True when the tracker runs with --plaintext.
  bool plaintext() const;
  const std::string& tracker_info() const { return tracker_info_; }
  int tracker_port() const { return tracker_port_; }

  // Kills the tracker with SIGKILL, as a crash would, and waits for it.
  void KillTracker();
  // Starts the tracker again, on its port and database.
  void StartTracker();

  // Starts (or restarts, keeping its state folder) a client named `name`.
  // `flags` are added to its command line.
  // `advertised` is its first argument, the address the others reach it by.
  std::unique_ptr<Client> StartClient(const std::string& name,
                                      const std::vector<std::string>& flags = {},
                                      const std::string& advertised = "127.0.0.1:0");
  // Starts a client and creates and logs in its user (named as the client).
  std::unique_ptr<Client> StartUser(const std::string& name,
                                    const std::vector<std::string>& flags = {});
  // `owner` creates `group` if needed; `member` joins and `owner` accepts.
  void AddMember(Client& owner, Client& member, const std::string& group);

  // Polls `client`'s show_downloads until a line starts with `prefix` (as
  // "[C] [g] f") and returns it, or "" after `timeout`.
  std::string WaitForDownload(Client& client, const std::string& prefix,
                              absl::Duration timeout = absl::Seconds(60));
  // The percent done of the first running download, -1 when none runs.
  double DownloadPercent(Client& client);
  // The lines show_downloads prints now.
  std::vector<std::string> Downloads(Client& client);
  // Polls until the first running download is `at_least` percent done;
  // returns the last percent seen (-1 when none runs) after `timeout`.
  double WaitForPercent(Client& client, double at_least,
                        absl::Duration timeout = absl::Seconds(30));

 private:
  TempDir dir_;
  std::vector<std::string> tracker_flags_;
  std::vector<std::string> client_flags_;
  std::unique_ptr<Subprocess> tracker_;
  int tracker_port_ = 0;
  std::string tracker_info_;
};

// `size` bytes of deterministic pseudo-random data.
std::string RandomBytes(size_t size, uint32_t seed);

}  // namespace groupshare::testing

#endif  // GROUPSHARE_TESTS_TESTING_CLUSTER_H_
