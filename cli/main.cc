// client <IP>:<PORT> <tracker_info.txt>: the groupshare shell. Reads
// commands from a terminal or from piped stdin until quit or end of input.

#include <malloc.h>
#include <unistd.h>

#include <fstream>
#include <iostream>
#include <string>

#include <grpcpp/server_builder.h>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/synchronization/notification.h"
#include "cli/shell.h"
#include "cli/terminal.h"
#include "core/log.h"
#include "core/read_file.h"
#include "core/tracker_info.h"
#include "services/common/process.h"
#include "services/common/server_setup.h"
#include "services/peer/client_state.h"
#include "services/peer/node.h"
#include "services/peer/peer_identity.h"
#include "services/peer/peer_service.h"
#include "services/peer/tracker_trust.h"
#include "services/peer/tracker_client.h"

ABSL_FLAG(std::string, state_dir, "",
          "folder for this client's state and log (default: "
          "~/.groupshare/client-<IP>_<PORT>)");
ABSL_FLAG(std::string, log_level, "info", "debug, info, warning or error");
ABSL_FLAG(std::string, script, "",
          "a file of shell commands, one a line, run before any typed ones");
ABSL_FLAG(bool, headless, false,
          "read no commands from stdin: run --script (if any), then keep serving the "
          "shares until SIGTERM or SIGINT (for containers and services)");
ABSL_FLAG(std::string, port_file, "",
          "write the peer service's bound port here once listening (useful with port 0)");
ABSL_FLAG(int, no_source_timeout, 30,
          "seconds a download waits for a sharer of its missing pieces before it fails");
ABSL_FLAG(int64_t, max_upload_rate, 0,
          "KiB a second this client sends to other peers at most, over all downloads "
          "(0: no limit)");
ABSL_FLAG(int64_t, max_download_rate, 0,
          "KiB a second this client's downloads receive at most, together (0: no limit)");
ABSL_FLAG(std::string, listen, "",
          "host:port the peer service listens on, when it is not the advertised address "
          "(the first argument): behind a NAT or in a container, say. Default: the "
          "advertised address when it is a loopback one, else all interfaces at the "
          "advertised port");
ABSL_FLAG(bool, plaintext, false,
          "no TLS, for experiments on one machine: the trackers (run with --plaintext "
          "too) and the other members are reached in clear, and this client's peer service "
          "serves in clear");
ABSL_FLAG(std::string, tls_ca, "",
          "PEM roots that verify the trackers (their certificate and name), for trackers "
          "run with --tls_cert; a pin in tracker_info.txt ('host:port sha256=<hex>') "
          "still wins. Without either, a tracker's certificate is trusted on first use "
          "and held to (<state_dir>/known_trackers)");
ABSL_FLAG(int, piece_timeout, 20,
          "seconds a piece may take before it is asked of another peer");
ABSL_FLAG(int, stalled_reader_timeout, 30,
          "seconds a GetPiece call of another member may take nothing (or wait for this "
          "peer's read budget) before it is cut off");
ABSL_FLAG(int, max_memory_mb, 64,
          "memory gRPC may hold for the peer service's connections and calls; under "
          "pressure it cancels calls and closes connections");
ABSL_FLAG(int, max_active_downloads, 8,
          "downloads that run at once; the others wait their turn in the order they came");
ABSL_FLAG(int, max_peers, 16,
          "peers one download connects to at once (1-64); more holders wait in reserve and "
          "take the place of a peer that fails or is slow");

namespace {

constexpr char kUsage[] =
    "Usage: client [flags] <IP>:<PORT> <tracker_info.txt>\n"
    "\n"
    "The groupshare shell. <IP>:<PORT> is the address the other members reach this\n"
    "client's shares by (it listens there too, or where --listen says); the tracker\n"
    "checks at login whether it answers there. tracker_info.txt lists the\n"
    "trackers, one host:port a line, tried in order. Commands come from the terminal\n"
    "or from piped stdin, one a line; type help for the list.\n";

}  // namespace

