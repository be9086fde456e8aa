// tracker <tracker_info.txt> <tracker_no>: runs tracker number N of the file
// on the address of its Nth line until 'quit' on stdin, SIGINT, SIGTERM or SIGHUP.

#include <unistd.h>

#include <algorithm>
#include <iostream>
#include <string>

#include <grpcpp/resource_quota.h>
#include <grpcpp/server_builder.h>

#include "absl/flags/flag.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"
#include "core/certificates.h"
#include "core/log.h"
#include "core/status_macros.h"
#include "core/tracker_info.h"
#include "services/common/process.h"
#include "services/common/server_setup.h"
#include "services/tracker/request_checks.h"
#include "services/tracker/store.h"
#include "services/tracker/tls_authority.h"
#include "services/tracker/tracker_service.h"

ABSL_FLAG(std::string, db, "",
          "where the tracker's state is: a SQLite file, which the trackers of one machine "
          "may share (default: ~/.groupshare/tracker.db), or a PostgreSQL database that "
          "trackers on several hosts share, as a postgresql:// URI or libpq key=value "
          "conninfo (e.g. 'host=db1,db2 dbname=groupshare target_session_attrs=read-write')");
ABSL_FLAG(int, db_connections, 8,
          "reader connections to the database (PostgreSQL opens two more for writes, and "
          "answers ListFiles on as many threads)");
ABSL_FLAG(int, max_groups_per_owner, 100, "groups one user may own");
ABSL_FLAG(int, max_pending_requests, 1000, "join requests waiting in one group");
ABSL_FLAG(int, max_files_per_group, 10000, "files one group may hold");
ABSL_FLAG(int, max_sessions_per_user, 16, "clients one user may be logged in from at once");
ABSL_FLAG(int, max_metadata_mb_per_user, 32,
          "MiB of hashes (40 bytes a piece: its SHA1 and its chain value) the files one user "
          "shares may take here");
ABSL_FLAG(int, max_streams_per_connection, 32, "concurrent calls on one connection");
ABSL_FLAG(int, max_threads, 256,
          "threads serving calls; calls beyond them get RESOURCE_EXHAUSTED at once");
ABSL_FLAG(int, max_memory_mb, 128,
          "memory gRPC may hold for connections and calls (an idle connection holds about "
          "13 KiB of it); under pressure it cancels calls and closes connections");
ABSL_FLAG(int, failed_logins_per_user, 5,
          "failed logins for one user id (in 15 minutes) before its logins back off, from 1 s "
          "doubling to 60 s");
ABSL_FLAG(int, failed_logins_per_source, 30,
          "failed logins from one address (in 15 minutes) before its logins back off");
ABSL_FLAG(int, page_size, 500,
          "ListGroups and ListFiles items in one answer when the caller names no page_size "
          "(at most 1000 either way)");
ABSL_FLAG(int, hash_slots, 1,
          "passwords hashed at once (each hash takes a core for tens of milliseconds)");
ABSL_FLAG(std::string, signup, "open",
          "open: anybody may create an account (CreateUser); off: nobody (a private "
          "tracker, whose accounts its operator makes with --signup open for a while)");
ABSL_FLAG(int, signups_per_address, 60, "accounts created in an hour from one address, at most");
ABSL_FLAG(int, signups_per_hour, 1000, "accounts created in an hour in all, at most");
ABSL_FLAG(int, session_ttl, 30,
          "seconds after which a client that stopped sending KeepAlive is offline");
ABSL_FLAG(int, ticket_ttl, 180,
          "seconds a download ticket stays valid (downloaders renew theirs every few seconds)");
ABSL_FLAG(int, peer_certificate_ttl, 3600,
          "seconds a member's peer certificate is valid (clients renew theirs with their "
          "keep-alives at half its life)");
ABSL_FLAG(int, password_iterations, 200000,
          "PBKDF2 iterations for new password hashes");
ABSL_FLAG(std::string, log_level, "info", "debug, info, warning or error");
ABSL_FLAG(bool, plaintext, false,
          "serve without TLS, for experiments on one machine: passwords, tokens and tickets "
          "cross the network in clear, and clients must be given --plaintext too");
ABSL_FLAG(std::string, tls_cert, "",
          "PEM certificate chain to serve TLS with (with --tls_key); without it the tracker "
          "serves TLS with its own key and certificate, made at the first start and kept in "
          "the database, so that every tracker over one database shows the same");
