// Two attacks made of well-formed calls, for bench/hostile_figures.sh. Each
// runs for --seconds (bounded), then prints what it did in one line.
//
//   hostile_calls signups --target 127.0.0.1:PORT [--callers 300]
//                 [--connections 10] [--seconds 15]
//     --callers threads sign up new accounts, each again as soon as it is
//     answered: a sign-up storm. Prints the answers by status code.
//
//   hostile_calls stalled --target 127.0.0.1:PORT --user bob --password pw
//                 --group g --file f.bin [--calls 48] [--from 127.0.0.2]
//                 [--seconds 20]
//     Logs in as the user (a member whose ticket was copied), takes its
//     ticket for the file's first sharer, and opens --calls GetPiece calls
//     for the file's first 64 pieces from the address --from, reading
//     nothing, and holds them.

#include <arpa/inet.h>
#include <grpcpp/create_channel_posix.h>
#include <grpcpp/grpcpp.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "groupshare/peer/v1/peer.grpc.pb.h"
#include "groupshare/tracker/v1/tracker.grpc.pb.h"

ABSL_FLAG(std::string, target, "", "host:port of the tracker");
ABSL_FLAG(int, callers, 300, "signups: threads signing up at once");
ABSL_FLAG(int, connections, 10, "signups: connections they share");
ABSL_FLAG(double, seconds, 15, "how long the attack lasts (at most 120)");
ABSL_FLAG(std::string, user, "", "stalled: the member whose ticket is used");
ABSL_FLAG(std::string, password, "", "stalled: its password");
ABSL_FLAG(std::string, group, "g", "stalled: the group");
ABSL_FLAG(std::string, file, "", "stalled: the file's name in the group");
ABSL_FLAG(int, calls, 48, "stalled: GetPiece calls opened");
ABSL_FLAG(std::string, from, "127.0.0.2", "stalled: the loopback address they come from");

namespace {

namespace tv1 = ::groupshare::tracker::v1;
namespace pv1 = ::groupshare::peer::v1;

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "error: %s\n", what.c_str());
  std::exit(1);
}

absl::Duration Length() {
  return absl::Seconds(std::min(absl::GetFlag(FLAGS_seconds), 120.0));
}

std::shared_ptr<grpc::Channel> OwnChannel(const std::string& target) {
  grpc::ChannelArguments args;
  args.SetInt("grpc.use_local_subchannel_pool", 1);
  return grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args);
}

void Signups() {
  const int callers = absl::GetFlag(FLAGS_callers);
  std::vector<std::unique_ptr<tv1::TrackerService::Stub>> stubs;
  for (int c = 0; c < std::max(1, absl::GetFlag(FLAGS_connections)); ++c) {
    stubs.push_back(tv1::TrackerService::NewStub(OwnChannel(absl::GetFlag(FLAGS_target))));
  }
  const absl::Time end = absl::Now() + Length();
  absl::Mutex mu;
  std::map<std::string, int> codes;
  std::vector<std::thread> threads;
  const std::string run = absl::StrCat(absl::ToUnixMicros(absl::Now()));
  for (int t = 0; t < callers; ++t) {
    threads.emplace_back([&, t] {
      std::map<std::string, int> mine;
      for (int i = 0; i < 100000 && absl::Now() < end; ++i) {
        grpc::ClientContext ctx;
        ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
        tv1::CreateUserRequest req;
        req.set_user_id(absl::StrCat("storm-", run, "-", t, "-", i));
        req.set_password("storm-password");
        tv1::CreateUserResponse resp;
        const grpc::Status s = stubs[t % stubs.size()]->CreateUser(&ctx, req, &resp);
        ++mine[s.ok() ? "OK" : absl::StrCat("code", s.error_code())];
      }
      absl::MutexLock lock(&mu);
      for (const auto& [code, n] : mine) codes[code] += n;
    });
  }
  for (std::thread& t : threads) t.join();
  std::string line = "signups";
  for (const auto& [code, n] : codes) absl::StrAppend(&line, " ", code, "=", n);
  std::printf("%s\n", line.c_str());
}

