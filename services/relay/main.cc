// relay <relay_info.txt> <relay_no>: runs relay number N of the file on the
// address of its Nth line, and its session port beside it, until 'quit' on
// stdin, SIGINT, SIGTERM or SIGHUP.

#include <unistd.h>

#include <chrono>
#include <iostream>
#include <string>
#include <thread>

#include <grpcpp/create_channel.h>
#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_credentials_options.h>
#include <grpcpp/server_builder.h>

#include "absl/flags/flag.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/notification.h"
#include "core/certificates.h"
#include "core/log.h"
#include "core/read_file.h"
#include "core/status_macros.h"
#include "core/tracker_info.h"
#include "groupshare/tracker/v1/tracker.grpc.pb.h"
#include "services/common/process.h"
#include "services/common/server_setup.h"
#include "services/peer/tracker_trust.h"
#include "services/relay/relay_service.h"
#include "services/relay/sessions.h"

ABSL_FLAG(std::string, trackers, "",
          "tracker_info.txt of the trackers whose members this relay serves: it admits only "
          "clients with a certificate from their peer CA, which it fetches from them (a line "
          "may pin a tracker's certificate, as for clients; unpinned ones are trusted on "
          "first use). Required unless --plaintext.");
ABSL_FLAG(std::string, state_dir, "",
          "where the relay keeps its TLS key and certificate, made at the first start, and "
          "the peer CA certificates (default: ~/.groupshare/relay-<relay_no>)");
ABSL_FLAG(int, session_port, 0,
          "port of the session port, on the relay's host; 0: the relay's port + 1");
ABSL_FLAG(int, max_sessions, 100, "sessions spliced or waiting at once, in all");
ABSL_FLAG(int, max_sessions_per_user, 10, "sessions one member may have asked for at once");
ABSL_FLAG(int, max_holders, 1000, "clients waiting here for sessions at once, in all");
ABSL_FLAG(int, max_holders_per_user, 16, "clients of one member waiting here at once");
ABSL_FLAG(double, session_rate_mbit, 0,
          "megabits per second each way of one session; 0: no cap");
ABSL_FLAG(double, total_rate_mbit, 0, "megabits per second over every session; 0: no cap");
ABSL_FLAG(int, idle_timeout, 300, "seconds after which a session that moved nothing ends");
ABSL_FLAG(int, max_memory_mb, 64, "memory gRPC may hold for the relay's calls");
ABSL_FLAG(std::string, log_level, "info", "debug, info, warning or error");
ABSL_FLAG(bool, plaintext, false,
          "serve without TLS, for experiments on one machine: anybody may use the relay, and "
          "clients must be given --plaintext too");
ABSL_FLAG(std::string, port_file, "",
          "write the bound port and session port here once listening (useful with port 0)");

namespace {

constexpr char kUsage[] =
    "Usage: relay [flags] <relay_info.txt> <relay_no>\n"
    "\n"
    "Lets members reach a member that accepts no inbound connection (behind a NAT or a\n"
    "firewall). Such a client waits at a relay; a member that cannot reach it asks the\n"
    "relay for a session, and the two run their own mutual TLS through it: the relay\n"
    "moves encrypted bytes only. relay_info.txt holds one relay a line (host:port, or\n"
    "host:port sha256=<hex> to pin its certificate); give the same file to the trackers\n"
    "(--relays) so that they tell clients of it.\n"
    "\n"
    "Example:\n"
    "  relay --trackers tracker_info.txt relay_info.txt 1\n";

namespace gx = grpc::experimental;

// The relay's own TLS key and certificate, made at the first start.
absl::StatusOr<groupshare::KeyAndCert> LoadIdentity(const std::string& dir,
                                                    const std::string& host) {
  using namespace groupshare;
  const std::string key_path = dir + "/relay-key.pem", cert_path = dir + "/relay-cert.pem";
  KeyAndCert identity;
  if (auto key = ReadFileText(key_path, "the relay key"); key.ok()) {
    auto cert = ReadFileText(cert_path, "the relay certificate");
    if (cert.ok() && KeyMatches(*key, *cert)) return KeyAndCert{*key, *cert};
  }
  ASSIGN_OR_RETURN(identity,
                   SelfSigned(ServerCertificateRequest("groupshare-relay", host, absl::Now())));
  RETURN_IF_ERROR(WriteFileAtomically(key_path, identity.key_pem, 0600));
  RETURN_IF_ERROR(WriteFileAtomically(cert_path, identity.cert_pem));
  return identity;
}

// Fetches the trackers' peer CA certificates into `ca_path` now and then:
// the relay's TLS reads them from there.
class PeerCaFollower {
 public:
  PeerCaFollower(std::vector<groupshare::TrackerAddress> trackers,
                 std::shared_ptr<groupshare::peer::TrackerTrust> trust, std::string ca_path)
      : trackers_(std::move(trackers)), trust_(std::move(trust)), ca_path_(std::move(ca_path)) {}