ABSL_FLAG(std::string, tls_key, "", "PEM private key of --tls_cert");
ABSL_FLAG(std::string, cert_file, "",
          "where to write the certificate the tracker serves, for clients such as grpcurl "
          "(-cacert); default: beside an SQLite database, as <db>.cert.pem");
ABSL_FLAG(bool, rotate_ticket_key, false,
          "rotate the download-ticket key of --db and exit: the new key is announced to "
          "clients at once and signs from --session_ttl + 5 seconds on; the old one is "
          "accepted for --ticket_ttl seconds more. Takes no other arguments.");
ABSL_FLAG(bool, rotate_peer_ca, false,
          "rotate the peer CA of --db (which certifies members' keys) and exit: the new CA is "
          "announced to clients at once and signs from --session_ttl + 5 seconds on; the old "
          "one is trusted for --peer_certificate_ttl seconds more. Takes no other arguments.");
ABSL_FLAG(std::string, relays, "",
          "relay_info.txt of the relays to tell clients of (one relay a line, as the relay "
          "binary reads it): a client that other members cannot reach waits at one of them");
ABSL_FLAG(std::string, port_file, "",
          "write the bound port here once listening (useful with port 0)");

namespace {

constexpr char kUsage[] =
    "Usage: tracker [flags] <tracker_info.txt> <tracker_no>\n"
    "       tracker --db <database> --rotate_ticket_key\n"
    "       tracker --db <database> --rotate_peer_ca\n"
    "\n"
    "Runs tracker number <tracker_no> (1-based) of tracker_info.txt, which holds one\n"
    "host:port a line, on the address of that line. Type 'quit' to stop it; SIGINT,\n"
    "SIGTERM and SIGHUP (its terminal closed) stop it too. With stdin not a terminal,\n"
    "end of input does not stop it.\n";

// The database of --db, with the limits of the flags.
absl::StatusOr<std::unique_ptr<groupshare::tracker::Store>> OpenStore(std::string* described) {
  using namespace groupshare;
  for (int limit : {absl::GetFlag(FLAGS_db_connections), absl::GetFlag(FLAGS_max_groups_per_owner),
                    absl::GetFlag(FLAGS_max_pending_requests),
                    absl::GetFlag(FLAGS_max_files_per_group),
                    absl::GetFlag(FLAGS_max_sessions_per_user),
                    absl::GetFlag(FLAGS_max_metadata_mb_per_user),
                    absl::GetFlag(FLAGS_max_streams_per_connection),
                    absl::GetFlag(FLAGS_max_threads),
                    absl::GetFlag(FLAGS_max_memory_mb), absl::GetFlag(FLAGS_page_size),
                    absl::GetFlag(FLAGS_failed_logins_per_user),
                    absl::GetFlag(FLAGS_failed_logins_per_source),
                    absl::GetFlag(FLAGS_signups_per_address), absl::GetFlag(FLAGS_signups_per_hour),
                    absl::GetFlag(FLAGS_hash_slots)}) {
    if (limit < 1) {
      return absl::InvalidArgumentError(
          "limits (--max_*, --db_connections, --hash_slots, ...) must be at least 1");
    }
  }
  tracker::StoreLimits limits;
  limits.groups_per_owner = absl::GetFlag(FLAGS_max_groups_per_owner);
  limits.pending_requests_per_group = absl::GetFlag(FLAGS_max_pending_requests);
  limits.files_per_group = absl::GetFlag(FLAGS_max_files_per_group);
  limits.sessions_per_user = absl::GetFlag(FLAGS_max_sessions_per_user);
  limits.metadata_bytes_per_user = int64_t{absl::GetFlag(FLAGS_max_metadata_mb_per_user)} << 20;
  std::string db = absl::GetFlag(FLAGS_db);
  if (db.empty()) db = DefaultStatePath("tracker.db");
  const int connections = absl::GetFlag(FLAGS_db_connections);
  if (tracker::IsPostgresConninfo(db)) {
    *described = "PostgreSQL";  // the conninfo may hold a password
    return tracker::OpenPostgresStore(db, limits, connections);
  }
  *described = db;
  return tracker::OpenSqliteStore(db, limits, connections);
}

groupshare::tracker::TrackerOptions OptionsFromFlags() {
  groupshare::tracker::TrackerOptions options;
  options.session_ttl = absl::Seconds(absl::GetFlag(FLAGS_session_ttl));
  options.ticket_ttl = absl::Seconds(absl::GetFlag(FLAGS_ticket_ttl));
  options.password_iterations = absl::GetFlag(FLAGS_password_iterations);
  options.peer_certificate_ttl = absl::Seconds(absl::GetFlag(FLAGS_peer_certificate_ttl));
  options.login.hash_slots = absl::GetFlag(FLAGS_hash_slots);
  options.page_size = std::min(absl::GetFlag(FLAGS_page_size), 1000);
  options.login.free_failures_per_user = absl::GetFlag(FLAGS_failed_logins_per_user);
  options.login.free_failures_per_source = absl::GetFlag(FLAGS_failed_logins_per_source);
  options.login.signup_open = absl::GetFlag(FLAGS_signup) == "open";
  options.login.signups_per_source = absl::GetFlag(FLAGS_signups_per_address);
  options.login.signups = absl::GetFlag(FLAGS_signups_per_hour);
  return options;
}

// How the tracker serves: TLS with the certificate of --tls_cert, or with
// its own from the database; plaintext only when asked. Sets `*said` to the
// line that tells users how to know this tracker, with `%s` for its address.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> TrackerCredentials(
    groupshare::tracker::Store* store, const groupshare::HostPort& address, std::string* said) {
  using namespace groupshare;
  if (absl::GetFlag(FLAGS_plaintext)) {
    if (!absl::GetFlag(FLAGS_tls_cert).empty()) {
      return absl::InvalidArgumentError("--plaintext and --tls_cert exclude each other");
    }
    *said = "plaintext (--plaintext): clients need --plaintext too";
    return grpc::InsecureServerCredentials();
  }
  KeyAndCert identity;
  if (!absl::GetFlag(FLAGS_tls_cert).empty() || !absl::GetFlag(FLAGS_tls_key).empty()) {
    ASSIGN_OR_RETURN(identity,
                     ReadTlsFiles(absl::GetFlag(FLAGS_tls_cert), absl::GetFlag(FLAGS_tls_key)));
  } else {
    ASSIGN_OR_RETURN(identity, tracker::LoadTrackerIdentity(store, address.host, absl::Now()));
  }
  const std::string& cert_pem = identity.cert_pem;
  ASSIGN_OR_RETURN(CertificateInfo info, ReadCertificate(cert_pem));
  std::string cert_file = absl::GetFlag(FLAGS_cert_file);
  const std::string db = absl::GetFlag(FLAGS_db).empty() ? DefaultStatePath("tracker.db")
                                                         : absl::GetFlag(FLAGS_db);
  if (cert_file.empty() && !tracker::IsPostgresConninfo(db)) cert_file = db + ".cert.pem";
  if (!cert_file.empty()) RETURN_IF_ERROR(WriteFileAtomically(cert_file, cert_pem));
  *said = absl::StrCat("TLS certificate sha256=", info.sha256,
                       cert_file.empty() ? "" : absl::StrCat(" (written to ", cert_file, ")"),
                       "; clients may pin it in tracker_info.txt: %s sha256=", info.sha256);
  return ServerCredentialsFor(identity);
}

