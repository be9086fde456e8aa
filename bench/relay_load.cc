// relay_load: the relay under load. Signs up members at a tracker, makes
// --holders of their clients wait at the relay, then opens --sessions
// sessions at once and pushes --mib MiB through each, from the member's end
// to the holder's. Prints the relay's threads and resident memory (from
// /proc/<--relay_pid>) idle with every holder waiting and at the peak of
// the sessions, the sessions' throughput, and the relay's CPU time per GiB
// it moved:
//   relay idle holders=200 threads=12 rss_mib=20.1
//   relay busy holders=200 sessions=20 threads=12 peak_rss_mib=27.0 mib_per_s=950.2 cpu_s_per_gib=1.10
// Run by bench/relay_bench.sh; every address is loopback.
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/create_channel.h>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "bench/process_cpu.h"
#include "groupshare/relay/v1/relay.grpc.pb.h"
#include "groupshare/tracker/v1/tracker.grpc.pb.h"
#include "services/peer/peer_identity.h"
#include "services/common/sockets.h"
#include "services/peer/relay_client.h"
#include "services/peer/tracker_trust.h"

ABSL_FLAG(std::string, tracker, "", "host:port of the tracker");
ABSL_FLAG(std::string, relay, "", "host:port of the relay");
ABSL_FLAG(int, relay_pid, 0, "the relay's process, for its threads, memory and CPU time");
ABSL_FLAG(std::string, dir, "", "a folder for the members' keys");
ABSL_FLAG(int, holders, 200, "clients waiting at the relay");
ABSL_FLAG(int, sessions, 20, "sessions pushing bytes at once");
ABSL_FLAG(int, mib, 64, "MiB pushed through each session");

