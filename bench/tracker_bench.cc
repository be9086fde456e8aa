// Load generator for the tracker: keeps N calls in flight over C
// connections with gRPC's asynchronous API, checks every answer's status,
// and prints one line per run:
//   ListFiles100 in_flight=64 seconds=10.0 requests=101234 per_s=10123 errors=0
//     p50_ms=5.8 p99_ms=14.2 p999_ms=21.0
// It prepares what it needs first: users, a group of 100 files and one of
// one file, a login for each connection.
//
//   tracker_bench --target 127.0.0.1:PORT [--calls Check,ListFiles100,ListFiles1,
//                 GetFilePeers,KeepAlive] [--in_flight 64] [--connections 4] [--seconds 10]
// Check is grpc.health.v1.Health/Check, answered by gRPC itself: the same
// connections and streams with no work of the tracker's, the reference line
// for the others (a ratio to it is steadier than calls per second from one
// machine to another).
//                 [--login_storm 32]
// --login_storm runs that many threads of wrong-password logins during each
// run, to see what a storm of guesses does to other users' calls.

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <sstream>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "bench/process_cpu.h"
#include "groupshare/tracker/v1/tracker.grpc.pb.h"

ABSL_FLAG(std::string, target, "", "host:port of the tracker");
ABSL_FLAG(std::string, cacert, "",
          "the certificate the tracker serves (it writes it beside its database); "
          "plaintext without it, for a tracker run with --plaintext");
ABSL_FLAG(std::string, calls, "Check,ListFiles100,ListFiles1,GetFilePeers,KeepAlive",
          "the calls to measure, one run each");
ABSL_FLAG(int, in_flight, 64, "calls kept in flight");
ABSL_FLAG(int, connections, 4, "connections (channels) the calls are spread over");
ABSL_FLAG(double, seconds, 10, "length of each run (bounded)");
ABSL_FLAG(int, login_storm, 0, "threads logging in with a wrong password during each run");
ABSL_FLAG(std::string, prefix, "bench", "prefix of the users and groups it makes");
ABSL_FLAG(int, server_pid, 0,
          "the tracker's process id: each line then gives the CPU time the tracker "
          "spent per call (steadier than the rate on a shared machine)");
ABSL_FLAG(int, handshakes, 0,
          "instead of the load: make this many new connections one after another, each "
          "answering one Check, and print the time each took to set up and answer");

namespace {

namespace tv1 = ::groupshare::tracker::v1;
using ::groupshare::bench::CpuSecondsOf;
using Stub = tv1::TrackerService::Stub;

[[noreturn]] void Die(const std::string& what, const grpc::Status& s) {
  std::fprintf(stderr, "error: %s: %s\n", what.c_str(), s.error_message().c_str());
  std::exit(1);
}

template <typename Req, typename Resp>
Resp Sync(Stub& stub, grpc::Status (Stub::*rpc)(grpc::ClientContext*, const Req&, Resp*),
          const Req& req, const std::string& token, const std::string& what,
          bool may_exist = false) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  if (!token.empty()) ctx.AddMetadata("authorization", "Bearer " + token);
  Resp resp;
  grpc::Status s = (stub.*rpc)(&ctx, req, &resp);
  if (!s.ok() && !(may_exist && s.error_code() == grpc::StatusCode::ALREADY_EXISTS)) {
    Die(what, s);
  }
  return resp;
}

std::string Login(Stub& stub, const std::string& user, const std::string& address) {
  tv1::LoginRequest req;
  req.set_user_id(user);
  req.set_password("bench-password");
  req.set_peer_address(address);
  req.set_client_id(absl::StrCat("c", address.substr(address.rfind(':') + 1)));
  return Sync(stub, &Stub::Login, req, "", "Login").token();
}

tv1::FileInfo File(const std::string& name) {
  tv1::FileInfo f;
  f.set_name(name);
  f.set_size(3 << 20);
  f.set_piece_size(1 << 20);
  f.set_sha1(std::string(40, 'a'));
  for (int i = 0; i < 3; ++i) f.add_piece_sha1(std::string(40, 'b'));
  return f;
}