// Rotates a key of the database of --db (`what`, a `noun`, rotated by
// `rotate`) and says when the new one signs.
template <typename Rotate>
int RotateAndSay(const char* what, const char* noun, Rotate rotate) {
  using namespace groupshare;
  std::string described;
  auto store = OpenStore(&described);
  if (!store.ok()) {
    return FailStartup(absl::StrCat("cannot open the database of --db: ", store.status().message()));
  }
  const absl::Time now = absl::Now();
  absl::StatusOr<absl::Time> signs_from = rotate(store->get(), OptionsFromFlags(), now);
  if (!signs_from.ok()) return FailStartup(signs_from.status().message());
  std::cout << "rotated the " << what << " of " << described << ": the new " << noun
            << " signs from "
            << absl::FormatTime("%Y-%m-%d %H:%M:%S UTC", *signs_from, absl::UTCTimeZone())
            << " (in " << absl::ToInt64Seconds(*signs_from - now)
            << " s); running trackers take it up within 5 s" << std::endl;
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace groupshare;
  DisableMutexDeadlockDetection();
  BlockTermSignals();
  std::vector<std::string> args = ParseFlagsOrExit(argc, argv, kUsage);
  // A password in --db would show in ps for the process's life (PGPASSWORD
  // or ~/.pgpass keep it out of the command line altogether).
  HidePasswordsInArgs(argc, argv);
  const bool rotate_ca = absl::GetFlag(FLAGS_rotate_peer_ca);
  const bool rotate = absl::GetFlag(FLAGS_rotate_ticket_key) || rotate_ca;
  if (absl::GetFlag(FLAGS_rotate_ticket_key) && rotate_ca) {
    return FailStartup("rotate one thing at a time: --rotate_ticket_key or --rotate_peer_ca");
  }
  if (absl::Status s = rotate ? CheckPositionalArgs(args, {}, 0, "tracker --rotate_*")
                              : CheckPositionalArgs(args, {"<tracker_info.txt>", "<tracker_no>"},
                                                    0, "tracker");
      !s.ok()) {
    return FailStartup(s.message());
  }
  RouteGrpcLogs();
  if (auto s = log::SetLevel(absl::GetFlag(FLAGS_log_level)); !s.ok()) {
    return FailStartup(s.message());
  }
  using tracker::Store;
  using tracker::TrackerOptions;
  if (rotate_ca) {
    return RotateAndSay("peer CA", "CA", [](Store* s, const TrackerOptions& o, absl::Time now) {
      return tracker::PeerAuthority::Rotate(s, tracker::CaTimes(o), now);
    });
  }
  if (rotate) {
    return RotateAndSay("ticket key", "key", [](Store* s, const TrackerOptions& o, absl::Time now) {
      return tracker::TicketKeys::Rotate(s, tracker::KeyTimes(o), now);
    });
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
      absl::GetFlag(FLAGS_password_iterations) < 1 ||
      absl::GetFlag(FLAGS_peer_certificate_ttl) < 1) {
    return FailStartup("--session_ttl must be at least 3, --ticket_ttl at least 10, and "
                "--password_iterations and --peer_certificate_ttl at least 1");
  }
  if (absl::GetFlag(FLAGS_signup) != "open" && absl::GetFlag(FLAGS_signup) != "off") {
    return FailStartup("--signup must be open or off");
  }
  const HostPort& address = (*trackers)[number - 1];

  std::string described;
  auto store = OpenStore(&described);
  if (!store.ok()) {
    return FailStartup(absl::StrCat("cannot open the database of --db: ", store.status().message()));
  }
  tracker::TrackerOptions options = OptionsFromFlags();
  // PostgreSQL's reads wait on its server: they get threads of their own,
  // one a reader connection.
  if (tracker::IsPostgresConninfo(absl::GetFlag(FLAGS_db))) {
    options.read_threads = absl::GetFlag(FLAGS_db_connections);
  }
  if (const std::string relays = absl::GetFlag(FLAGS_relays); !relays.empty()) {
    auto read = ReadTrackerInfo(relays, "relay");
    if (!read.ok()) return FailStartup(absl::StrCat("--relays: ", read.status().message()));
    for (const TrackerAddress& relay : *read) {
      options.relays.push_back(absl::StrCat(
          relay.ToString(), relay.sha256.empty() ? "" : absl::StrCat(" sha256=", relay.sha256)));
    }
  }
  auto service = tracker::TrackerServiceImpl::Create(store->get(), std::move(options));
  if (!service.ok()) return FailStartup(service.status().message());

  std::string certificate_line;
  auto credentials = TrackerCredentials(store->get(), address, &certificate_line);
  if (!credentials.ok()) return FailStartup(credentials.status().message());
  EnableReflectionAndHealth();
  grpc::ServerBuilder builder;
  builder.RegisterService(service->get());
  const ServerLimits limits{.memory_mb = absl::GetFlag(FLAGS_max_memory_mb),
                            .max_streams = absl::GetFlag(FLAGS_max_streams_per_connection),
                            .max_threads = absl::GetFlag(FLAGS_max_threads)};
  if (absl::Status s = ApplyServerLimits(builder, limits); !s.ok()) {
    return FailStartup(s.message());
  }
  builder.SetMaxReceiveMessageSize(tracker::kMaxRequestBytes);
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
            << " (database " << described << ")" << std::endl;
  certificate_line =
      absl::StrReplaceAll(certificate_line, {{"%s", absl::StrCat(address.host, ":", port)}});
  std::cout << certificate_line << std::endl;
  GS_LOG(kInfo) << certificate_line;
  GS_LOG(kDebug) << "tracker " << number << " listening on " << address.host << ":" << port;

  RunConsoleUntilStopped("the tracker");
  (*server)->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  std::cout << "tracker " << number << " stopped" << std::endl;
  return 0;
}