// A channel to `target` (127.0.0.1:PORT) on a connection from `source`.
std::shared_ptr<grpc::Channel> ChannelFrom(const std::string& source, const std::string& target) {
  const size_t colon = target.rfind(':');
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in from{}, to{};
  from.sin_family = to.sin_family = AF_INET;
  to.sin_port = htons(static_cast<uint16_t>(std::stoi(target.substr(colon + 1))));
  if (fd < 0 || inet_pton(AF_INET, source.c_str(), &from.sin_addr) != 1 ||
      inet_pton(AF_INET, target.substr(0, colon).c_str(), &to.sin_addr) != 1 ||
      bind(fd, reinterpret_cast<sockaddr*>(&from), sizeof(from)) != 0 ||
      connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof(to)) != 0) {
    Die(absl::StrCat("cannot connect to ", target, " from ", source));
  }
  // No window growth: a caller that reads nothing keeps its calls open, as
  // a stalled reader does, rather than taking in whole pieces unread.
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  return grpc::CreateCustomInsecureChannelFromFd(target, fd, args);
}

void Stalled() {
  auto tracker = tv1::TrackerService::NewStub(OwnChannel(absl::GetFlag(FLAGS_target)));
  grpc::ClientContext login_ctx;
  tv1::LoginRequest login;
  login.set_user_id(absl::GetFlag(FLAGS_user));
  login.set_password(absl::GetFlag(FLAGS_password));
  login.set_client_id("copied-ticket");
  tv1::LoginResponse session;
  if (grpc::Status s = tracker->Login(&login_ctx, login, &session); !s.ok()) {
    Die("login: " + s.error_message());
  }
  grpc::ClientContext peers_ctx;
  peers_ctx.AddMetadata("authorization", "Bearer " + session.token());
  tv1::GetFilePeersRequest peers_req;
  peers_req.set_group_id(absl::GetFlag(FLAGS_group));
  peers_req.set_file_name(absl::GetFlag(FLAGS_file));
  tv1::GetFilePeersResponse peers;
  if (grpc::Status s = tracker->GetFilePeers(&peers_ctx, peers_req, &peers); !s.ok()) {
    Die("GetFilePeers: " + s.error_message());
  }
  if (peers.peers_size() == 0) Die("the file has no sharer online");
  pv1::GetPieceRequest all;
  all.set_ticket(peers.peers(0).ticket());
  all.set_group_id(absl::GetFlag(FLAGS_group));
  all.set_file_sha1(peers.file().sha1());
  const uint64_t pieces =
      (peers.file().size() + peers.file().piece_size() - 1) / peers.file().piece_size();
  for (uint32_t p = 0; p < std::min<uint64_t>(pieces, 64); ++p) all.add_pieces(p);

  // 24 calls a connection, within a peer's 32 streams on one.
  const int calls = absl::GetFlag(FLAGS_calls);
  std::vector<std::unique_ptr<pv1::PeerService::Stub>> stubs;
  for (int c = 0; c < (calls + 23) / 24; ++c) {
    stubs.push_back(pv1::PeerService::NewStub(
        ChannelFrom(absl::GetFlag(FLAGS_from), peers.peers(0).address())));
  }
  std::vector<std::unique_ptr<grpc::ClientContext>> contexts;
  std::vector<std::unique_ptr<grpc::ClientReader<pv1::PieceChunk>>> readers;
  for (int i = 0; i < calls; ++i) {
    contexts.push_back(std::make_unique<grpc::ClientContext>());
    readers.push_back(stubs[i / 24]->GetPiece(contexts.back().get(), all));
  }
  std::printf("stalled calls=%d to %s from %s\n", calls, peers.peers(0).address().c_str(),
              absl::GetFlag(FLAGS_from).c_str());
  std::fflush(stdout);
  absl::SleepFor(Length());  // the attack lasts this long
  for (auto& ctx : contexts) ctx->TryCancel();
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "hostile_calls signups|stalled --target HOST:PORT [flags]; see the file's head");
  std::vector<char*> args = absl::ParseCommandLine(argc, argv);
  if (args.size() != 2 || absl::GetFlag(FLAGS_target).empty()) {
    Die("usage: hostile_calls signups|stalled --target HOST:PORT [flags]");
  }
  const std::string mode = args[1];
  if (mode == "signups") {
    Signups();
  } else if (mode == "stalled") {
    Stalled();
  } else {
    Die("unknown attack " + mode + "; signups or stalled");
  }
  return 0;
}