// Users, groups and files, made once (a second run finds them).
void Prepare(Stub& stub, const std::string& prefix) {
  for (const std::string& user : {prefix + "-owner", prefix + "-member"}) {
    tv1::CreateUserRequest req;
    req.set_user_id(user);
    req.set_password("bench-password");
    Sync(stub, &Stub::CreateUser, req, "", "CreateUser", true);
  }
  const std::string owner = Login(stub, prefix + "-owner", "127.0.0.1:1");
  for (int files : {1, 100}) {
    tv1::CreateGroupRequest group;
    group.set_group_id(absl::StrCat(prefix, "-", files));
    Sync(stub, &Stub::CreateGroup, group, owner, "CreateGroup", true);
    for (int i = 0; i < files; ++i) {
      tv1::UploadFileRequest up;
      up.set_group_id(group.group_id());
      *up.mutable_file() = File(absl::StrCat("file-", i, ".bin"));
      Sync(stub, &Stub::UploadFile, up, owner, "UploadFile");
    }
  }
}

struct Call {
  grpc::ClientContext ctx;
  grpc::Status status;
  absl::Time start;
  int channel = 0;
  // One of these is used.
  tv1::ListFilesResponse list_files;
  tv1::GetFilePeersResponse peers;
  tv1::KeepAliveResponse keep_alive;
  std::unique_ptr<grpc::ClientAsyncResponseReader<tv1::ListFilesResponse>> r1;
  std::unique_ptr<grpc::ClientAsyncResponseReader<tv1::GetFilePeersResponse>> r2;
  std::unique_ptr<grpc::ClientAsyncResponseReader<tv1::KeepAliveResponse>> r3;
  grpc::ByteBuffer check;
  std::unique_ptr<grpc::GenericClientAsyncResponseReader> r4;
};

struct Result {
  int64_t requests = 0;
  int64_t errors = 0;
  std::string first_error;
  std::vector<double> ms;
};

Result Run(const std::string& name, std::vector<std::unique_ptr<Stub>>& stubs,
           std::vector<std::unique_ptr<grpc::GenericStub>>& generic,
           const std::vector<std::string>& tokens, const std::string& prefix, int in_flight,
           absl::Duration length) {
  grpc::CompletionQueue cq;
  tv1::ListFilesRequest list100, list1;
  list100.set_group_id(prefix + "-100");
  list1.set_group_id(prefix + "-1");
  tv1::GetFilePeersRequest peers;
  peers.set_group_id(prefix + "-100");
  peers.set_file_name("file-7.bin");
  tv1::KeepAliveRequest keep;

  auto start_call = [&](int channel) {
    auto* c = new Call;
    c->channel = channel;
    c->ctx.AddMetadata("authorization", "Bearer " + tokens[channel]);
    c->ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    c->start = absl::Now();
    Stub& stub = *stubs[channel];
    if (name == "ListFiles100" || name == "ListFiles1") {
      c->r1 = stub.AsyncListFiles(&c->ctx, name == "ListFiles1" ? list1 : list100, &cq);
      c->r1->Finish(&c->list_files, &c->status, c);
    } else if (name == "GetFilePeers") {
      c->r2 = stub.AsyncGetFilePeers(&c->ctx, peers, &cq);
      c->r2->Finish(&c->peers, &c->status, c);
    } else if (name == "Check") {
      // An empty HealthCheckRequest (a message of no bytes): the whole server.
      grpc::Slice none("");
      const grpc::ByteBuffer empty(&none, 1);
      c->r4 = generic[channel]->PrepareUnaryCall(&c->ctx, "/grpc.health.v1.Health/Check", empty,
                                                 &cq);
      c->r4->StartCall();
      c->r4->Finish(&c->check, &c->status, c);
    } else {
      c->r3 = stub.AsyncKeepAlive(&c->ctx, keep, &cq);
      c->r3->Finish(&c->keep_alive, &c->status, c);
    }
  };

  Result result;
  const absl::Time end = absl::Now() + length;
  for (int i = 0; i < in_flight; ++i) start_call(i % static_cast<int>(stubs.size()));
  int outstanding = in_flight;
  void* tag;
  bool ok;
  while (outstanding > 0 && cq.Next(&tag, &ok)) {
    std::unique_ptr<Call> c(static_cast<Call*>(tag));
    --outstanding;
    ++result.requests;
    result.ms.push_back(absl::ToDoubleMilliseconds(absl::Now() - c->start));
    bool good = c->status.ok();
    if (good && name == "ListFiles100") good = c->list_files.files_size() == 100;
    if (good && name == "ListFiles1") good = c->list_files.files_size() == 1;
    if (!good) {
      if (result.errors++ == 0) {
        result.first_error = c->status.ok() ? "a wrong answer" : c->status.error_message();
      }
    }
    if (absl::Now() < end) {
      start_call(c->channel);
      ++outstanding;
    }
  }
  cq.Shutdown();
  while (cq.Next(&tag, &ok)) {
  }
  return result;
}

