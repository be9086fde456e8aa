// The client's shell: parses one command line at a time, calls the client's
// services and prints one line per result. Errors print as "error: ..."
// and say what to do. No business logic lives here.
//
// Not thread-safe: one thread feeds it lines.
#ifndef GROUPSHARE_CLI_SHELL_H_
#define GROUPSHARE_CLI_SHELL_H_

#include <functional>
#include <map>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "services/peer/node.h"
#include "services/peer/tracker_client.h"

namespace groupshare::cli {

// Splits a command line into words at blanks. "double" or 'single' quotes
// keep blanks inside a word (a path with spaces), and a backslash escapes the
// next character (in double quotes too). INVALID_ARGUMENT for an unterminated
// quote.
absl::StatusOr<std::vector<std::string>> SplitWords(absl::string_view line);

// The line as history may keep it: a command that carries a password
// (create_user, login) with the password, and anything after it, masked.
std::string LineForHistory(absl::string_view line);

class Shell {
 public:
  // `tracker` answers the account and group commands, `node` the sharing
  // ones; `out` receives the results.
  Shell(peer::TrackerClient& tracker, peer::Node& node, std::ostream& out);

  // Runs one command line. Returns false once the shell should end (quit).
  bool Execute(absl::string_view line);

  // How long upload_file waits for the hashing before it answers that it
  // goes on in the background (a terminal); scripts wait for the end.
  void set_upload_wait(absl::Duration wait) { upload_wait_ = wait; }

  // Logs out if logged in; call before the process ends.
  void Close();

  // The names of the commands, in the order help lists them.
  std::vector<std::string> CommandNames() const;

  // What the word after `before` (the line up to it) is, for Tab
  // completion: a command name, a group id, a local path, or none of these.
  enum class WordKind { kCommand, kGroupId, kPath, kOther };
  WordKind KindOfWord(absl::string_view before) const;
  // The group ids the last list_groups printed.
  const std::vector<std::string>& KnownGroups() const { return known_groups_; }

  // What happened since the last call without a command asking: downloads
  // that completed or failed, a session the tracker ended. One line each,
  // starting "notice: ", escaped like every line the shell prints; the
  // caller prints them where they do not disturb what is being typed.
  std::vector<std::string> Notices();

 private:
  using Args = std::vector<std::string>;
  struct Command {
    std::string name;
    std::vector<std::string> params;
    std::string summary;
    bool needs_login;
    std::function<absl::Status(const Args&)> run;
    // Flags that may follow the parameters, each at most once.
    std::vector<std::string> flags = {};
  };

  std::string Usage(const Command& c) const;
  void Print(const std::string& line);
  // "; 2 downloads paused: they go on at the next login", or "" when none runs.
  std::string PausedByLogout() const;

  absl::Status CreateUser(const Args& a);
  absl::Status Login(const Args& a);
  absl::Status Logout(const Args& a);
  absl::Status CreateGroup(const Args& a);
  absl::Status JoinGroup(const Args& a);
  absl::Status LeaveGroup(const Args& a);
  absl::Status ListRequests(const Args& a);
  absl::Status AnswerRequest(const Args& a, bool accept);
  absl::Status ListGroups(const Args& a);
  absl::Status ListFiles(const Args& a);
  absl::Status StopShare(const Args& a);
  absl::Status UploadFile(const Args& a);
  absl::Status DownloadFile(const Args& a);
  absl::Status ShowDownloads(const Args& a);
  absl::Status ShowUploads(const Args& a);
  absl::Status Set(const Args& a);
  absl::Status Help(const Args& a);

  peer::TrackerClient& tracker_;
  peer::Node& node_;
  std::ostream& out_;
  // For Notices: each download's state when last looked at, and the user
  // logged in after the last command.
  std::map<std::string, peer::DownloadState> seen_;
  bool seen_any_ = false;
  std::optional<std::string> user_after_command_;
  std::vector<Command> commands_;
  std::vector<std::string> known_groups_;
  absl::Duration upload_wait_ = absl::InfiniteDuration();
};

}  // namespace groupshare::cli

#endif  // GROUPSHARE_CLI_SHELL_H_