int main(int argc, char** argv) {
  using namespace groupshare;
  // gRPC streams large messages much faster when glibc keeps freed memory
  // for reuse instead of mapping and unmapping it for every piece, or
  // giving back the top of the heap that the next read buffers fault in
  // again (a TLS download of 1 GiB took up to 90 thousand page faults at a
  // threshold of 8 MiB, 5-10 thousand at 64). One arena: malloc_trim gives
  // back all of its free top, where it leaves a thread arena's top alone,
  // so what a burst of calls took goes back once the process is quiet (see
  // ReturnFreeMemoryInTheBackground); two arenas held up to the threshold.
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 64 << 20);
  mallopt(M_ARENA_MAX, 1);
  DisableMutexDeadlockDetection();
  BlockTermSignals();
  std::vector<std::string> args = ParseFlagsOrExit(argc, argv, kUsage);
  if (absl::Status s = CheckPositionalArgs(args, {"<IP>:<PORT>", "<tracker_info.txt>"}, 1,
                                           "client");
      !s.ok()) {
    return FailStartup(s.message());
  }
  auto self = ParseHostPort(args[0], /*allow_port_zero=*/true);
  if (!self.ok()) return FailStartup(self.status().message());
  HostPort listen{"[::]", self->port};
  if (self->host == "localhost" || self->host == "[::1]" || self->host.rfind("127.", 0) == 0) {
    listen = *self;
  }
  if (std::string flag = absl::GetFlag(FLAGS_listen); !flag.empty()) {
    auto parsed = ParseHostPort(flag, /*allow_port_zero=*/true);
    if (!parsed.ok()) return FailStartup(absl::StrCat("--listen: ", parsed.status().message()));
    listen = *parsed;
  }
  auto trackers = ReadTrackerInfo(args[1]);
  if (!trackers.ok()) return FailStartup(trackers.status().message());
  RouteGrpcLogs();
  if (auto s = log::SetLevel(absl::GetFlag(FLAGS_log_level)); !s.ok()) {
    return FailStartup(s.message());
  }
  std::string state_dir = absl::GetFlag(FLAGS_state_dir);
  if (state_dir.empty()) {
    state_dir = DefaultStatePath(absl::StrCat(
        "client-", absl::StrReplaceAll(self->host, {{"[", ""}, {"]", ""}, {":", "_"}}),
        "_", self->port));
  }
  if (absl::Status made = MakeStateFolder(state_dir); !made.ok()) {
    return FailStartup(made.message());
  }
  if (absl::Status s = LockForLife(state_dir + "/lock"); !s.ok()) {
    return FailStartup(
        s.code() == absl::StatusCode::kFailedPrecondition
            ? absl::StrCat("another client uses the state folder '", state_dir, "' (",
                           s.message(), "); quit it, or give this one a --state_dir of its own")
            : s.message());
  }
  if (auto s = log::LogToFile(state_dir + "/client.log"); !s.ok()) return FailStartup(s.message());

  auto state = peer::ClientState::Open(state_dir + "/state.db");
  if (absl::IsDataLoss(state.status())) {
    return FailStartup(absl::StrCat(
        "the client's state is damaged (", state.status().message(),
        "); move state.db away and start again, then upload_file your shares again (the files "
        "themselves are untouched)"));
  }
  if (!state.ok()) return FailStartup(state.status().message());

  const bool plaintext = absl::GetFlag(FLAGS_plaintext);
  std::unique_ptr<peer::PeerIdentity> identity;
  std::shared_ptr<peer::TrackerTrust> trust;
  if (!plaintext) {
    auto opened = peer::PeerIdentity::Open(state_dir);
    if (!opened.ok()) return FailStartup(opened.status().message());
    identity = *std::move(opened);
    std::string ca;
    if (std::string ca_file = absl::GetFlag(FLAGS_tls_ca); !ca_file.empty()) {
      absl::StatusOr<std::string> read = ReadFileText(ca_file, "the --tls_ca file");
      if (!read.ok()) return FailStartup(read.status().message());
      if (read->empty()) {
        return FailStartup(absl::StrCat("the --tls_ca file '", ca_file, "' is empty"));
      }
      ca = *std::move(read);
    }
    auto made = peer::TrackerTrust::Create(state_dir + "/known_trackers", ca);
    if (!made.ok()) return FailStartup(made.status().message());
    trust = *std::move(made);
  } else if (!absl::GetFlag(FLAGS_tls_ca).empty()) {
    return FailStartup("--plaintext and --tls_ca exclude each other");
  }
  auto tracker = plaintext
      ? std::make_unique<peer::TrackerClient>(
            std::vector<HostPort>(trackers->begin(), trackers->end()))
      : std::make_unique<peer::TrackerClient>(*trackers, trust);
  peer::NodeOptions options;
  options.peer_address = self->ToString();
  options.download.no_source_timeout = absl::Seconds(absl::GetFlag(FLAGS_no_source_timeout));
  options.download.piece_timeout = absl::Seconds(absl::GetFlag(FLAGS_piece_timeout));
  options.identity = identity.get();
  auto relays = peer::Relays::Create(state_dir + "/known_relays", identity.get());
  if (!relays.ok()) return FailStartup(relays.status().message());
  options.relays = relays->get();
  const int max_peers = absl::GetFlag(FLAGS_max_peers);
  if (max_peers < 1 || max_peers > 64) return FailStartup("--max_peers must be from 1 to 64");
  options.download.max_peers = static_cast<uint32_t>(max_peers);
  const int active = absl::GetFlag(FLAGS_max_active_downloads);
  if (active < 1 || active > 1000) {
    return FailStartup("--max_active_downloads must be from 1 to 1000");
  }
  options.max_active_downloads = static_cast<uint32_t>(active);
  if (absl::GetFlag(FLAGS_stalled_reader_timeout) < 1) {
    return FailStartup("--stalled_reader_timeout must be at least 1");
  }
  options.serve.write_timeout = absl::Seconds(absl::GetFlag(FLAGS_stalled_reader_timeout));
  peer::Node node(tracker.get(), *std::move(state), options);
  if (absl::GetFlag(FLAGS_max_upload_rate) < 0) return FailStartup("--max_upload_rate must be >= 0");
  if (absl::GetFlag(FLAGS_max_download_rate) < 0) {
    return FailStartup("--max_download_rate must be >= 0");
  }
  node.SetMaxUploadRate(static_cast<uint64_t>(absl::GetFlag(FLAGS_max_upload_rate)) * 1024);
  node.SetMaxDownloadRate(static_cast<uint64_t>(absl::GetFlag(FLAGS_max_download_rate)) * 1024);

  EnableReflectionAndHealth();
  grpc::ServerBuilder builder;
  builder.RegisterService(node.peer_service());
  // A downloader makes a few calls at once on its connection to a peer.
  const ServerLimits limits{.memory_mb = absl::GetFlag(FLAGS_max_memory_mb), .max_streams = 32};
  if (absl::Status s = ApplyServerLimits(builder, limits); !s.ok()) {
    return FailStartup(s.message());
  }
  // Requests to a peer are small (a ticket and a list of pieces): a larger
  // one is refused. gRPC checks the size once the message is whole; until
  // then what it buffers is bounded by --max_memory_mb.
  builder.SetMaxReceiveMessageSize(peer::kMaxPeerRequestBytes);
  int port = 0;
  auto server = StartServer(
      builder, listen.ToString(), &port,
      plaintext ? grpc::InsecureServerCredentials() : identity->ServerCredentials());
  if (!server.ok()) return FailStartup(server.status().message());
  ReportServing(**server, {groupshare::peer::v1::PeerService::service_full_name()});
  // With port 0 the system chose one: advertise that.
  if (self->port == 0) node.set_peer_address(absl::StrCat(self->host, ":", port));
  // Where this client reaches its own service: a wildcard listens on
  // loopback too (IPv4's, which a dual-stack socket takes as well).
  const bool wildcard = listen.host == "[::]" || listen.host == "0.0.0.0";
  node.set_local_address(absl::StrCat(wildcard ? "127.0.0.1" : listen.host, ":", port));
  if (std::string port_file = absl::GetFlag(FLAGS_port_file); !port_file.empty()) {
    if (auto s = WriteFileAtomically(port_file, absl::StrCat(port, "\n")); !s.ok()) {
      return FailStartup(s.message());
    }
  }
  GS_LOG(kInfo) << "peer service listening on " << listen.host << ":" << port
                << (listen.host == self->host ? ""
                                              : absl::StrCat(", advertised as ", self->host));
  cli::Shell shell(*tracker, node, std::cout);
  const bool terminal = !absl::GetFlag(FLAGS_headless) && isatty(STDIN_FILENO) &&
                        isatty(STDOUT_FILENO);
  // A signal asks to stop; each loop below notices within a tick and ends
  // normally (readline gives the terminal back as it found it), and the
  // shell logs out after the command under way.
  WatchTermSignals();

  bool quit = false;
  if (std::string script = absl::GetFlag(FLAGS_script); !script.empty()) {
    std::ifstream in(script);
    if (!in) return FailStartup(absl::StrCat("cannot read the script '", script, "'"));
    std::string line;
    while (!quit && std::getline(in, line)) quit = !shell.Execute(line);
  }
  if (absl::GetFlag(FLAGS_headless)) {
    if (!quit) {
      GS_LOG(kInfo) << "headless: serving until SIGTERM";
      WaitForStop();
    }
  } else if (!quit && terminal) {
    // A large file hashes in the background, its progress in the prompt,
    // while other commands run.
    shell.set_upload_wait(absl::Milliseconds(500));
    cli::RunTerminal(shell, node, state_dir + "/history");
  } else if (!quit) {
    cli::RunPiped(shell);
  }
  shell.Close();
  node.peer_service()->Shutdown();
  (*server)->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  return 0;
}
