// client <IP>:<PORT> <tracker_info.txt>: the groupshare shell. Reads
// commands from a terminal or from piped stdin until quit or end of input.

#include <sys/stat.h>
#include <unistd.h>

#include <iostream>
#include <string>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "cli/shell.h"
#include "core/log.h"
#include "core/tracker_info.h"
#include "services/common/process.h"
#include "services/peer/tracker_client.h"

ABSL_FLAG(std::string, state_dir, "",
          "folder for this client's state and log (default: "
          "~/.groupshare/client-<IP>_<PORT>)");
ABSL_FLAG(std::string, log_level, "info", "debug, info, warning or error");

namespace {

constexpr char kUsage[] =
    "Usage: client [flags] <IP>:<PORT> <tracker_info.txt>\n"
    "\n"
    "The groupshare shell. <IP>:<PORT> is where this client serves its shares to the\n"
    "other members (the address they reach it by); tracker_info.txt lists the\n"
    "trackers, one host:port a line, tried in order. Commands come from the terminal\n"
    "or from piped stdin, one a line; type help for the list.\n";

int Fail(absl::string_view message) {
  std::cerr << "error: " << message << "\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace groupshare;
  BlockTermSignals();
  std::vector<std::string> args = ParseFlagsOrExit(argc, argv, kUsage);
  if (args.size() != 2) {
    return Fail("expected <IP>:<PORT> <tracker_info.txt>; see client --help");
  }
  auto self = ParseHostPort(args[0]);
  if (!self.ok()) return Fail(self.status().message());
  auto trackers = ReadTrackerInfo(args[1]);
  if (!trackers.ok()) return Fail(trackers.status().message());
  if (auto s = log::SetLevel(absl::GetFlag(FLAGS_log_level)); !s.ok()) {
    return Fail(s.message());
  }
  std::string state_dir = absl::GetFlag(FLAGS_state_dir);
  if (state_dir.empty()) {
    state_dir = DefaultStatePath(absl::StrCat(
        "client-", absl::StrReplaceAll(self->host, {{"[", ""}, {"]", ""}, {":", "_"}}),
        "_", self->port));
  }
  if (mkdir(state_dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return Fail(absl::StrCat("cannot create state folder '", state_dir, "'"));
  }
  if (auto s = log::LogToFile(state_dir + "/client.log"); !s.ok()) return Fail(s.message());

  peer::TrackerClient tracker(*std::move(trackers));
  cli::Shell shell(tracker, self->ToString(), std::cout);
  WatchTermSignals([&](int sig) {
    GS_LOG(kInfo) << "signal " << sig << ": logging out and stopping";
    shell.Close();
    std::exit(0);
  });

  const bool interactive = isatty(STDIN_FILENO);
  std::string line;
  while (true) {
    if (interactive) std::cout << "groupshare> " << std::flush;
    if (!std::getline(std::cin, line)) break;
    if (!shell.Execute(line)) break;
  }
  shell.Close();
  return 0;
}