double Percentile(std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  size_t i = std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())));
  std::nth_element(v.begin(), v.begin() + static_cast<long>(i), v.end());
  return v[i];
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "tracker_bench --target host:port [--calls ...] [--in_flight N] [--connections N] "
      "[--seconds S] [--login_storm N]: measures a tracker's calls per second and latency");
  absl::ParseCommandLine(argc, argv);
  const std::string target = absl::GetFlag(FLAGS_target);
  const std::string prefix = absl::GetFlag(FLAGS_prefix);
  const int connections = std::clamp(absl::GetFlag(FLAGS_connections), 1, 64);
  const int in_flight = std::clamp(absl::GetFlag(FLAGS_in_flight), 1, 4096);
  const absl::Duration length =
      absl::Seconds(std::clamp(absl::GetFlag(FLAGS_seconds), 0.5, 300.0));
  if (target.empty()) {
    std::fprintf(stderr, "error: --target host:port is required\n");
    return 2;
  }
  std::shared_ptr<grpc::ChannelCredentials> credentials = grpc::InsecureChannelCredentials();
  if (const std::string cacert = absl::GetFlag(FLAGS_cacert); !cacert.empty()) {
    std::ifstream in(cacert);
    std::stringstream pem;
    pem << in.rdbuf();
    grpc::SslCredentialsOptions tls;
    tls.pem_root_certs = pem.str();
    credentials = grpc::SslCredentials(tls);
  }
  if (const int handshakes = std::clamp(absl::GetFlag(FLAGS_handshakes), 0, 100000);
      handshakes > 0) {
    // Connection set-up: TCP, then TLS when --cacert, then HTTP/2 and a call.
    Result r;
    for (int i = 0; i < handshakes; ++i) {
      grpc::ChannelArguments args;
      args.SetInt("grpc.use_local_subchannel_pool", 1);
      const absl::Time start = absl::Now();
      auto channel = grpc::CreateCustomChannel(target, credentials, args);
      grpc::GenericStub stub(channel);
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
      grpc::Slice none("");
      grpc::ByteBuffer empty(&none, 1), reply;
      grpc::Status status;
      absl::Notification done;
      stub.UnaryCall(&ctx, "/grpc.health.v1.Health/Check", grpc::StubOptions(), &empty, &reply,
                     [&](grpc::Status s) {
                       status = std::move(s);
                       done.Notify();
                     });
      done.WaitForNotification();
      ++r.requests;
      if (!status.ok()) {
        if (r.errors++ == 0) r.first_error = status.error_message();
        continue;
      }
      r.ms.push_back(absl::ToDoubleMilliseconds(absl::Now() - start));
    }
    std::printf("handshake tls=%s connections=%lld errors=%lld p50_ms=%.2f p99_ms=%.2f\n",
                absl::GetFlag(FLAGS_cacert).empty() ? "off" : "on",
                static_cast<long long>(r.requests), static_cast<long long>(r.errors),
                Percentile(r.ms, 0.5), Percentile(r.ms, 0.99));
    if (r.errors > 0) std::fprintf(stderr, "first error: %s\n", r.first_error.c_str());
    return r.errors > 0 ? 1 : 0;
  }
  std::vector<std::unique_ptr<Stub>> stubs;
  std::vector<std::unique_ptr<grpc::GenericStub>> generic;
  for (int i = 0; i < connections; ++i) {
    grpc::ChannelArguments args;
    args.SetInt("grpc.channel_id", i);  // a connection each, not one shared
    auto channel = grpc::CreateCustomChannel(target, credentials, args);
    stubs.push_back(tv1::TrackerService::NewStub(channel));
    generic.push_back(std::make_unique<grpc::GenericStub>(channel));
  }
  Prepare(*stubs[0], prefix);
  // The member logs in once per connection: a client each.
  std::vector<std::string> tokens;
  {
    tv1::JoinGroupRequest join;
    const std::string owner = Login(*stubs[0], prefix + "-owner", "127.0.0.1:1");
    const std::string member = Login(*stubs[0], prefix + "-member", "127.0.0.1:2");
    for (const char* g : {"-1", "-100"}) {
      join.set_group_id(prefix + g);
      Sync(*stubs[0], &Stub::JoinGroup, join, member, "JoinGroup", true);
      tv1::AcceptRequestRequest accept;
      accept.set_group_id(prefix + g);
      accept.set_user_id(prefix + "-member");
      Sync(*stubs[0], &Stub::AcceptRequest, accept, owner, "AcceptRequest", true);
    }
    for (int i = 0; i < connections; ++i) {
      tokens.push_back(Login(*stubs[i], prefix + "-member", absl::StrCat("127.0.0.1:", 100 + i)));
    }
  }

  const std::vector<std::string> calls = absl::StrSplit(absl::GetFlag(FLAGS_calls), ',');
  for (const std::string& name : calls) {
    if (name != "Check" && name != "ListFiles100" && name != "ListFiles1" &&
        name != "GetFilePeers" && name != "KeepAlive") {
      std::fprintf(stderr, "error: unknown call '%s'\n", name.c_str());
      return 2;
    }
    std::atomic<bool> storming{true};
    std::atomic<int64_t> guesses{0};
    std::vector<std::thread> storm;
    for (int i = 0; i < absl::GetFlag(FLAGS_login_storm); ++i) {
      storm.emplace_back([&, i] {
        auto stub = tv1::TrackerService::NewStub(
            grpc::CreateChannel(target, credentials));
        for (int n = 0; storming && n < 100000; ++n) {
          grpc::ClientContext ctx;
          ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
          tv1::LoginRequest req;
          req.set_user_id(absl::StrCat("guess-", i));
          req.set_password("wrong-password");
          tv1::LoginResponse resp;
          stub->Login(&ctx, req, &resp).ok();
          ++guesses;
        }
      });
    }
    const int server_pid = absl::GetFlag(FLAGS_server_pid);
    const double server_cpu_before = server_pid > 0 ? CpuSecondsOf(server_pid) : 0;
    const absl::Time start = absl::Now();
    Result r = Run(name, stubs, generic, tokens, prefix, in_flight, length);
    const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
    std::string server_cpu;
    if (server_pid > 0 && r.requests > 0) {
      server_cpu = absl::StrFormat(" server_cpu_us_per_call=%.1f",
                                   (CpuSecondsOf(server_pid) - server_cpu_before) * 1e6 /
                                       static_cast<double>(r.requests));
    }
    storming = false;
    for (auto& t : storm) t.join();
    std::printf(
        "%s in_flight=%d connections=%d seconds=%.1f requests=%lld per_s=%.0f errors=%lld "
        "p50_ms=%.2f p99_ms=%.2f p999_ms=%.2f%s%s\n",
        name.c_str(), in_flight, connections, seconds, static_cast<long long>(r.requests),
        static_cast<double>(r.requests) / seconds, static_cast<long long>(r.errors),
        Percentile(r.ms, 0.5), Percentile(r.ms, 0.99), Percentile(r.ms, 0.999),
        server_cpu.c_str(),
        storm.empty() ? "" : absl::StrCat(" login_guesses=", guesses.load()).c_str());
    if (r.errors > 0) std::printf("  first error: %s\n", r.first_error.c_str());
    std::fflush(stdout);
  }
  return 0;
}
