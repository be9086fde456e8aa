// tracker <tracker_info.txt> <tracker_no>: runs tracker number N of the file
// on the address of its Nth line until 'quit' on stdin, SIGINT or SIGTERM.

#include <unistd.h>

#include <iostream>
#include <string>

#include <grpcpp/server_builder.h>

#include "absl/flags/flag.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "core/log.h"
#include "core/tracker_info.h"
#include "services/common/process.h"
#include "services/common/server_setup.h"
#include "services/tracker/store.h"
#include "services/tracker/tracker_service.h"

ABSL_FLAG(std::string, db, "",
          "SQLite file that holds the tracker's state; trackers of one machine may share "
          "it (default: ~/.groupshare/tracker.db)");
ABSL_FLAG(int, session_ttl, 30,
          "seconds after which a client that stopped sending KeepAlive is offline");
ABSL_FLAG(int, ticket_ttl, 180,
          "seconds a download ticket stays valid (downloaders renew theirs every few seconds)");
ABSL_FLAG(int, password_iterations, 200000,
          "PBKDF2 iterations for new password hashes");
ABSL_FLAG(std::string, log_level, "info", "debug, info, warning or error");
ABSL_FLAG(std::string, tls_cert, "", "PEM certificate chain: serve TLS (with --tls_key)");
ABSL_FLAG(std::string, tls_key, "", "PEM private key of --tls_cert");
ABSL_FLAG(std::string, port_file, "",
          "write the bound port here once listening (useful with port 0)");

namespace {

constexpr char kUsage[] =
    "Usage: tracker [flags] <tracker_info.txt> <tracker_no>\n"
    "\n"
    "Runs tracker number <tracker_no> (1-based) of tracker_info.txt, which holds one\n"
    "host:port a line, on the address of that line. Type 'quit' to stop it; SIGINT and\n"
    "SIGTERM stop it too. With stdin not a terminal, end of input does not stop it.\n";

}  // namespace

int main(int argc, char** argv) {
  using namespace groupshare;
  DisableMutexDeadlockDetection();
  BlockTermSignals();
  std::vector<std::string> args = ParseFlagsOrExit(argc, argv, kUsage);
  if (absl::Status s = CheckPositionalArgs(args, {"<tracker_info.txt>", "<tracker_no>"}, 0,
                                           "tracker");
      !s.ok()) {
    return FailStartup(s.message());
  }
  if (auto s = log::SetLevel(absl::GetFlag(FLAGS_log_level)); !s.ok()) {
    return FailStartup(s.message());
  }
  auto trackers = ReadTrackerInfo(args[0]);
  if (!trackers.ok()) return FailStartup(trackers.status().message());
  int number = 0;
  if (!absl::SimpleAtoi(args[1], &number) || number < 1 ||
      number > static_cast<int>(trackers->size())) {
    return FailStartup(absl::StrCat("tracker_no '", args[1], "' must be a number from 1 to ",
                             trackers->size(), " (the lines of ", args[0], ")"));
  }
  if (absl::GetFlag(FLAGS_session_ttl) < 3 || absl::GetFlag(FLAGS_ticket_ttl) < 10 ||
      absl::GetFlag(FLAGS_password_iterations) < 1) {
    return FailStartup("--session_ttl must be at least 3, --ticket_ttl at least 10 and "
                "--password_iterations at least 1");
  }
  const HostPort& address = (*trackers)[number - 1];

  std::string db_path = absl::GetFlag(FLAGS_db);
  if (db_path.empty()) db_path = DefaultStatePath("tracker.db");
  auto store = tracker::OpenSqliteStore(db_path);
  if (!store.ok()) return FailStartup(store.status().message());

  tracker::TrackerOptions options;
  options.session_ttl = absl::Seconds(absl::GetFlag(FLAGS_session_ttl));
  options.ticket_ttl = absl::Seconds(absl::GetFlag(FLAGS_ticket_ttl));
  options.password_iterations = absl::GetFlag(FLAGS_password_iterations);
  auto service = tracker::TrackerServiceImpl::Create(store->get(), options);
  if (!service.ok()) return FailStartup(service.status().message());

  auto credentials = ServerCredentialsFor(
      {absl::GetFlag(FLAGS_tls_cert), absl::GetFlag(FLAGS_tls_key), ""});
  if (!credentials.ok()) return FailStartup(credentials.status().message());
  EnableReflectionAndHealth();
  grpc::ServerBuilder builder;
  builder.RegisterService(service->get());
  int port = 0;
  auto server = StartServer(builder, address.ToString(), &port, *credentials);
  if (!server.ok()) return FailStartup(server.status().message());
  ReportServing(**server, {groupshare::tracker::v1::TrackerService::service_full_name()});
  if (std::string port_file = absl::GetFlag(FLAGS_port_file); !port_file.empty()) {
    if (auto s = WriteFileAtomically(port_file, absl::StrCat(port, "\n")); !s.ok()) {
      return FailStartup(s.message());
    }
  }
  std::cout << "tracker " << number << " listening on " << address.host << ":" << port
            << " (database " << db_path << ")" << std::endl;
  GS_LOG(kInfo) << "tracker " << number << " listening on " << address.host << ":" << port;

  WatchTermSignals();
  // The console: quit or exit stops; so does the end of input on a terminal
  // (Ctrl-D), while a closed pipe does not (a tracker run in the background).
  const bool input_ended = ReadLines(STDIN_FILENO, [](absl::string_view line) {
    absl::string_view cmd = absl::StripAsciiWhitespace(line);
    if (cmd == "quit" || cmd == "exit") return false;
    if (!cmd.empty()) {
      std::cout << "error: unknown command '" << cmd << "'; type quit to stop the tracker"
                << std::endl;
    }
    return true;
  });
  if (!input_ended || isatty(STDIN_FILENO)) RequestStop();
  WaitForStop();
  (*server)->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  std::cout << "tracker " << number << " stopped" << std::endl;
  return 0;
}