namespace {

using namespace groupshare;
namespace rv1 = ::groupshare::relay::v1;
namespace tv1 = ::groupshare::tracker::v1;

constexpr int kClientsPerUser = 10;

struct ProcessFigures {
  int threads = 0;
  double rss_mib = 0;
  double cpu_s = 0;
};

ProcessFigures Figures(int pid) {
  ProcessFigures f;
  std::ifstream status(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(status, line)) {
    std::vector<std::string> w = absl::StrSplit(line, absl::ByAnyChar(" \t"), absl::SkipEmpty());
    if (w.size() >= 2 && w[0] == "Threads:") absl::SimpleAtoi(w[1], &f.threads);
    if (w.size() >= 2 && w[0] == "VmRSS:") {
      double kib = 0;
      absl::SimpleAtod(w[1], &kib);
      f.rss_mib = kib / 1024;
    }
  }
  f.cpu_s = bench::CpuSecondsOf(pid);
  return f;
}

[[noreturn]] void Fail(const std::string& what) {
  std::cerr << "relay_load: " << what << std::endl;
  std::exit(1);
}

struct Member {
  std::string user;
  std::unique_ptr<peer::PeerIdentity> identity;
};

struct Holder {
  std::unique_ptr<rv1::RelayService::Stub> stub;
  std::unique_ptr<grpc::ClientContext> context;
  std::unique_ptr<grpc::ClientReader<rv1::JoinResponse>> reader;
};

// One side of a session, asked for; AwaitOk once both are.
int OpenSession(const rv1::Invitation& invitation) {
  auto fd = DialTcp(invitation.session_address(), absl::Seconds(5));
  if (!fd.ok()) Fail(std::string(fd.status().message()));
  if (auto s = peer::RequestSession(*fd, invitation.key()); !s.ok()) Fail(std::string(s.message()));
  return *fd;
}

void AwaitOk(int fd) {
  if (auto s = peer::AwaitSession(fd, absl::Now() + absl::Seconds(10)); !s.ok()) {
    Fail(std::string(s.message()));
  }
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("relay_load --tracker H:P --relay H:P --relay_pid PID --dir DIR");
  absl::ParseCommandLine(argc, argv);
  const std::string dir = absl::GetFlag(FLAGS_dir);
  const int pid = absl::GetFlag(FLAGS_relay_pid);
  const int holders = absl::GetFlag(FLAGS_holders);
  const int sessions = std::min(absl::GetFlag(FLAGS_sessions), holders);
  if (dir.empty() || pid == 0) Fail("--dir and --relay_pid are required");

  auto trust = peer::TrackerTrust::Create(dir + "/known_trackers");
  auto relay_trust =
      peer::TrackerTrust::Create(dir + "/known_relays", "", "relay", "relay_info.txt");
  if (!trust.ok() || !relay_trust.ok()) Fail("no trust store");
  TrackerAddress tracker_address;
  static_cast<HostPort&>(tracker_address) = *ParseHostPort(absl::GetFlag(FLAGS_tracker));
  TrackerAddress relay_address;
  static_cast<HostPort&>(relay_address) = *ParseHostPort(absl::GetFlag(FLAGS_relay));
  auto tracker = tv1::TrackerService::NewStub(grpc::CreateChannel(
      tracker_address.ToString(), (*trust)->CredentialsFor(tracker_address)));

  // Members, each certified by the tracker.
  std::vector<Member> members;
  for (int u = 0; u * kClientsPerUser < holders; ++u) {
    Member m;
    m.user = absl::StrCat("load", u, "-", getpid());
    const std::string home = absl::StrCat(dir, "/", m.user);
    mkdir(home.c_str(), 0700);
    auto identity = peer::PeerIdentity::Open(home);
    if (!identity.ok()) Fail(std::string(identity.status().message()));
    m.identity = *std::move(identity);
    grpc::ClientContext signup;
    tv1::CreateUserRequest create;
    create.set_user_id(m.user);
    create.set_password("pw-" + m.user);
    tv1::CreateUserResponse created;
    if (auto s = tracker->CreateUser(&signup, create, &created); !s.ok()) Fail(s.error_message());
    grpc::ClientContext login_context;
    tv1::LoginRequest login;
    login.set_user_id(m.user);
    login.set_password("pw-" + m.user);
    login.set_peer_public_key(m.identity->public_key_pem());
    tv1::LoginResponse session;
    if (auto s = tracker->Login(&login_context, login, &session); !s.ok()) Fail(s.error_message());
    if (auto s = m.identity->Accept(session.peer_certificate(),
                                    {session.peer_ca_certificates().begin(),
                                     session.peer_ca_certificates().end()});
        !s.ok()) {
      Fail(std::string(s.message()));
    }
    members.push_back(std::move(m));
  }
  auto stub_for = [&](const Member& m) {
    KeyAndCert mine = *m.identity->Current();
    return rv1::RelayService::NewStub(grpc::CreateChannel(
        relay_address.ToString(), (*relay_trust)->CredentialsFor(relay_address, &mine)));
  };

  // Every holder waits, each on a connection of its own.
  std::vector<Holder> waiting(holders);
  for (int h = 0; h < holders; ++h) {
    Holder& w = waiting[h];
    w.stub = stub_for(members[h / kClientsPerUser]);
    w.context = std::make_unique<grpc::ClientContext>();
    rv1::JoinRequest join;
    join.set_peer_address(absl::StrCat("127.0.0.1:", 20000 + h));
    w.reader = w.stub->Join(w.context.get(), join);
    rv1::JoinResponse joined;
    if (!w.reader->Read(&joined) || !joined.joined()) Fail(absl::StrCat("holder ", h, " not taken"));
  }
  const ProcessFigures idle = Figures(pid);
  std::cout << "relay idle holders=" << holders << " threads=" << idle.threads
            << " rss_mib=" << idle.rss_mib << std::endl;

  // The sessions: member u's client asks for holder s, both ends dial.
  std::vector<std::pair<int, int>> ends;
  for (int s = 0; s < sessions; ++s) {
    const Member& asking = members[(s + 1) % members.size()];
    grpc::ClientContext context;
    rv1::ConnectRequest connect;
    connect.set_user_id(members[s / kClientsPerUser].user);
    connect.set_peer_address(absl::StrCat("127.0.0.1:", 20000 + s));
    rv1::ConnectResponse answer;
    if (auto st = stub_for(asking)->Connect(&context, connect, &answer); !st.ok()) {
      Fail(st.error_message());
    }
    rv1::JoinResponse invitation;
    if (!waiting[s].reader->Read(&invitation)) Fail("no invitation");
    const int member = OpenSession(answer.invitation());
    const int holder = OpenSession(invitation.invitation());
    AwaitOk(member);
    AwaitOk(holder);
    ends.emplace_back(member, holder);
  }
  const uint64_t per_session = uint64_t{static_cast<uint64_t>(absl::GetFlag(FLAGS_mib))} << 20;
  std::atomic<bool> done{false};
  ProcessFigures peak = idle;
  std::thread sampler([&] {
    while (!done.load()) {
      ProcessFigures now = Figures(pid);
      peak.threads = std::max(peak.threads, now.threads);
      peak.rss_mib = std::max(peak.rss_mib, now.rss_mib);
      absl::SleepFor(absl::Milliseconds(100));
    }
  });
  const double cpu_before = Figures(pid).cpu_s;
  const absl::Time start = absl::Now();
  std::vector<std::thread> pumps;
  std::atomic<uint64_t> arrived{0};
  for (auto [member, holder] : ends) {
    pumps.emplace_back([member = member, per_session] {
      std::string block(256 << 10, 'x');
      for (uint64_t sent = 0; sent < per_session;) {
        ssize_t n = send(member, block.data(), std::min<uint64_t>(block.size(), per_session - sent),
                         MSG_NOSIGNAL);
        if (n <= 0) return;
        sent += static_cast<uint64_t>(n);
      }
      shutdown(member, SHUT_WR);
    });
    pumps.emplace_back([holder = holder, &arrived] {
      std::string buffer(256 << 10, '\0');
      ssize_t n;
      while ((n = recv(holder, buffer.data(), buffer.size(), 0)) > 0) {
        arrived.fetch_add(static_cast<uint64_t>(n));
      }
    });
  }
  for (auto& t : pumps) t.join();
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  const double cpu = Figures(pid).cpu_s - cpu_before;
  done = true;
  sampler.join();
  const double mib = static_cast<double>(arrived.load()) / (1 << 20);
  if (arrived.load() != per_session * ends.size()) Fail("bytes were lost on the way");
  std::cout << "relay busy holders=" << holders << " sessions=" << sessions
            << " threads=" << peak.threads << " peak_rss_mib=" << peak.rss_mib
            << " mib_per_s=" << mib / seconds << " cpu_s_per_gib=" << cpu / (mib / 1024)
            << std::endl;
  for (auto [member, holder] : ends) {
    close(member);
    close(holder);
  }
  for (Holder& w : waiting) w.context->TryCancel();
  return 0;
}