  ~PeerCaFollower() {
    stop_.Notify();
    if (thread_.joinable()) thread_.join();
  }

  // Fetches once (true when a tracker answered), then every minute.
  bool Start() {
    const bool fetched = Fetch();
    thread_ = std::thread([this] {
      while (!stop_.WaitForNotificationWithTimeout(absl::Seconds(fetched_ ? 60 : 5))) Fetch();
    });
    return fetched;
  }

 private:
  bool Fetch() {
    using namespace groupshare;
    for (const TrackerAddress& tracker : trackers_) {
      auto stub = tracker::v1::TrackerService::NewStub(
          grpc::CreateChannel(tracker.ToString(), trust_->CredentialsFor(tracker)));
      grpc::ClientContext context;
      context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
      tracker::v1::GetPeerAuthoritiesResponse response;
      grpc::Status status =
          stub->GetPeerAuthorities(&context, tracker::v1::GetPeerAuthoritiesRequest(), &response);
      if (!status.ok() || response.peer_ca_certificates().empty()) {
        std::string refusal = trust_->Refusal(tracker.ToString());
        GS_LOG(kWarning) << "tracker " << tracker.ToString() << " gave no peer CA: "
                         << (refusal.empty() ? status.error_message() : refusal);
        continue;
      }
      const std::string pem = absl::StrJoin(response.peer_ca_certificates(), "");
      if (pem != last_) {
        if (absl::Status s = WriteFileAtomically(ca_path_, pem); !s.ok()) {
          GS_LOG(kWarning) << s.message();
          return false;
        }
        if (!last_.empty()) GS_LOG(kInfo) << "the trackers' peer CA certificates changed";
        last_ = pem;
      }
      fetched_ = true;
      return true;
    }
    return false;
  }

  const std::vector<groupshare::TrackerAddress> trackers_;
  const std::shared_ptr<groupshare::peer::TrackerTrust> trust_;
  const std::string ca_path_;
  std::string last_;
  bool fetched_ = false;
  absl::Notification stop_;
  std::thread thread_;
};

}  // namespace

int main(int argc, char** argv) {
  using namespace groupshare;
  DisableMutexDeadlockDetection();
  BlockTermSignals();
  std::vector<std::string> args = ParseFlagsOrExit(argc, argv, kUsage);
  if (absl::Status s = CheckPositionalArgs(args, {"<relay_info.txt>", "<relay_no>"}, 0, "relay");
      !s.ok()) {
    return FailStartup(s.message());
  }
  RouteGrpcLogs();
  if (auto s = log::SetLevel(absl::GetFlag(FLAGS_log_level)); !s.ok()) {
    return FailStartup(s.message());
  }
  auto relays = ReadTrackerInfo(args[0], "relay");
  if (!relays.ok()) return FailStartup(relays.status().message());
  int number = 0;
  if (!absl::SimpleAtoi(args[1], &number) || number < 1 ||
      number > static_cast<int>(relays->size())) {
    return FailStartup(absl::StrCat("relay_no '", args[1], "' must be a number from 1 to ",
                                    relays->size(), " (the lines of ", args[0], ")"));
  }
  for (int limit : {absl::GetFlag(FLAGS_max_sessions), absl::GetFlag(FLAGS_max_sessions_per_user),
                    absl::GetFlag(FLAGS_max_holders), absl::GetFlag(FLAGS_max_holders_per_user),
                    absl::GetFlag(FLAGS_idle_timeout), absl::GetFlag(FLAGS_max_memory_mb)}) {
    if (limit < 1) return FailStartup("every --max_* limit and --idle_timeout must be at least 1");
  }
  if (absl::GetFlag(FLAGS_session_rate_mbit) < 0 || absl::GetFlag(FLAGS_total_rate_mbit) < 0) {
    return FailStartup("--session_rate_mbit and --total_rate_mbit must not be negative");
  }
  const bool plaintext = absl::GetFlag(FLAGS_plaintext);
  if (!plaintext && absl::GetFlag(FLAGS_trackers).empty()) {
    return FailStartup(
        "--trackers is required: the relay admits only members, by the trackers' peer CA");
  }
  const TrackerAddress& address = (*relays)[number - 1];
  std::string dir = absl::GetFlag(FLAGS_state_dir);
  if (dir.empty()) dir = DefaultStatePath(absl::StrCat("relay-", number));
  if (absl::Status made = MakeStateFolder(dir); !made.ok()) {
    return FailStartup(made.message());
  }

  std::shared_ptr<grpc::ServerCredentials> credentials = grpc::InsecureServerCredentials();
  std::unique_ptr<PeerCaFollower> follower;
  std::string certificate_line;
  if (!plaintext) {
    auto trackers = ReadTrackerInfo(absl::GetFlag(FLAGS_trackers));
    if (!trackers.ok()) return FailStartup(trackers.status().message());
    auto trust = peer::TrackerTrust::Create(dir + "/known_trackers");
    if (!trust.ok()) return FailStartup(trust.status().message());
    auto identity = LoadIdentity(dir, address.host);
    if (!identity.ok()) return FailStartup(identity.status().message());
    auto info = ReadCertificate(identity->cert_pem);
    if (!info.ok()) return FailStartup(info.status().message());
    certificate_line = absl::StrCat("TLS certificate sha256=", info->sha256,
                                    "; pin it in relay_info.txt: %s sha256=", info->sha256);
    const std::string ca_path = dir + "/peer-ca.pem";
    follower = std::make_unique<PeerCaFollower>(*std::move(trackers), *std::move(trust), ca_path);
    if (!follower->Start()) {
      std::cout << "warning: no tracker gave its peer CA yet; members are refused until one "
                   "does (tried every 5 s)"
                << std::endl;
    }
    auto files = std::make_shared<gx::FileWatcherCertificateProvider>(
        dir + "/relay-key.pem", dir + "/relay-cert.pem", ca_path, /*refresh_interval_sec=*/1);
    gx::TlsServerCredentialsOptions options(files);
    options.watch_root_certs();
    options.watch_identity_key_cert_pairs();
    options.set_cert_request_type(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
    credentials = gx::TlsServerCredentials(options);
  }

  relay::SessionLimits limits;
  limits.max_sessions = absl::GetFlag(FLAGS_max_sessions);
  limits.max_sessions_per_user = absl::GetFlag(FLAGS_max_sessions_per_user);
  limits.splice.pair_rate =
      static_cast<uint64_t>(absl::GetFlag(FLAGS_session_rate_mbit) * 1e6 / 8);
  limits.splice.total_rate = static_cast<uint64_t>(absl::GetFlag(FLAGS_total_rate_mbit) * 1e6 / 8);
  limits.splice.idle_timeout = absl::Seconds(absl::GetFlag(FLAGS_idle_timeout));
  relay::Sessions sessions(limits);
  const int wanted_session_port =
      absl::GetFlag(FLAGS_session_port) != 0 ? absl::GetFlag(FLAGS_session_port)
      : address.port != 0                    ? address.port + 1
                                             : 0;
  auto session_port =
      sessions.Listen(HostPort{address.host, wanted_session_port}.ToString());
  if (!session_port.ok()) return FailStartup(session_port.status().message());

  relay::RelayOptions options;
  options.session_address = HostPort{address.host, *session_port}.ToString();
  options.max_holders = absl::GetFlag(FLAGS_max_holders);
  options.max_holders_per_user = absl::GetFlag(FLAGS_max_holders_per_user);
  options.plaintext = plaintext;
  relay::RelayServiceImpl service(&sessions, options);

  EnableReflectionAndHealth();
  grpc::ServerBuilder builder;
  builder.RegisterService(&service);
  // A waiting client is known to be gone within a minute.
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, 30000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 20000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 10000);
  if (absl::Status s = ApplyServerLimits(builder, {.memory_mb = absl::GetFlag(FLAGS_max_memory_mb)});
      !s.ok()) {
    return FailStartup(s.message());
  }
  int port = 0;
  auto server = StartServer(builder, address.ToString(), &port, credentials);
  if (!server.ok()) return FailStartup(server.status().message());
  ReportServing(**server, {relay::v1::RelayService::service_full_name()});
  if (std::string port_file = absl::GetFlag(FLAGS_port_file); !port_file.empty()) {
    if (auto s = WriteFileAtomically(port_file, absl::StrCat(port, " ", *session_port, "\n"));
        !s.ok()) {
      return FailStartup(s.message());
    }
  }
  std::cout << "relay " << number << " listening on " << address.host << ":" << port
            << ", sessions on " << options.session_address
            << (plaintext ? " (plaintext: anybody may use it)" : "") << std::endl;
  if (!certificate_line.empty()) {
    const std::string line = absl::StrReplaceAll(
        certificate_line, {{"%s", HostPort{address.host, port}.ToString()}});
    std::cout << line << std::endl;
    GS_LOG(kInfo) << line;
  }

  RunConsoleUntilStopped("the relay");
  service.Stop();
  (*server)->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  std::cout << "relay " << number << " stopped" << std::endl;
  return 0;
}
