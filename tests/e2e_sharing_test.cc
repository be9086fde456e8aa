// Sharing and downloading end to end with the real binaries on loopback:
// several seeders, a seeder killed mid-download, a peer that serves corrupt
// bytes, a non-member asking a peer directly, a partial downloader serving
// a third client, logout and login, and a killed downloader that resumes.

#include <fcntl.h>
#include <signal.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <grpcpp/create_channel_posix.h>
#include <grpcpp/grpcpp.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <optional>
#include <regex>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "core/certificates.h"
#include "core/crypto.h"
#include "core/file_hasher.h"
#include "core/sqlite.h"
#include "core/ticket.h"
#include "groupshare/peer/v1/peer.grpc.pb.h"
#include "groupshare/tracker/v1/tracker.grpc.pb.h"
#include "services/common/server_setup.h"
#include "tests/testing/cluster.h"
#include "tests/testing/members.h"

namespace groupshare {
namespace {

using testing::Cluster;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::Optional;
using ::testing::StartsWith;
namespace tv1 = ::groupshare::tracker::v1;
namespace pv1 = ::groupshare::peer::v1;

// What `show_downloads --peers` says of the download of `name`: the lines
// under it that begin with "  <what> ", as the rest of each line by its
// first word (a user).
std::map<std::string, std::string> PeerLines(const Cluster::Client& client,
                                             const std::string& name, const std::string& what) {
  const size_t from = client.shell->transcript().size();
  client.shell->Send("show_downloads --peers");
  client.shell->Send("end_of_peers");  // an unknown command: its error ends the list
  client.shell->WaitFor("end_of_peers");
  std::map<std::string, std::string> out;
  bool in = false;
  for (absl::string_view line : absl::StrSplit(client.shell->transcript().substr(from), '\n')) {
    if (!absl::StartsWith(line, "  ")) {
      in = absl::StrContains(line, "] " + name);
      continue;
    }
    if (!in || !absl::ConsumePrefix(&line, "  " + what + " ")) continue;
    const size_t space = line.find_first_of(" :");
    if (space == absl::string_view::npos) continue;
    out[std::string(line.substr(0, space))] =
        std::string(absl::StripLeadingAsciiWhitespace(line.substr(space + 1)));
  }
  return out;
}

// The verified bytes each member sent for the download of `name`.
std::map<std::string, uint64_t> BytesByPeer(const Cluster::Client& client,
                                            const std::string& name) {
  std::map<std::string, uint64_t> out;
  for (const auto& [user, rest] : PeerLines(client, name, "from")) {
    uint64_t n = 0;
    if (absl::SimpleAtoi(rest.substr(0, rest.find(' ')), &n)) out[user] = n;
  }
  return out;
}

// The members the download of `name` dropped, with why.
std::map<std::string, std::string> DroppedPeers(const Cluster::Client& client,
                                                const std::string& name) {
  return PeerLines(client, name, "dropped");
}

// That `sources` (BytesByPeer) account for every byte of a file of `size`,
// and that none came from `user`: it cannot pass with no sources listed.
void ExpectNoneFrom(const std::map<std::string, uint64_t>& sources, const std::string& user,
                    uint64_t size) {
  uint64_t total = 0;
  for (const auto& [peer, bytes] : sources) total += bytes;
  EXPECT_EQ(total, size);
  EXPECT_EQ(sources.count(user), 0u);
}

// The notices of `client` but those about joining groups, which every
// test's set-up brings.
std::vector<std::string> OtherNotices(const Cluster::Client& client) {
  std::vector<std::string> out;
  for (const std::string& n : client.shell->notices()) {
    if (!absl::StrContains(n, "accepted you into") && !absl::StrContains(n, "asks to join") &&
        !absl::StrContains(n, "reachable at")) {
      out.push_back(n);
    }
  }
  return out;
}

std::vector<std::string> Concat(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// Tracker flags for a certificate of an operator's own, made in `dir`
// (--tls_cert and --tls_key).
std::vector<std::string> OperatorCertificate(testing::TempDir& dir) {
  CertificateRequest request;
  request.common_name = "localhost";
  request.ip_names = {"127.0.0.1"};
  request.not_before = absl::Now() - absl::Hours(1);
  request.not_after = absl::Now() + absl::Hours(24);
  auto made = SelfSigned(request);
  EXPECT_TRUE(made.ok()) << made.status();
  if (!made.ok()) return {};
  testing::WriteFile(dir.File("cert.pem"), made->cert_pem);
  testing::WriteFile(dir.File("key.pem"), made->key_pem);
  return {"--tls_cert", dir.File("cert.pem"), "--tls_key", dir.File("key.pem")};
}

class Sharing : public ::testing::Test {
 protected:
  Sharing() = default;
  Sharing(const std::vector<std::string>& tracker_flags,
          const std::vector<std::string>& client_flags)
      : cluster_(tracker_flags, client_flags) {}

  // Writes `size` random bytes to a file named `name` in a folder of `who`.
  std::string MakeFile(const std::string& who, const std::string& name, size_t size,
                       uint32_t seed = 1) {
    std::string dir = cluster_.dir().File("files-" + who);
    mkdir(dir.c_str(), 0755);
    std::string path = dir + "/" + name;
    testing::WriteFile(path, testing::RandomBytes(size, seed));
    return path;
  }
  std::string Dest(const std::string& name) { return cluster_.dir().File(name); }
  // alice, her uploads capped at `rate_kib` KiB/s, shares f.bin (16 MiB, or
  // `size` bytes) in g, of which bob is a member.
  struct SlowShare {
    std::unique_ptr<Cluster::Client> alice, bob;
    std::string path;
  };
  SlowShare AliceSharesSlowly(int rate_kib, size_t size = 16 << 20) {
    SlowShare s{cluster_.StartUser("alice", {"--max_upload_rate", absl::StrCat(rate_kib)}),
                cluster_.StartUser("bob"), MakeFile("alice", "f.bin", size)};
    cluster_.AddMember(*s.alice, *s.bob, "g");
    EXPECT_THAT(s.alice->Run("upload_file " + s.path + " g"), StartsWith("shared"));
    return s;
  }
  // alice (with `alice_flags`) shares an 8 MiB f.bin in g with bob, whose
  // ticket for her is copied to someone who calls with it.
  struct CopiedTicket {
    std::unique_ptr<Cluster::Client> alice, bob;
    std::string path;
    pv1::GetPieceRequest request;  // the file's first pieces, with bob's ticket
    testing::TestMember copier;    // bob, with a certificate of his own
  };
  CopiedTicket ShareWithACopiedTicket(const std::vector<std::string>& alice_flags);
  // Gives the file at `path` new bytes of the same size, modified later
  // than the file system's clock tick could blur.
  static void Rewrite(const std::string& path, uint32_t seed) {
    const std::string old = testing::ReadFile(path);
    testing::WriteFile(path, testing::RandomBytes(old.size(), seed));
    struct stat st;
    ASSERT_EQ(stat(path.c_str(), &st), 0);
    struct timespec times[2] = {st.st_atim, st.st_mtim};
    times[1].tv_sec += 2;
    ASSERT_EQ(utimensat(AT_FDCWD, path.c_str(), times, 0), 0);
  }
  // A stub on a connection of its own to the peer service at `port`, whose
  // flow-control windows do not grow: calls that read nothing stay open
  // unread rather than take in whole pieces and end.
  static std::unique_ptr<pv1::PeerService::Stub> UnreadingPeer(
      int port, std::shared_ptr<grpc::ChannelCredentials> credentials) {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    return pv1::PeerService::NewStub(
        grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", port), credentials, args));
  }
  // Asks `peer` for the first piece of `all`, a try every 50 ms for 20 s at
  // most, until a call ends with `want`; the last call's code.
  static grpc::StatusCode AskUntil(pv1::PeerService::Stub& peer, const pv1::GetPieceRequest& all,
                                   grpc::StatusCode want) {
    pv1::GetPieceRequest one = all;
    one.clear_pieces();
    one.add_pieces(0);
    const absl::Time deadline = absl::Now() + absl::Seconds(20);
    while (true) {
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
      auto reader = peer.GetPiece(&ctx, one);
      pv1::PieceChunk chunk;
      while (reader->Read(&chunk)) {
      }
      const grpc::StatusCode got = reader->Finish().error_code();
      if (got == want || absl::Now() >= deadline) return got;
      absl::SleepFor(absl::Milliseconds(50));
    }
  }
  // One call more than a caller's allowance: refused.
  static grpc::StatusCode OneCallMore(pv1::PeerService::Stub& peer,
                                      const pv1::GetPieceRequest& all) {
    return AskUntil(peer, all, grpc::StatusCode::RESOURCE_EXHAUSTED);
  }
  // `bob` downloads f.bin of g (shared by `alice` from `path`) within 30 s,
  // byte for byte.
  void ExpectDownloadWithin30s(Cluster::Client& bob, Cluster::Client& alice,
                               const std::string& path) {
    EXPECT_THAT(bob.Run("download_file g f.bin " + Dest("out.bin")), StartsWith("downloading"));
    EXPECT_EQ(cluster_.WaitForDownload(bob, "[C]", absl::Seconds(30)),
              "[C] [g] f.bin -> " + Dest("out.bin"))
        << bob.Log() << "\n----\n" << alice.Log() << "\n" << bob.Run("show_downloads");
    EXPECT_TRUE(testing::ReadFile(Dest("out.bin")) == testing::ReadFile(path));
  }
  // `who` shares a new file of `size` random bytes (the same for every
  // client) named `name` in group g.
  void Share(Cluster::Client& who, const std::string& name, size_t size) {
    EXPECT_THAT(who.Run("upload_file " + MakeFile(who.name, name, size) + " g"),
                StartsWith("shared"));
  }

  Cluster cluster_;
};

TEST_F(Sharing, ThreeSeedersOneDownloaderByteIdenticalFromSeveralPeers) {
  // Not a multiple of the piece size: the last piece is short.
  const size_t size = (24 << 20) + 12345;
  auto alice = cluster_.StartUser("alice", {"--max_upload_rate", "8192"});
  auto bob = cluster_.StartUser("bob", {"--max_upload_rate", "8192"});
  auto carol = cluster_.StartUser("carol", {"--max_upload_rate", "8192"});
  auto dave = cluster_.StartUser("dave");
  cluster_.AddMember(*alice, *bob, "g");
  cluster_.AddMember(*alice, *carol, "g");
  cluster_.AddMember(*alice, *dave, "g");
  for (auto* c : {alice.get(), bob.get(), carol.get()}) {
    std::string path = MakeFile(c->name, "movie.bin", size);
    std::string sha1 = HexEncode(Sha1Of(testing::ReadFile(path)));
    EXPECT_THAT(c->Run("upload_file " + path + " g"), HasSubstr("movie.bin in g (24.0 MiB, 49 pieces, sha1 " + sha1));
  }
  EXPECT_THAT(dave->Run("list_files g"), StartsWith("movie.bin size=25178169 (24.0 MiB) peers=3 seeders=3"));
  EXPECT_THAT(dave->Run("download_file g movie.bin " + Dest("out.bin")),
              StartsWith("downloading movie.bin from g into " + Dest("out.bin")));
  // Told without asking, on a line of its own.
  EXPECT_EQ(dave->shell->WaitForNotice("movie.bin"),
            "notice: download of movie.bin from g complete: " + Dest("out.bin"));
  EXPECT_EQ(cluster_.WaitForDownload(*dave, "[C]"), "[C] [g] movie.bin -> " + Dest("out.bin"));
  EXPECT_TRUE(testing::ReadFile(Dest("out.bin")) ==
              testing::ReadFile(cluster_.dir().File("files-alice/movie.bin")));
  auto sources = BytesByPeer(*dave, "movie.bin");
  EXPECT_GE(sources.size(), 2u) << dave->Log();
  uint64_t total = 0;
  for (const auto& [peer, bytes] : sources) total += bytes;
  EXPECT_EQ(total, size);
  // Dave shares it now too.
  EXPECT_THAT(alice->Run("list_files g"), StartsWith("movie.bin size=25178169 (24.0 MiB) peers=4"));
}

TEST_F(Sharing, SeederKilledMidDownloadAndTheDownloadStillCompletes) {
  const size_t size = 24 << 20;
  auto alice = cluster_.StartUser("alice", {"--max_upload_rate", "4096"});
  auto bob = cluster_.StartUser("bob", {"--max_upload_rate", "4096"});
  auto dave = cluster_.StartUser("dave");
  cluster_.AddMember(*alice, *bob, "g");
  cluster_.AddMember(*alice, *dave, "g");
  for (auto* c : {alice.get(), bob.get()}) Share(*c, "f.bin", size);
  EXPECT_THAT(dave->Run("download_file g f.bin " + Dest("out.bin")), StartsWith("downloading"));
  // Kill bob once the download is under way.
  double percent = cluster_.WaitForPercent(*dave, 10);
  ASSERT_GE(percent, 10);
  ASSERT_LT(percent, 90) << "the download ran too fast to kill a seeder in the middle";
  bob->shell->Signal(SIGKILL);
  EXPECT_EQ(cluster_.WaitForDownload(*dave, "[C]"), "[C] [g] f.bin -> " + Dest("out.bin"));
  EXPECT_TRUE(testing::ReadFile(Dest("out.bin")) ==
              testing::ReadFile(cluster_.dir().File("files-alice/f.bin")));
  auto dropped = DroppedPeers(*dave, "f.bin");
  EXPECT_EQ(dropped.count("bob"), 1u) << dave->Run("show_downloads --peers");
  EXPECT_EQ(dropped.count("alice"), 0u) << dave->Run("show_downloads --peers");
}

TEST_F(Sharing, StalledSeederHasItsPiecesAskedOfOthers) {
  const size_t size = 16 << 20;
  auto alice = cluster_.StartUser("alice", {"--max_upload_rate", "4096"});
  auto bob = cluster_.StartUser("bob", {"--max_upload_rate", "4096"});
  auto dave = cluster_.StartUser("dave", {"--piece_timeout", "2"});
  cluster_.AddMember(*alice, *bob, "g");
  cluster_.AddMember(*alice, *dave, "g");
  for (auto* c : {alice.get(), bob.get()}) Share(*c, "f.bin", size);
  EXPECT_THAT(dave->Run("download_file g f.bin " + Dest("out.bin")), StartsWith("downloading"));
  ASSERT_GE(cluster_.WaitForPercent(*dave, 10), 10);
  bob->shell->Signal(SIGSTOP);  // alive but silent: its connections stay open
  EXPECT_EQ(cluster_.WaitForDownload(*dave, "[C]"), "[C] [g] f.bin -> " + Dest("out.bin"));
  bob->shell->Signal(SIGCONT);
  EXPECT_TRUE(testing::ReadFile(Dest("out.bin")) ==
              testing::ReadFile(cluster_.dir().File("files-alice/f.bin")));
  // What bob held back came from alice: by timeout or in the endgame.
  auto sources = BytesByPeer(*dave, "f.bin");
  EXPECT_GT(sources["alice"], size / 2) << dave->Log();
  EXPECT_EQ(sources["alice"] + sources["bob"], size);
}

TEST_F(Sharing, SharerAppearingDuringADownloadIsPickedUp) {
  const size_t size = 16 << 20;
  auto alice = cluster_.StartUser("alice", {"--max_upload_rate", "1024"});
  auto carol = cluster_.StartUser("carol");
  auto dave = cluster_.StartUser("dave");
  cluster_.AddMember(*alice, *carol, "g");
  cluster_.AddMember(*alice, *dave, "g");
  Share(*alice, "f.bin", size);
  EXPECT_THAT(dave->Run("download_file g f.bin " + Dest("out.bin")), StartsWith("downloading"));
  // At 1 MiB/s alice alone would need 16 s; carol arrives after the start.
  EXPECT_THAT(carol->Run("upload_file " + MakeFile("carol", "f.bin", size) + " g"),
              HasSubstr("others share it too, and you are now one of its sources"));
  EXPECT_EQ(cluster_.WaitForDownload(*dave, "[C]"), "[C] [g] f.bin -> " + Dest("out.bin"));
  EXPECT_GT(BytesByPeer(*dave, "f.bin")["carol"], size / 2) << dave->Log();
}

// A member whose peer service answers every piece with garbage.
class CorruptPeer final : public pv1::PeerService::Service {
 public:
  // `chunk_bytes`: the data each message claims for a piece (garbage of the
  // piece's length when 0).
  explicit CorruptPeer(uint32_t pieces, uint32_t piece_size, uint64_t size,
                       size_t chunk_bytes = 0)
      : pieces_(pieces), piece_size_(piece_size), size_(size), chunk_bytes_(chunk_bytes) {}
  grpc::Status GetBitfield(grpc::ServerContext* ctx, const pv1::GetBitfieldRequest*,
                           grpc::ServerWriter<pv1::BitfieldUpdate>* writer) override {
    pv1::BitfieldUpdate all;
    all.set_bitfield(Bitfield(pieces_, true).ToBytes());
    all.set_piece_count(pieces_);
    writer->Write(all);
    while (!ctx->IsCancelled()) absl::SleepFor(absl::Milliseconds(20));  // a stream held open
    return grpc::Status::OK;
  }
  grpc::Status GetPiece(grpc::ServerContext*, const pv1::GetPieceRequest* req,
                        grpc::ServerWriter<pv1::PieceChunk>* writer) override {
    for (uint32_t piece : req->pieces()) {
      ++served_;
      FileLayout layout{size_, piece_size_};
      pv1::PieceChunk chunk;
      chunk.set_piece(piece);
      chunk.set_data(std::string(chunk_bytes_ ? chunk_bytes_ : layout.PieceLength(piece), 'X'));
      if (!writer->Write(chunk)) break;
    }
    return grpc::Status::OK;
  }
  int served() const { return served_; }

 private:
  uint32_t pieces_, piece_size_;
  uint64_t size_;
  size_t chunk_bytes_;
  std::atomic<int> served_{0};
};

// AddressSanitizer keeps freed memory in quarantine and maps shadow memory:
// under it, bounds on a process's memory say nothing, so they go unchecked.
#ifdef GS_SANITIZED
constexpr bool kMemoryBoundsHold = false;
#else
constexpr bool kMemoryBoundsHold = true;
#endif

// A field of /proc/<pid>/status, in its own unit (kB for memory).
long ProcStatus(pid_t pid, const std::string& field) {
  std::string status = testing::ReadFile(absl::StrCat("/proc/", pid, "/status"));
  size_t at = status.find("\n" + field + ":");
  if (at == std::string::npos) return -1;
  return std::strtol(status.c_str() + at + field.size() + 2, nullptr, 10);
}

// Calls a tracker RPC with an optional bearer token.
template <typename Req, typename Resp>
grpc::Status CallTracker(tv1::TrackerService::Stub* stub,
                         grpc::Status (tv1::TrackerService::Stub::*rpc)(grpc::ClientContext*,
                                                                      const Req&, Resp*),
                         const std::string& token, const Req& req, Resp* resp) {
  grpc::ClientContext ctx;
  if (!token.empty()) ctx.AddMetadata("authorization", "Bearer " + token);
  return (stub->*rpc)(&ctx, req, resp);
}

// A GetPiece request for the first 16 pieces of f.bin (SHA1 `sha1`) in
// group g, with a real ticket that `user` (a member, whose password is
// "pw-<user>") took from the tracker for the only sharer: a member's
// ticket, as its holder (or whoever copied it) would use it. Logs in as a
// client of its own, `client_id`.
// GetFilePeers as the member of `token`: its status, and the ticket made
// out for the peer at 127.0.0.1:`port` ("" when that peer is not listed).
std::pair<grpc::Status, std::string> TicketFor(tv1::TrackerService::Stub* tracker,
                                               const std::string& token,
                                               const std::string& group,
                                               const std::string& file, int port) {
  tv1::GetFilePeersRequest req;
  req.set_group_id(group);
  req.set_file_name(file);
  tv1::GetFilePeersResponse resp;
  grpc::Status s =
      CallTracker(tracker, &tv1::TrackerService::Stub::GetFilePeers, token, req, &resp);
  for (const tv1::Peer& p : resp.peers()) {
    if (absl::EndsWith(p.address(), absl::StrCat(":", port))) return {s, p.ticket()};
  }
  return {s, ""};
}

struct Ticketed {
  pv1::GetPieceRequest request;
  testing::TestMember member;  // `user`, certified to call with the ticket
};
Ticketed TicketedRequest(Cluster& cluster, const std::string& user, const std::string& sha1,
                         const std::string& client_id = "") {
  Ticketed out;
  out.member = testing::LoginMember(cluster, user, "pw-" + user, "", client_id);
  auto tracker = testing::TrackerStub(cluster);
  tv1::GetFilePeersRequest peers_req;
  peers_req.set_group_id("g");
  peers_req.set_file_name("f.bin");
  tv1::GetFilePeersResponse peers;
  EXPECT_TRUE(CallTracker(tracker.get(), &tv1::TrackerService::Stub::GetFilePeers,
                          out.member.token, peers_req, &peers).ok());
  EXPECT_EQ(peers.peers_size(), 1);
  pv1::GetPieceRequest& request = out.request;
  request.set_ticket(peers.peers_size() > 0 ? peers.peers(0).ticket() : "");
  request.set_group_id("g");
  request.set_file_sha1(sha1);
  for (uint32_t i = 0; i < 16; ++i) request.add_pieces(i);
  return out;
}

// Makes `user` a member of `group` (owned by `owner`) sharing the file
// `hashed` (as f.bin) from 127.0.0.1:`port`, where the test serves it.
// Makes `member` (new, serving on 127.0.0.1:`port`) a user and a member of
// `group` (owned by `owner`).
void JoinAsFakeSharer(Cluster& cluster, Cluster::Client& owner, testing::TestMember& member,
                      const std::string& group, int port) {
  auto tracker = testing::TrackerStub(cluster);
  tv1::CreateUserRequest create;
  create.set_user_id(member.user);
  create.set_password("pw");
  tv1::CreateUserResponse created;
  EXPECT_TRUE(CallTracker(tracker.get(), &tv1::TrackerService::Stub::CreateUser, "", create,
                          &created).ok());
  testing::Login(cluster, member, "pw", absl::StrCat("127.0.0.1:", port));
  tv1::JoinGroupRequest join;
  join.set_group_id(group);
  tv1::JoinGroupResponse joined;
  EXPECT_TRUE(CallTracker(tracker.get(), &tv1::TrackerService::Stub::JoinGroup,
                          member.token, join, &joined).ok());
  EXPECT_EQ(owner.Run("accept_request " + group + " " + member.user),
            member.user + " is now a member of " + group);
}

// `member` (joined) shares the file `hashed` as f.bin, once the server on
// 127.0.0.1:`port` shows the certificate of `server`'s login (the
// member's own, unless another's).
void UploadAsFakeSharer(Cluster& cluster, const testing::TestMember& member,
                        const std::string& group, const HashedFile& hashed, int port,
                        const testing::TestMember* server = nullptr) {
  // A deadline, not a pause: a machine busy with other tests can take a
  // while to finish the handshakes that probe the server.
  absl::Status served = (server != nullptr ? server : &member)
                            ->identity->AwaitServed(absl::StrCat("127.0.0.1:", port),
                                                    absl::Seconds(20));
  EXPECT_TRUE(served.ok()) << served;
  tv1::UploadFileRequest upload;
  upload.set_group_id(group);
  upload.mutable_file()->set_name("f.bin");
  upload.mutable_file()->set_size(hashed.size);
  upload.mutable_file()->set_piece_size(hashed.piece_size);
  upload.mutable_file()->set_sha1(hashed.sha1);
  for (const std::string& p : hashed.piece_sha1) upload.mutable_file()->add_piece_sha1(p);
  tv1::UploadFileResponse uploaded;
  EXPECT_TRUE(CallTracker(testing::TrackerStub(cluster).get(),
                          &tv1::TrackerService::Stub::UploadFile, member.token, upload,
                          &uploaded).ok());
}

// Serves `service`, a peer service of the test's own, on a free port with
// the certificate of a new member `user`, who shares `hashed` from there.
void StartFakeSharer(Cluster& cluster, Cluster::Client& owner, const std::string& user,
                     pv1::PeerService::Service* service, const std::string& group,
                     const HashedFile& hashed, std::unique_ptr<grpc::Server>* server) {
  testing::TestMember member = testing::NewMember(cluster, user);
  ASSERT_NE(member.identity, nullptr);
  grpc::ServerBuilder builder;
  builder.RegisterService(service);
  builder.SetMaxSendMessageSize(64 << 20);  // room for a hostile sharer's messages
  int port = 0;
  auto started = StartServer(builder, "127.0.0.1:0", &port, member.identity->ServerCredentials());
  ASSERT_TRUE(started.ok()) << started.status();
  *server = *std::move(started);
  JoinAsFakeSharer(cluster, owner, member, group, port);
  UploadAsFakeSharer(cluster, member, group, hashed, port);
}

// A sharer of a whole file held in memory, with any ticket: many of them
// on one server, each on a port of its own, stand for many seeders.
class HonestPeer final : public pv1::PeerService::Service {
 public:
  // Each piece takes `per_piece` longer to send.
  HonestPeer(std::string content, uint32_t piece_size,
             absl::Duration per_piece = absl::ZeroDuration())
      : content_(std::move(content)), layout_{content_.size(), piece_size}, per_piece_(per_piece) {}
  grpc::Status GetBitfield(grpc::ServerContext* ctx, const pv1::GetBitfieldRequest*,
                           grpc::ServerWriter<pv1::BitfieldUpdate>* writer) override {
    pv1::BitfieldUpdate all;
    all.set_bitfield(Bitfield(layout_.PieceCount(), true).ToBytes());
    all.set_piece_count(layout_.PieceCount());
    writer->Write(all);
    while (!ctx->IsCancelled()) absl::SleepFor(absl::Milliseconds(50));  // a stream held open
    return grpc::Status::OK;
  }
  grpc::Status GetPiece(grpc::ServerContext*, const pv1::GetPieceRequest* req,
                        grpc::ServerWriter<pv1::PieceChunk>* writer) override {
    for (uint32_t piece : req->pieces()) {
      if (piece >= layout_.PieceCount()) {
        return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "no such piece");
      }
      absl::SleepFor(per_piece_);  // a slower seeder's pace, not a wait for a condition
      pv1::PieceChunk chunk;
      chunk.set_piece(piece);
      chunk.set_data(content_.substr(layout_.PieceOffset(piece), layout_.PieceLength(piece)));
      if (!writer->Write(chunk)) break;
    }
    return grpc::Status::OK;
  }

 private:
  const std::string content_;
  const FileLayout layout_;
  const absl::Duration per_piece_;
};

// A holder must show the certificate of the member the tracker listed: a
// server at mallory's address showing trudy's certificate (both members)
// is refused before any call, although it would serve the right bytes
// faster than anyone.
TEST_F(Sharing, AHolderShowingAnotherMembersCertificateIsRefused) {
  const size_t size = 8 << 20;
  auto [alice, bob, path] = AliceSharesSlowly(4096, size);
  auto hashed = HashFile(path);
  ASSERT_TRUE(hashed.ok());

  testing::TestMember trudy = testing::NewMember(cluster_, "trudy");
  testing::TestMember mallory = testing::NewMember(cluster_, "mallory");
  ASSERT_NE(trudy.identity, nullptr);
  HonestPeer service(testing::ReadFile(path), hashed->piece_size);
  grpc::ServerBuilder builder;
  builder.RegisterService(&service);
  int port = 0;
  auto server = StartServer(builder, "127.0.0.1:0", &port, trudy.identity->ServerCredentials());
  ASSERT_TRUE(server.ok()) << server.status();
  JoinAsFakeSharer(cluster_, *alice, trudy, "g", port);
  JoinAsFakeSharer(cluster_, *alice, mallory, "g", port);
  // Mallory registers the file at the address where trudy's server runs.
  UploadAsFakeSharer(cluster_, mallory, "g", *hashed, port, &trudy);

  EXPECT_THAT(bob->Run("download_file g f.bin " + Dest("out.bin")), StartsWith("downloading"));
  EXPECT_EQ(cluster_.WaitForDownload(*bob, "[C]"), "[C] [g] f.bin -> " + Dest("out.bin"));
  EXPECT_TRUE(testing::ReadFile(Dest("out.bin")) == testing::ReadFile(path));
  ExpectNoneFrom(BytesByPeer(*bob, "f.bin"), "mallory", size);
  EXPECT_EQ(DroppedPeers(*bob, "f.bin").count("mallory"), 1u) << bob->Run("show_downloads --peers");
  (*server)->Shutdown(std::chrono::system_clock::now());
}

TEST_F(Sharing, PeerServingCorruptBytesIsDroppedAndTheFileIsStillRight) {
  const size_t size = 16 << 20;
  auto [alice, bob, path] = AliceSharesSlowly(8192, size);
  auto hashed = HashFile(path);
  ASSERT_TRUE(hashed.ok());

  // Mallory: a real member, registered as a sharer, serving garbage.
  CorruptPeer mallory_service(FileLayout{size, hashed->piece_size}.PieceCount(),
                              hashed->piece_size, size);
  std::unique_ptr<grpc::Server> server;
  StartFakeSharer(cluster_, *alice, "mallory", &mallory_service, "g", *hashed, &server);
  ASSERT_NE(server, nullptr);

  EXPECT_THAT(bob->Run("download_file g f.bin " + Dest("out.bin")), StartsWith("downloading"));
  EXPECT_EQ(cluster_.WaitForDownload(*bob, "[C]"), "[C] [g] f.bin -> " + Dest("out.bin"));
  EXPECT_TRUE(testing::ReadFile(Dest("out.bin")) == testing::ReadFile(path));
  // Mallory sent pieces, and not one passed its check: every byte of the
  // file came from the others.
  EXPECT_GE(mallory_service.served(), 3);
  ExpectNoneFrom(BytesByPeer(*bob, "f.bin"), "mallory", size);
  server->Shutdown(std::chrono::system_clock::now());
}

TEST_F(Sharing, OnlyATicketForThisPeerGroupAndFileIsServed) {
  auto alice = cluster_.StartUser("alice");
  auto bob = cluster_.StartUser("bob");
  auto carol = cluster_.StartUser("carol");
  auto eve = cluster_.StartUser("eve");
  cluster_.AddMember(*alice, *bob, "g");
  cluster_.AddMember(*alice, *carol, "g");
  std::string path = MakeFile("alice", "secret.bin", 1 << 20);
  EXPECT_THAT(alice->Run("upload_file " + path + " g"), StartsWith("shared"));
  EXPECT_THAT(carol->Run("upload_file " + MakeFile("carol", "secret.bin", 1 << 20) + " g"),
              StartsWith("shared"));
  // Eve owns a group of her own where bob shares a file, so she holds real
  // tickets, for that group only.
  cluster_.AddMember(*eve, *bob, "h");
  EXPECT_THAT(bob->Run("upload_file " + MakeFile("bob", "other.bin", 1 << 20, 2) + " h"),
              StartsWith("shared"));
  EXPECT_THAT(eve->Run("download_file g secret.bin " + Dest("x")),
              StartsWith("error: you are not a member of group 'g'"));

  auto tracker = testing::TrackerStub(cluster_);
  // The ticket the tracker makes out to `user` for the peer at `port`.
  auto ticket_for = [&](const std::string& token, const std::string& group,
                        const std::string& file, grpc::StatusCode expect, int port = 0) {
    auto [s, ticket] = TicketFor(tracker.get(), token, group, file, port);
    EXPECT_EQ(s.error_code(), expect) << s.error_message();
    return ticket;
  };
  const testing::TestMember eve_member = testing::LoginMember(cluster_, "eve", "pw-eve");
  ticket_for(eve_member.token, "g", "secret.bin", grpc::StatusCode::PERMISSION_DENIED);
  std::string eve_ticket =
      ticket_for(eve_member.token, "h", "other.bin", grpc::StatusCode::OK, bob->port);
  ASSERT_FALSE(eve_ticket.empty());
  std::string sha1 = HexEncode(Sha1Of(testing::ReadFile(path)));
  auto forged_signer = *TicketSigner::Generate();
  std::string forged = *forged_signer->Sign(
      {"eve", "g", sha1, absl::StrCat("127.0.0.1:", alice->port), absl::Now() + absl::Minutes(5)});
  // Bob is a member; his ticket for carol is refused by alice: a holder
  // who collects tickets cannot replay them elsewhere.
  const testing::TestMember bob_member = testing::LoginMember(cluster_, "bob", "pw-bob");
  std::string for_carol =
      ticket_for(bob_member.token, "g", "secret.bin", grpc::StatusCode::OK, carol->port);
  ASSERT_FALSE(for_carol.empty());

  // Each ticket comes over its own holder's certificate (mutual TLS).
  auto peer_as = [&](const testing::TestMember& member) {
    return pv1::PeerService::NewStub(grpc::CreateChannel(
        absl::StrCat("127.0.0.1:", alice->port), member.To("alice")));
  };
  auto as_eve = peer_as(eve_member);
  auto as_bob = peer_as(bob_member);
  auto get_piece = [&](pv1::PeerService::Stub* peer, const std::string& ticket) {
    pv1::GetPieceRequest req;
    req.set_ticket(ticket);
    req.set_group_id("g");
    req.set_file_sha1(sha1);
    req.add_pieces(0);
    grpc::ClientContext ctx;
    auto reader = peer->GetPiece(&ctx, req);
    pv1::PieceChunk chunk;
    std::string data;
    while (reader->Read(&chunk)) data += chunk.data();
    grpc::Status s = reader->Finish();
    return std::make_pair(s, data);
  };
  for (const std::string& bad :
       {std::string(), forged, eve_ticket, std::string("garbage")}) {
    auto [status, data] = get_piece(as_eve.get(), bad);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED) << status.error_message();
    EXPECT_TRUE(data.empty());
  }
  auto [carol_status, carol_data] = get_piece(as_bob.get(), for_carol);
  EXPECT_EQ(carol_status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(carol_status.error_message(), HasSubstr("made out to the peer at"));
  EXPECT_TRUE(carol_data.empty());
  pv1::GetBitfieldRequest bits;
  bits.set_ticket(eve_ticket);
  bits.set_group_id("g");
  bits.set_file_sha1(sha1);
  grpc::ClientContext ctx;
  auto reader = as_eve->GetBitfield(&ctx, bits);
  pv1::BitfieldUpdate update;
  EXPECT_FALSE(reader->Read(&update));
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::PERMISSION_DENIED);

  // Bob's ticket for alice works over bob's certificate, and the piece is
  // the real one.
  std::string good =
      ticket_for(bob_member.token, "g", "secret.bin", grpc::StatusCode::OK, alice->port);
  auto [status, data] = get_piece(as_bob.get(), good);
  EXPECT_TRUE(status.ok()) << status.error_message();
  EXPECT_TRUE(data == testing::ReadFile(path).substr(0, 512 << 10));
  // The same ticket over carol's certificate (a member too, with a valid
  // certificate of her own) is refused: a ticket serves only its member.
  const testing::TestMember carol_member = testing::LoginMember(cluster_, "carol", "pw-carol");
  auto as_carol = peer_as(carol_member);
  auto [stolen_status, stolen_data] = get_piece(as_carol.get(), good);
  EXPECT_EQ(stolen_status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(stolen_status.error_message(), HasSubstr("issued to 'bob'"));
  EXPECT_TRUE(stolen_data.empty());
}

// A download is listed from its start, so that the others connect to it
// before its first piece, but only once its peer service shows the
// certificate of its login: whoever finds it listed can connect at once,
// even to a client that logged in for the first time a moment before.
TEST_F(Sharing, ADownloadIsListedFromItsStartOnceOthersCanConnectToIt) {
  auto alice = cluster_.StartUser("alice", {"--max_upload_rate", "65536"});
  auto bob = cluster_.StartUser("bob");
  auto carol = cluster_.StartUser("carol");
  cluster_.AddMember(*alice, *bob, "g");
  cluster_.AddMember(*alice, *carol, "g");
  std::string path = MakeFile("alice", "f.bin", 4 << 20);
  EXPECT_THAT(alice->Run("upload_file " + path + " g"), StartsWith("shared"));
  const testing::TestMember carol_member = testing::LoginMember(cluster_, "carol", "pw-carol");
  auto tracker = testing::TrackerStub(cluster_);

  // Bob on another machine: a client without a certificate until now.
  auto laptop = cluster_.StartClient("bob-laptop");
  EXPECT_EQ(laptop->Run("login bob pw-bob"), "logged in as bob");
  EXPECT_THAT(laptop->Run("download_file g f.bin " + Dest("out.bin")),
              StartsWith("downloading"));
  std::string ticket;
  for (absl::Time deadline = absl::Now() + absl::Seconds(10);
       ticket.empty() && absl::Now() < deadline;) {
    auto [s, listed] = TicketFor(tracker.get(), carol_member.token, "g", "f.bin", laptop->port);
    ASSERT_TRUE(s.ok()) << s.error_message();
    ticket = listed;
    if (ticket.empty()) absl::SleepFor(absl::Milliseconds(5));
  }
  ASSERT_FALSE(ticket.empty()) << "the download was not listed";
  auto peer = pv1::PeerService::NewStub(grpc::CreateChannel(
      absl::StrCat("127.0.0.1:", laptop->port), carol_member.To("bob")));
  pv1::GetBitfieldRequest bits;
  bits.set_ticket(ticket);
  bits.set_group_id("g");
  bits.set_file_sha1(HexEncode(Sha1Of(testing::ReadFile(path))));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  auto reader = peer->GetBitfield(&ctx, bits);
  pv1::BitfieldUpdate update;
  EXPECT_TRUE(reader->Read(&update)) << reader->Finish().error_message();
  ctx.TryCancel();
}

TEST_F(Sharing, OversizedChunksAreRefusedWithoutBeingBuffered) {
  const size_t size = 8 << 20;
  auto [alice, bob, path] = AliceSharesSlowly(8192, size);
  auto hashed = HashFile(path);
  ASSERT_TRUE(hashed.ok());
  // Mallory answers each 512 KiB piece with a 96 MiB message.
  CorruptPeer mallory_service(FileLayout{size, hashed->piece_size}.PieceCount(),
                              hashed->piece_size, size, 96 << 20);
  std::unique_ptr<grpc::Server> server;
  StartFakeSharer(cluster_, *alice, "mallory", &mallory_service, "g", *hashed, &server);
  ASSERT_NE(server, nullptr);
  const long peak_before = ProcStatus(bob->shell->pid(), "VmHWM");
  EXPECT_THAT(bob->Run("download_file g f.bin " + Dest("out.bin")), StartsWith("downloading"));
  EXPECT_EQ(cluster_.WaitForDownload(*bob, "[C]"), "[C] [g] f.bin -> " + Dest("out.bin"))
      << bob->Log();
  EXPECT_TRUE(testing::ReadFile(Dest("out.bin")) == testing::ReadFile(path));
  EXPECT_GE(mallory_service.served(), 1) << bob->Log();
  ExpectNoneFrom(BytesByPeer(*bob, "f.bin"), "mallory", size);
  // Not one 96 MiB message was held in memory. (An honest download of it
  // grows the peak by up to about 42 MiB when the machine is busy.)
  if (kMemoryBoundsHold) {
    EXPECT_LT(ProcStatus(bob->shell->pid(), "VmHWM") - peak_before, 64 << 10) << bob->Log();
  }
  server->Shutdown(std::chrono::system_clock::now());
}

TEST_F(Sharing, HostileStreamsAreBoundedAndHonestDownloadersStillServed) {
  const size_t size = 8 << 20;
  auto alice = cluster_.StartUser("alice");
  auto bob = cluster_.StartUser("bob");
  auto carol = cluster_.StartUser("carol");
  cluster_.AddMember(*alice, *bob, "g");
  cluster_.AddMember(*alice, *carol, "g");
  std::string path = MakeFile("alice", "f.bin", size);
  EXPECT_THAT(alice->Run("upload_file " + path + " g"), StartsWith("shared"));
  const std::string sha1 = HexEncode(Sha1Of(testing::ReadFile(path)));
  const pid_t seeder = alice->shell->pid();
  const long threads_before = ProcStatus(seeder, "Threads");
  const long rss_before = ProcStatus(seeder, "VmRSS");
  long rss_peak = rss_before;

  // Bob, a member, takes a real ticket for alice and opens streams he never reads.
  const Ticketed bob_ticket = TicketedRequest(cluster_, "bob", sha1);
  const pv1::GetPieceRequest& all = bob_ticket.request;
  const std::string& ticket = all.ticket();
  // A peer takes 32 calls at once on a connection (a client queues the
  // rest): a connection of its own for every 30 calls.
  std::vector<std::unique_ptr<pv1::PeerService::Stub>> stubs;
  // No window growth: the GetPiece calls stay open unread rather than take
  // in whole pieces and end, which would free slots for the last call.
  const auto new_connection = [&]() -> pv1::PeerService::Stub& {
    stubs.push_back(UnreadingPeer(alice->port, bob_ticket.member.To("alice")));
    return *stubs.back();
  };
  pv1::GetBitfieldRequest bits;
  bits.set_ticket(ticket);
  bits.set_group_id("g");
  bits.set_file_sha1(sha1);
  std::vector<std::unique_ptr<grpc::ClientContext>> contexts;
  std::vector<std::unique_ptr<grpc::ClientReader<pv1::PieceChunk>>> pieces;
  std::vector<std::unique_ptr<grpc::ClientReader<pv1::BitfieldUpdate>>> bitfields;
  for (int i = 0; i < 300; ++i) {
    pv1::PeerService::Stub& peer = i % 30 == 0 ? new_connection() : *stubs.back();
    contexts.push_back(std::make_unique<grpc::ClientContext>());
    pieces.push_back(peer.GetPiece(contexts.back().get(), all));
  }
  for (int i = 0; i < 1000; ++i) {
    pv1::PeerService::Stub& peer = i % 30 == 0 ? new_connection() : *stubs.back();
    contexts.push_back(std::make_unique<grpc::ClientContext>());
    bitfields.push_back(peer.GetBitfield(contexts.back().get(), bits));
  }
  pv1::PeerService::Stub& peer = new_connection();
  // One more: refused, and the message names the limit. The calls above
  // came over many connections, in no set order, so the peer may still be
  // taking them in: one more is tried until the limit is reached (each
  // admitted meanwhile is read to its end).
  {
    grpc::Status s;
    for (const absl::Time deadline = absl::Now() + absl::Seconds(20); absl::Now() < deadline;) {
      grpc::ClientContext ctx;
      auto reader = peer.GetPiece(&ctx, all);
      pv1::PieceChunk chunk;
      while (reader->Read(&chunk)) {
      }
      s = reader->Finish();
      if (s.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) break;
    }
    EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
    EXPECT_THAT(s.error_message(), HasSubstr("calls open to this peer"));
  }
  // A request that repeats an index, or asks for too much, is refused.
  for (const std::vector<uint32_t>& bad : {std::vector<uint32_t>{0, 0},
                                           std::vector<uint32_t>(65, 1)}) {
    pv1::GetPieceRequest req = all;
    req.clear_pieces();
    for (uint32_t p : bad) req.add_pieces(p);
    grpc::ClientContext ctx;
    auto reader = peer.GetPiece(&ctx, req);
    pv1::PieceChunk chunk;
    EXPECT_FALSE(reader->Read(&chunk));
    EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  }
  // The seeder stays within bounds, and serves an honest downloader.
  EXPECT_LE(ProcStatus(seeder, "Threads"), threads_before + 8);
  if (kMemoryBoundsHold) {
    EXPECT_LE(ProcStatus(seeder, "VmRSS") - rss_before, 64 << 10);
  }
  EXPECT_THAT(carol->Run("download_file g f.bin " + Dest("carol.bin")), StartsWith("downloading"));
  EXPECT_EQ(cluster_.WaitForDownload(*carol, "[C]"), "[C] [g] f.bin -> " + Dest("carol.bin"));
  EXPECT_TRUE(testing::ReadFile(Dest("carol.bin")) == testing::ReadFile(path));
  EXPECT_LE(ProcStatus(seeder, "Threads"), threads_before + 8);
  rss_peak = std::max(rss_peak, ProcStatus(seeder, "VmRSS"));
  if (kMemoryBoundsHold) {
    EXPECT_LE(rss_peak - rss_before, 64 << 10);
  }
  // Once the streams are gone the seeder is idle, and within a
  // housekeeping round or two the memory goes back to the system.
  for (auto& ctx : contexts) ctx->TryCancel();
  for (auto& r : pieces) r->Finish().IgnoreError();
  for (auto& r : bitfields) r->Finish().IgnoreError();
  pieces.clear();
  bitfields.clear();
  if (!kMemoryBoundsHold) return;
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (ProcStatus(seeder, "VmRSS") - rss_before > 16 << 10 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(100));
  }
  EXPECT_LE(ProcStatus(seeder, "VmRSS") - rss_before, 16 << 10)
      << "at the peak: +" << (rss_peak - rss_before) << " KiB";
}

// Super-seeding: the first reader of a whole file's bitfield is offered
// every piece; readers beside it a few each, different ones (those before
// them keep as many of theirs), and another as soon as one they were
// offered is asked for.
TEST_F(Sharing, ASeederOffersACrowdDifferentPiecesAndMoreAsTheyAreAskedFor) {
  const size_t size = 40 << 19;  // 40 pieces
  auto alice = cluster_.StartUser("alice");
  std::vector<std::unique_ptr<Cluster::Client>> crowd;
  for (const char* name : {"bob", "carol", "dave"}) {
    crowd.push_back(cluster_.StartUser(name));
    cluster_.AddMember(*alice, *crowd.back(), "g");
  }
  std::string path = MakeFile("alice", "f.bin", size);
  EXPECT_THAT(alice->Run("upload_file " + path + " g"), StartsWith("shared"));
  const std::string sha1 = HexEncode(Sha1Of(testing::ReadFile(path)));
  struct Reader {
    Ticketed ticketed;
    std::unique_ptr<pv1::PeerService::Stub> stub;
    grpc::ClientContext ctx;
    std::unique_ptr<grpc::ClientReader<pv1::BitfieldUpdate>> stream;
    std::set<uint32_t> offered;
  };
  std::vector<std::unique_ptr<Reader>> readers;
  for (const char* name : {"bob", "carol", "dave"}) {
    auto r = std::make_unique<Reader>();
    r->ticketed = TicketedRequest(cluster_, name, sha1);
    r->stub = pv1::PeerService::NewStub(grpc::CreateChannel(
        absl::StrCat("127.0.0.1:", alice->port), r->ticketed.member.To("alice")));
    pv1::GetBitfieldRequest req;
    req.set_ticket(r->ticketed.request.ticket());
    req.set_group_id("g");
    req.set_file_sha1(sha1);
    r->ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
    r->stream = r->stub->GetBitfield(&r->ctx, req);
    pv1::BitfieldUpdate first;
    ASSERT_TRUE(r->stream->Read(&first));
    auto bits = Bitfield::FromBytes(first.bitfield(), 40);
    ASSERT_TRUE(bits.ok());
    for (uint32_t p = 0; p < 40; ++p) {
      if (bits->Get(p)) r->offered.insert(p);
    }
    readers.push_back(std::move(r));
  }
  // Alone, bob was offered everything; then carol 16 (32 shared by two),
  // dave 10 (by three). Bob kept 16 then 10, carol 10: the rest was
  // withdrawn from them, and no piece is offered twice.
  EXPECT_EQ(readers[0]->offered.size(), 40u);
  EXPECT_EQ(readers[1]->offered.size(), 16u);
  EXPECT_EQ(readers[2]->offered.size(), 10u);
  for (auto [reader, withdrawn] : {std::pair{0, 30}, std::pair{1, 6}}) {
    for (int i = 0; i < withdrawn; ++i) {
      pv1::BitfieldUpdate update;
      ASSERT_TRUE(readers[reader]->stream->Read(&update));
      ASSERT_TRUE(update.has_withdrawn());
      EXPECT_EQ(readers[reader]->offered.erase(update.withdrawn()), 1u);
    }
    EXPECT_EQ(readers[reader]->offered.size(), 10u);
  }
  std::set<uint32_t> all;
  for (auto& r : readers) {
    for (uint32_t p : r->offered) EXPECT_TRUE(all.insert(p).second) << p << " offered twice";
  }
  // dave fetches one of his: asked for, so it is withdrawn from him, and he
  // is offered another that nobody else is.
  const uint32_t piece = *readers[2]->offered.begin();
  pv1::GetPieceRequest one = readers[2]->ticketed.request;
  one.clear_pieces();
  one.add_pieces(piece);
  grpc::ClientContext ctx;
  auto reader = readers[2]->stub->GetPiece(&ctx, one);
  pv1::PieceChunk chunk;
  std::string data;
  while (reader->Read(&chunk)) data += chunk.data();
  ASSERT_TRUE(reader->Finish().ok());
  EXPECT_TRUE(data == testing::ReadFile(path).substr(uint64_t{piece} << 19, 1 << 19));
  pv1::BitfieldUpdate more;
  ASSERT_TRUE(readers[2]->stream->Read(&more));
  ASSERT_TRUE(more.has_withdrawn());
  EXPECT_EQ(more.withdrawn(), piece);
  ASSERT_TRUE(readers[2]->stream->Read(&more));
  ASSERT_TRUE(more.has_have());
  EXPECT_FALSE(all.count(more.have())) << more.have() << " offered already";
  for (auto& r : readers) r->ctx.TryCancel();
}

TEST_F(Sharing, ThirtyTwoSeedersAtOnceWithAtMostEightDownloadThreads) {
  const size_t size = 64 << 20;
  // Capped, so that the download waits for the others to connect rather
  // than end before half of them could send a piece (as it did on a busy
  // machine).
  auto alice = cluster_.StartUser("alice", {"--max_upload_rate", "4096"});
  auto dave = cluster_.StartUser("dave", {"--max_peers", "32"});
  cluster_.AddMember(*alice, *dave, "g");
  std::string path = MakeFile("alice", "f.bin", size);
  EXPECT_THAT(alice->Run("upload_file " + path + " g"), StartsWith("shared"));
  auto hashed = HashFile(path);
  ASSERT_TRUE(hashed.ok());

  // 31 more seeders: one server in this process, a port and a user each,
  // each slower than the downloader, so that more of them are worth using.
  constexpr int kFakes = 31;
  HonestPeer service(testing::ReadFile(path), hashed->piece_size, absl::Milliseconds(20));
  grpc::ServerBuilder builder;
  builder.RegisterService(&service);
  std::vector<int> ports(kFakes);
  std::vector<testing::TestMember> fakes;
  for (int i = 0; i < kFakes; ++i) {
    fakes.push_back(testing::NewMember(cluster_, absl::StrCat("s", i)));
    ASSERT_NE(fakes[i].identity, nullptr);
    builder.AddListeningPort("127.0.0.1:0", fakes[i].identity->ServerCredentials(), &ports[i]);
  }
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_NE(server, nullptr);
  for (int i = 0; i < kFakes; ++i) {
    ASSERT_GT(ports[i], 0);
    JoinAsFakeSharer(cluster_, *alice, fakes[i], "g", ports[i]);
  }
  for (int i = 0; i < kFakes; ++i) UploadAsFakeSharer(cluster_, fakes[i], "g", *hashed, ports[i]);

  const pid_t downloader = dave->shell->pid();
  const long threads_before = ProcStatus(downloader, "Threads");
  EXPECT_THAT(dave->Run("download_file g f.bin " + Dest("out.bin")), StartsWith("downloading"));
  long threads_peak = threads_before;
  const absl::Time deadline = absl::Now() + absl::Seconds(90);
  while (!absl::StrContains(dave->Run("show_downloads"), "[C]") && absl::Now() < deadline) {
    threads_peak = std::max(threads_peak, ProcStatus(downloader, "Threads"));
    absl::SleepFor(absl::Milliseconds(20));  // a sampling interval, not a wait for a condition
  }
  EXPECT_EQ(cluster_.WaitForDownload(*dave, "[C]"), "[C] [g] f.bin -> " + Dest("out.bin"));
  EXPECT_TRUE(testing::ReadFile(Dest("out.bin")) == testing::ReadFile(path));
  EXPECT_LE(threads_peak - threads_before, 8)
      << "threads before " << threads_before << ", at peak " << threads_peak;
  // More peers than the default connection limit supplied pieces.
  EXPECT_GT(BytesByPeer(*dave, "f.bin").size(), 16u) << dave->Log();
  server->Shutdown(std::chrono::system_clock::now());
}

TEST_F(Sharing, PlantedPartSymlinkLeavesItsTargetUntouched) {
  auto alice = cluster_.StartUser("alice");
  auto dave = cluster_.StartUser("dave");
  cluster_.AddMember(*alice, *dave, "g");
  Share(*alice, "f.bin", 1 << 20);
  testing::WriteFile(Dest("precious.txt"), "keep me");
  ASSERT_EQ(symlink(Dest("precious.txt").c_str(), Dest("out.bin.part").c_str()), 0);
  dave->Run("download_file g f.bin " + Dest("out.bin"));
  EXPECT_THAT(cluster_.WaitForDownload(*dave, "[F]"), HasSubstr("is a symbolic link"));
  EXPECT_EQ(testing::ReadFile(Dest("precious.txt")), "keep me");
  struct stat st;
  EXPECT_NE(stat(Dest("out.bin").c_str(), &st), 0);
}

TEST_F(Sharing, PartialDownloaderServesAThirdClient) {
  const size_t size = 16 << 20;
  auto alice = cluster_.StartUser("alice", {"--max_upload_rate", "2048"});
  auto bob = cluster_.StartUser("bob");
  auto carol = cluster_.StartUser("carol");
  cluster_.AddMember(*alice, *bob, "g");
  cluster_.AddMember(*alice, *carol, "g");
  Share(*alice, "f.bin", size);
  EXPECT_THAT(bob->Run("download_file g f.bin " + Dest("bob.bin")), StartsWith("downloading"));
  ASSERT_GE(cluster_.WaitForPercent(*bob, 20), 20);
  // Bob holds some pieces and is offered as a partial source.
  EXPECT_THAT(carol->Run("list_files g"), HasSubstr("peers=2 seeders=1"));
  EXPECT_THAT(carol->Run("download_file g f.bin " + Dest("carol.bin")), StartsWith("downloading"));
  EXPECT_EQ(cluster_.WaitForDownload(*carol, "[C]"), "[C] [g] f.bin -> " + Dest("carol.bin"));
  EXPECT_EQ(cluster_.WaitForDownload(*bob, "[C]"), "[C] [g] f.bin -> " + Dest("bob.bin"));
  EXPECT_GT(BytesByPeer(*carol, "f.bin")["bob"], 0u) << carol->Log();
  EXPECT_TRUE(testing::ReadFile(Dest("carol.bin")) ==
              testing::ReadFile(cluster_.dir().File("files-alice/f.bin")));
}

TEST_F(Sharing, CompletedDownloadsAreListedUntilClearedAcrossRestarts) {
  auto alice = cluster_.StartUser("alice");
  auto bob = cluster_.StartUser("bob");
  cluster_.AddMember(*alice, *bob, "g");
  Share(*alice, "f.bin", 1 << 20);
  EXPECT_THAT(bob->Run("download_file g f.bin " + Dest("f.bin")), StartsWith("downloading"));
  const std::string done = "[C] [g] f.bin -> " + Dest("f.bin");
  EXPECT_EQ(cluster_.WaitForDownload(*bob, "[C]"), done);
  EXPECT_EQ(bob->Run("stop_share g f.bin"), "stopped sharing f.bin in g");
  EXPECT_EQ(cluster_.Downloads(*bob), std::vector<std::string>{done});
  bob->shell->Send("quit");
  EXPECT_EQ(bob->shell->Wait(), 0);
  bob = cluster_.StartClient("bob");
  EXPECT_THAT(bob->Run("login bob pw-bob"), StartsWith("logged in as bob"));
  EXPECT_EQ(cluster_.Downloads(*bob), std::vector<std::string>{done});
  EXPECT_THAT(OtherNotices(*bob), ::testing::IsEmpty());  // history is no news
  EXPECT_EQ(bob->Run("show_downloads --clear"), "forgot the finished downloads");
  EXPECT_EQ(bob->Run("show_downloads"), "no downloads yet; start one with download_file");
  EXPECT_EQ(bob->Run("show_downloads --all"),
            "error: usage: show_downloads [--peers] [--clear]");
}

TEST_F(Sharing, LogoutStopsSharingAndLoginSharesAgain) {
  auto alice = cluster_.StartUser("alice");
  auto bob = cluster_.StartUser("bob", {"--no_source_timeout", "2"});
  cluster_.AddMember(*alice, *bob, "g");
  std::string path = MakeFile("alice", "f.bin", 3 << 20);
  EXPECT_THAT(alice->Run("upload_file " + path + " g"), StartsWith("shared"));
  EXPECT_THAT(bob->Run("list_files g"), HasSubstr("peers=1"));
  EXPECT_EQ(alice->Run("logout"), "logged out alice");
  // The share is kept but offline.
  EXPECT_THAT(bob->Run("list_files g"), StartsWith("f.bin size=3145728 (3.0 MiB) peers=0"));
  EXPECT_THAT(bob->Run("download_file g f.bin " + Dest("first.bin")), StartsWith("downloading"));
  EXPECT_THAT(cluster_.WaitForDownload(*bob, "[F]"),
              StartsWith("[F] [g] f.bin: no online peer has"));
  EXPECT_THAT(bob->shell->WaitForNotice("f.bin"),
              Optional(StartsWith("notice: download of f.bin from g failed: no online peer has")));
  // A new try takes the failed one's place, and fails the same way. (Once a
  // sharer is back, the client's own retries would take up the failed
  // download before a command could.)
  EXPECT_THAT(bob->Run("download_file g f.bin " + Dest("second.bin")), StartsWith("downloading"));
  EXPECT_THAT(cluster_.WaitForDownload(*bob, "[F]"),
              StartsWith("[F] [g] f.bin: no online peer has"));
  // A restarted client shares again at login, from its state folder, and
  // the download goes on.
  alice->shell->Send("quit");
  alice->shell->Wait();
  alice = cluster_.StartClient("alice");
  EXPECT_EQ(alice->Run("login alice pw-alice"), "logged in as alice; sharing 1 file again");
  EXPECT_THAT(bob->Run("list_files g"), HasSubstr("peers=1"));
  EXPECT_EQ(cluster_.WaitForDownload(*bob, "[C]"), "[C] [g] f.bin -> " + Dest("second.bin"));
  EXPECT_EQ(bob->shell->WaitForNotice("is back: its download goes on"),
            "notice: a sharer of f.bin in g is back: its download goes on");
  EXPECT_TRUE(testing::ReadFile(Dest("second.bin")) == testing::ReadFile(path));
  // The retry took the failed entry's place.
  EXPECT_EQ(cluster_.Downloads(*bob),
            std::vector<std::string>{"[C] [g] f.bin -> " + Dest("second.bin")});
  // Bob logs out and in: his completed download is shared again too.
  EXPECT_EQ(bob->Run("logout"), "logged out bob");
  EXPECT_EQ(bob->Run("login bob pw-bob"), "logged in as bob; sharing 1 file again");
  EXPECT_EQ(alice->Run("stop_share g f.bin"), "stopped sharing f.bin in g");
  EXPECT_THAT(bob->Run("list_files g"), HasSubstr("peers=1 seeders=1"));
}

// A shared file edited while its sharer was logged out is not served as it
// is at the next login: its pieces no longer match the hashes the group
// has. The sharer stops sharing it, here and at the tracker, and says so.
TEST_F(Sharing, AFileChangedWhileLoggedOutIsNotSharedAgain) {
  auto alice = cluster_.StartUser("alice");
  auto bob = cluster_.StartUser("bob");
  cluster_.AddMember(*alice, *bob, "g");
  std::string path = MakeFile("alice", "f.bin", 1 << 20);
  std::string kept = MakeFile("alice", "kept.bin", 1 << 20, 2);
  EXPECT_THAT(alice->Run("upload_file " + path + " g"), StartsWith("shared"));
  EXPECT_THAT(alice->Run("upload_file " + kept + " g"), StartsWith("shared"));
  // Again: nothing new for the group, nor for alice.
  EXPECT_THAT(alice->Run("upload_file " + kept + " g"), ::testing::EndsWith("; you share this already"));
  EXPECT_THAT(bob->Run("upload_file " + MakeFile("bob", "kept.bin", 1 << 20, 2) + " g"),
              ::testing::EndsWith("; others share it too, and you are now one of its sources"));
  // The shell names its own commands, not the tracker's calls.
  EXPECT_EQ(bob->Run("list_files nosuch"), "error: no group 'nosuch'; list_groups lists the groups there are");
  EXPECT_EQ(alice->Run("logout"), "logged out alice");
  Rewrite(path, 3);
  EXPECT_EQ(alice->Run("login alice pw-alice"), "logged in as alice; sharing 1 file again");
  EXPECT_THAT(alice->shell->WaitForNotice("f.bin"),
              Optional(StartsWith("notice: stopped sharing f.bin in g: its file changed since it "
                                  "was shared")));
  EXPECT_THAT(bob->Run("list_files g"), StartsWith("kept.bin"));
  EXPECT_EQ(bob->shell->ReadLine(absl::Seconds(1)), std::nullopt) << "f.bin is still listed";
}

// A sharer whose file is edited while it shares it stops serving it at the
// next request for a piece (it would send bytes that fail their hashes)
// and says so; a downloader then finds nobody with it, and, since the
// tracker no longer lists the file, gives up at once (not at the no-source
// timeout, long here).
TEST_F(Sharing, AFileChangedWhileSharedIsNoLongerServed) {
  auto alice = cluster_.StartUser("alice");
  auto bob = cluster_.StartUser("bob", {"--no_source_timeout", "600"});
  cluster_.AddMember(*alice, *bob, "g");
  std::string path = MakeFile("alice", "f.bin", 1 << 20);
  EXPECT_THAT(alice->Run("upload_file " + path + " g"), StartsWith("shared"));
  Rewrite(path, 3);
  EXPECT_THAT(bob->Run("download_file g f.bin " + Dest("out.bin")), StartsWith("downloading"));
  EXPECT_THAT(alice->shell->WaitForNotice("f.bin"),
              Optional(StartsWith("notice: stopped sharing f.bin in g: it changed since it was "
                                  "shared")));
  EXPECT_EQ(cluster_.WaitForDownload(*bob, "[F]"),
            "[F] [g] f.bin: the tracker lists no sharer of it now (group 'g' has no file "
            "'f.bin'); it goes on when a member shares it again");
  struct stat st;
  EXPECT_NE(stat(Dest("out.bin").c_str(), &st), 0) << "a file that fails its hashes was finished";
  // Shared again as it is now, it comes: the client takes the failed
  // download up again by itself.
  EXPECT_THAT(alice->Run("upload_file " + path + " g"), StartsWith("shared"));
  EXPECT_EQ(cluster_.WaitForDownload(*bob, "[C]"), "[C] [g] f.bin -> " + Dest("out.bin"));
  EXPECT_TRUE(testing::ReadFile(Dest("out.bin")) == testing::ReadFile(path));
}

// Mounts a file system of `bytes` at `dir`, seen by this thread and the
// processes it starts from now on only (a mount namespace of its own).
// False where that is not allowed (not root).
bool MountSmallFileSystem(const std::string& dir, size_t bytes) {
  if (mkdir(dir.c_str(), 0700) != 0) return false;
  if (unshare(CLONE_NEWNS) != 0) return false;
  if (mount("none", "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) return false;
  const std::string options = absl::StrCat("size=", bytes, ",mode=0700");
  return mount("tmpfs", dir.c_str(), "tmpfs", 0, options.c_str()) == 0;
}

// Writes `path` until its file system has no room left (at most `limit`).
void FillUp(const std::string& path, size_t limit) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  ASSERT_GE(fd, 0);
  const std::string block(4096, 'x');
  for (size_t written = 0; written < limit;) {
    ssize_t n = write(fd, block.data(), block.size());
    if (n <= 0) break;
    written += static_cast<size_t>(n);
  }
  close(fd);
}

// A client whose state folder cannot be written (its disk is full) says so,
// and does not stay listed as the source of a share it could not record.
TEST_F(Sharing, AShareTheStateFolderCannotRecordIsWithdrawn) {
  const std::string state_dir = cluster_.dir().File("client-alice");
  if (!MountSmallFileSystem(state_dir, 2 << 20)) {
    GTEST_SKIP() << "mounting a small file system needs root";
  }
  auto alice = cluster_.StartUser("alice");
  auto bob = cluster_.StartUser("bob");
  cluster_.AddMember(*alice, *bob, "g");
  const std::string path = MakeFile("alice", "f.bin", 1 << 20);
  const std::string filler = state_dir + "/filler";
  FillUp(filler, 4 << 20);

  EXPECT_EQ(alice->Run("upload_file " + path + " g"),
            "error: the state folder could not be written (database or disk is full); f.bin "
            "is not shared");
  EXPECT_EQ(bob->Run("list_files g"), "no files in g yet");

  ASSERT_EQ(unlink(filler.c_str()), 0);
  EXPECT_THAT(alice->Run("upload_file " + path + " g"),
              ::testing::MatchesRegex("shared f\\.bin in g \\([^;]*\\)"));
  EXPECT_THAT(bob->Run("download_file g f.bin " + Dest("out.bin")), StartsWith("downloading"));
  EXPECT_EQ(cluster_.WaitForDownload(*bob, "[C]"), "[C] [g] f.bin -> " + Dest("out.bin"));
  EXPECT_TRUE(testing::ReadFile(Dest("out.bin")) == testing::ReadFile(path));
  // The mount goes with this process; detached now, its folder can be removed.
  umount2(state_dir.c_str(), MNT_DETACH);
}

// Polls `client`'s list_files g until its first line contains `needle`.
bool WaitForListing(Cluster::Client& client, absl::string_view needle,
                    absl::Duration timeout = absl::Seconds(20)) {
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    if (absl::StrContains(client.Run("list_files g"), needle)) return true;
    absl::SleepFor(absl::Milliseconds(100));  // the tracker's clock has no event to wait on
  }
  return false;
}

// alice shares f.bin (random bytes) in group g, of which bob is a member.
// The flags are added to the tracker's, alice's and bob's command lines.
struct AliceSharesWithBob {
  AliceSharesWithBob(const std::vector<std::string>& tracker_flags, size_t size,
                     const std::vector<std::string>& alice_flags = {},
                     const std::vector<std::string>& bob_flags = {})
      : cluster(tracker_flags),
        alice(cluster.StartUser("alice", alice_flags)),
        bob(cluster.StartUser("bob", bob_flags)),
        path(cluster.dir().File("f.bin")) {
    cluster.AddMember(*alice, *bob, "g");
    testing::WriteFile(path, testing::RandomBytes(size, static_cast<uint32_t>(size)));
    EXPECT_THAT(alice->Run("upload_file " + path + " g"), StartsWith("shared"));
  }
  // bob downloads f.bin, which must arrive byte for byte.
  void ExpectBobDownloads() {
    const std::string out = cluster.dir().File("out.bin");
    EXPECT_THAT(bob->Run("download_file g f.bin " + out), StartsWith("downloading"));
    EXPECT_THAT(bob->shell->WaitForNotice("f.bin"), Optional(HasSubstr("complete")));
    EXPECT_TRUE(testing::ReadFile(out) == testing::ReadFile(path));
  }

  Cluster cluster;
  std::unique_ptr<Cluster::Client> alice, bob;
  const std::string path;
};

// A client that could not reach the tracker for longer than its session's
// lifetime is offline meanwhile, and then carries on: logged in, sharing.
TEST(SessionExpiry, ClientOfflineForAWhileKeepsItsSession) {
  AliceSharesWithBob peers({"--session_ttl", "3"}, 1 << 20);
  auto& [cluster, alice, bob, path] = peers;
  EXPECT_THAT(bob->Run("list_files g"), HasSubstr("peers=1"));
  // Frozen past its session's lifetime: no keep-alive reaches the tracker.
  alice->shell->Signal(SIGSTOP);
  EXPECT_TRUE(WaitForListing(*bob, "peers=0"));
  alice->shell->Signal(SIGCONT);
  EXPECT_TRUE(WaitForListing(*bob, "peers=1"));
  EXPECT_THAT(alice->Run("list_groups"), StartsWith("g owner=alice"));
  peers.ExpectBobDownloads();
  EXPECT_THAT(OtherNotices(*alice), ::testing::IsEmpty());
  EXPECT_THAT(testing::ReadFile(cluster.dir().File("tracker.log")),
              HasSubstr("session of alice is back"));
}

// A session the tracker no longer knows (its database was lost) ends at
// once: the client says so unasked and stops sharing.
TEST(SessionExpiry, SessionTheTrackerForgotEndsAndTheShellSaysSo) {
  // The tracker's certificate is the operator's (--tls_cert), so that it
  // outlives the database; one the tracker made would go with it, and the
  // clients would refuse the new one (see Tls.TrustOnFirstUse...).
  testing::TempDir certs;
  Cluster cluster(Concat({"--session_ttl", "3"}, OperatorCertificate(certs)));
  auto alice = cluster.StartUser("alice");
  auto bob = cluster.StartUser("bob");
  cluster.KillTracker();
  for (const char* f : {"tracker.db", "tracker.db-wal", "tracker.db-shm"}) {
    std::remove(cluster.dir().File(f).c_str());
  }
  cluster.StartTracker();
  EXPECT_THAT(alice->shell->WaitForNotice("session"),
              Optional(StartsWith("notice: the tracker ended the session of alice")));
  EXPECT_THAT(alice->Run("list_groups"), StartsWith("error: not logged in"));
  // Bob's keep-alives, one a second, are not on the tracker's console; the
  // refused ones are.
  EXPECT_THAT(bob->shell->WaitForNotice("session"), Optional(HasSubstr("session of bob")));
  const std::string console = testing::ReadFile(cluster.dir().File("tracker.log"));
  EXPECT_THAT(console, HasSubstr("KeepAlive user=- code=UNAUTHENTICATED"));
  EXPECT_THAT(console, Not(HasSubstr("KeepAlive user=bob")));
}

// The tracker down for 15 s, three times the session's lifetime: clients
// say plainly that no tracker answers, and when it is back they are still
// logged in and sharing, without a word about sessions.
TEST(TrackerRestart, ClientsStayLoggedInAndSharing) {
  AliceSharesWithBob peers({"--session_ttl", "5"}, 3 << 20);
  auto& [cluster, alice, bob, path] = peers;
  cluster.KillTracker();
  // Said plainly (the reason depends on whether the connection had broken
  // off yet), and with no word of gRPC's.
  const std::string down = bob->Run("list_files g");
  EXPECT_THAT(down, StartsWith("error: no tracker answers (tried 127.0.0.1:" +
                               std::to_string(cluster.tracker_port()) + "): "));
  for (const char* grpc_words : {"Socket closed", "failed to connect", "UNKNOWN", "ipv4:"}) {
    EXPECT_THAT(down, Not(HasSubstr(grpc_words)));
  }
  EXPECT_THAT(bob->Run("list_files g"),
              StartsWith("error: no tracker answers (tried 127.0.0.1:" +
                         std::to_string(cluster.tracker_port()) +
                         "): nothing listens at those addresses"));
  absl::SleepFor(absl::Seconds(15));  // the outage itself
  const absl::Time back = absl::Now();
  cluster.StartTracker();
  // Commands work again at once (the channel reconnects within a second).
  EXPECT_THAT(alice->Run("list_groups"), StartsWith("g owner=alice"));
  EXPECT_LT(absl::Now() - back, absl::Seconds(5));
  EXPECT_TRUE(WaitForListing(*bob, "peers=1"));
  peers.ExpectBobDownloads();
  EXPECT_THAT(OtherNotices(*alice), ::testing::IsEmpty());
}

// A download that completes while no tracker answers is reported to the
// tracker once one does: bob is listed as a seeder, not as a leecher.
TEST(TrackerOutage, ACompletionNoTrackerHeardIsReportedWhenItIsBack) {
  AliceSharesWithBob peers({}, 8 << 20, {"--max_upload_rate", "2048"});
  auto& [cluster, alice, bob, path] = peers;
  const std::string out = cluster.dir().File("out.bin");
  EXPECT_THAT(bob->Run("download_file g f.bin " + out), StartsWith("downloading"));
  ASSERT_TRUE(WaitForListing(*bob, "peers=2 seeders=1"));  // bob holds some pieces
  cluster.KillTracker();
  EXPECT_EQ(cluster.WaitForDownload(*bob, "[C]"), "[C] [g] f.bin -> " + out);
  // Completed with no tracker to hear it (the tracker saw it partial, and
  // it is gone), yet listed as a seeder once a tracker is back.
  cluster.StartTracker();
  EXPECT_TRUE(WaitForListing(*bob, "peers=2 seeders=2"));
}

// A stop_share no tracker heard is kept in the state folder: after the
// client restarts and logs in, the tracker hears of it.
TEST(TrackerOutage, AStopShareNoTrackerHeardLandsAfterTheClientRestarts) {
  AliceSharesWithBob peers({}, 1 << 20);
  auto& [cluster, alice, bob, path] = peers;
  ASSERT_TRUE(WaitForListing(*bob, "peers=1"));
  cluster.KillTracker();
  EXPECT_EQ(alice->Run("stop_share g f.bin"), "stopped sharing f.bin in g");
  alice->Run("quit");
  ASSERT_THAT(alice->shell->Wait(), Optional(0));
  cluster.StartTracker();
  alice = cluster.StartClient("alice");
  EXPECT_THAT(alice->Run("login alice pw-alice"), StartsWith("logged in as alice"));
  EXPECT_TRUE(WaitForListing(*bob, "no files in g yet")) << alice->Log();
}

// A download that failed because no sharer was online goes on by itself
// once one is back.
TEST(TrackerOutage, ADownloadThatFoundNoSharerGoesOnWhenOneIsBack) {
  AliceSharesWithBob peers({}, 6 << 20, {"--max_upload_rate", "1024"},
                           {"--no_source_timeout", "1"});
  auto& [cluster, alice, bob, path] = peers;
  const std::string out = cluster.dir().File("out.bin");
  EXPECT_THAT(bob->Run("download_file g f.bin " + out), StartsWith("downloading"));
  ASSERT_GE(cluster.WaitForPercent(*bob, 5), 5);
  EXPECT_THAT(alice->Run("logout"), StartsWith("logged out"));
  EXPECT_THAT(bob->shell->WaitForNotice("failed"),
              Optional(HasSubstr("it goes on when a sharer is back")));
  EXPECT_THAT(cluster.Downloads(*bob), ::testing::Contains(StartsWith("[F] [g] f.bin")));
  EXPECT_THAT(alice->Run("login alice pw-alice"), StartsWith("logged in as alice"));
  EXPECT_THAT(bob->shell->WaitForNotice("its download goes on"),
              Optional(HasSubstr("a sharer of f.bin in g is back: its download goes on")));
  EXPECT_EQ(cluster.WaitForDownload(*bob, "[C]"), "[C] [g] f.bin -> " + out);
  EXPECT_TRUE(testing::ReadFile(out) == testing::ReadFile(path));
}

// A holder of a member's ticket opens the most calls the member may have
// at a peer and reads none: they are all cut off in time, those waiting
// for the read budget too, and the member's own download goes on.
Sharing::CopiedTicket Sharing::ShareWithACopiedTicket(
    const std::vector<std::string>& alice_flags) {
  CopiedTicket out;
  out.alice = cluster_.StartUser("alice", alice_flags);
  out.bob = cluster_.StartUser("bob");
  cluster_.AddMember(*out.alice, *out.bob, "g");
  out.path = MakeFile("alice", "f.bin", 8 << 20);
  EXPECT_THAT(out.alice->Run("upload_file " + out.path + " g"), StartsWith("shared"));
  Ticketed ticketed = TicketedRequest(
      cluster_, "bob", HexEncode(Sha1Of(testing::ReadFile(out.path))), "copied-ticket");
  out.request = std::move(ticketed.request);
  out.copier = std::move(ticketed.member);
  return out;
}

// GetPiece calls for `request` that read nothing, `n` of them spread over
// `peers`, each ending at `deadline` from now at the latest (if given).
struct StalledCalls {
  StalledCalls(int n, const std::vector<pv1::PeerService::Stub*>& peers,
               const pv1::GetPieceRequest& request,
               std::optional<absl::Duration> deadline = std::nullopt) {
    for (int i = 0; i < n; ++i) {
      contexts.push_back(std::make_unique<grpc::ClientContext>());
      if (deadline.has_value()) {
        contexts.back()->set_deadline(std::chrono::system_clock::now() +
                                      absl::ToChronoMilliseconds(*deadline));
      }
      readers.push_back(peers[i % peers.size()]->GetPiece(contexts.back().get(), request));
    }
  }
  ~StalledCalls() {
    for (auto& c : contexts) c->TryCancel();
  }
  std::vector<std::unique_ptr<grpc::ClientContext>> contexts;
  std::vector<std::unique_ptr<grpc::ClientReader<pv1::PieceChunk>>> readers;
};

TEST_F(Sharing, CallsThatNeverReadAreCutOffWaitingOnesToo) {
  auto [alice, bob, path, all, copier] =
      ShareWithACopiedTicket({"--stalled_reader_timeout", "5"});
  // Two connections of 24 calls: a peer takes 32 at once on one, and the
  // rest would only start once the first were cut off. A third asks for a
  // piece once they are.
  std::vector<std::unique_ptr<pv1::PeerService::Stub>> peers;
  for (int c = 0; c < 3; ++c) peers.push_back(UnreadingPeer(alice->port, copier.To("alice")));
  // 16 calls take the 8 MiB read budget (a chunk each) and stall; each ends
  // in 13 s at the latest: long enough for the cut-off (5 s and a
  // housekeeping tick) on a loaded machine.
  StalledCalls first(16, {peers[0].get(), peers[1].get()}, all, absl::Seconds(13));
  // 2 s later, 32 more, as many as the user may have open besides, wait for
  // the budget. Each ends 9 s after the first at the latest: they must end
  // with the first, when the client's reader has taken nothing for 5 s,
  // not when they have waited that long themselves (at 7 s), nor take the
  // budget the first free and stall in turn (until 11 s or later).
  absl::SleepFor(absl::Seconds(2));  // when the later calls come: the scenario, not a wait
  StalledCalls later(32, {peers[0].get(), peers[1].get()}, all, absl::Seconds(7));
  // bob's own client (another client, with an allowance of its own)
  // downloads meanwhile.
  ExpectDownloadWithin30s(*bob, *alice, path);
  // A call is read only once the peer holds none of bob's open, or the read
  // would let it go on.
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  std::string uploads;
  while (absl::StrContains(uploads = alice->Run("show_uploads"), "now to bob") &&
         absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(100));  // the peer's calls have no event to wait on
  }
  EXPECT_THAT(uploads, Not(HasSubstr("now to bob")));
  std::map<grpc::StatusCode, int> ends;
  for (StalledCalls* calls : {&first, &later}) {
    for (auto& reader : calls->readers) {
      pv1::PieceChunk chunk;
      while (reader->Read(&chunk)) {
      }
      ++ends[reader->Finish().error_code()];
    }
  }
  // A call cut while it waited ends CANCELLED or with the peer's
  // RESOURCE_EXHAUSTED, whichever reaches the caller first.
  const std::string codes = [&] {
    std::string out;
    for (const auto& [code, n] : ends) absl::StrAppend(&out, " ", code, "x", n);
    return out;
  }();
  EXPECT_EQ(ends[grpc::StatusCode::DEADLINE_EXCEEDED], 0) << codes;
  EXPECT_EQ(ends[grpc::StatusCode::CANCELLED] + ends[grpc::StatusCode::RESOURCE_EXHAUSTED], 48)
      << codes;
  // The client's allowance is whole again.
  EXPECT_EQ(AskUntil(*peers[2], all, grpc::StatusCode::OK), grpc::StatusCode::OK);
}

// A channel to 127.0.0.1:`port` on a connection from `source` (another
// loopback address), as from another machine; null if it cannot connect.
std::shared_ptr<grpc::Channel> ChannelFrom(const char* source, int port) {
  const int fd = testing::ConnectFrom(source, port);
  if (fd < 0) return nullptr;
  // No window growth: a caller that reads nothing keeps its calls open, as
  // a stalled reader does, rather than taking in whole pieces unread.
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  return grpc::CreateCustomInsecureChannelFromFd("127.0.0.1", fd, args);
}

// Over TLS each of a member's clients has an allowance of its own, named by
// its certificate: bob's other device (another client id, the same user and
// address) opens calls that never read, as many as a client may have open;
// bob's own client is served all the same, long before they are cut off.
TEST_F(Sharing, EachOfAMembersClientsHasAnAllowanceOfItsOwn) {
  auto [alice, bob, path, all, other_device] =
      ShareWithACopiedTicket({"--stalled_reader_timeout", "120"});
  std::vector<std::unique_ptr<pv1::PeerService::Stub>> peers;
  for (int c = 0; c < 3; ++c) {  // 24 calls a connection, within its 32 streams
    peers.push_back(UnreadingPeer(alice->port, other_device.To("alice")));
  }
  StalledCalls stalled(48, {peers[0].get(), peers[1].get()}, all);
  // That client's allowance is used up: one call more is refused.
  EXPECT_EQ(OneCallMore(*peers[2], all), grpc::StatusCode::RESOURCE_EXHAUSTED);
  // bob's own client, from the same address, is served.
  ExpectDownloadWithin30s(*bob, *alice, path);
}

// Over plaintext (--plaintext on every side), where a ticket alone admits
// a caller.
class PlaintextSharing : public Sharing {
 protected:
  PlaintextSharing() : Sharing({"--plaintext"}, {"--plaintext"}) {}
};

// bob's ticket, copied to someone at another address who opens calls that
// never read, as many as a user may have open: they use up that address's
// allowance, not bob's own client's, which downloads long before the
// stalled calls are cut off. (Over TLS a copied ticket is refused outright:
// it serves only over its member's certificate.)
TEST_F(PlaintextSharing, ACopiedTicketElsewhereCannotUseUpTheMembersAllowance) {
  auto [alice, bob, path, all, copier] =
      ShareWithACopiedTicket({"--stalled_reader_timeout", "120"});
  std::vector<std::unique_ptr<pv1::PeerService::Stub>> copies;
  for (int c = 0; c < 3; ++c) {  // 24 calls a connection, within its 32 streams
    auto channel = ChannelFrom("127.0.0.2", alice->port);
    ASSERT_NE(channel, nullptr);
    copies.push_back(pv1::PeerService::NewStub(channel));
  }
  // As many as a user may have open at a peer.
  StalledCalls stalled(48, {copies[0].get(), copies[1].get()}, all);
  // The copier's allowance is used up: one call more is refused.
  EXPECT_EQ(OneCallMore(*copies[2], all), grpc::StatusCode::RESOURCE_EXHAUSTED);
  // bob's own client is served all the same, well before the cut-off.
  ExpectDownloadWithin30s(*bob, *alice, path);
}

// download_file of a file this client shares makes it from the local file:
// a hard link on the same file system, a checked copy on another one.
TEST_F(Sharing, DownloadingAFileYouShareLinksOrCopiesIt) {
  auto alice = cluster_.StartUser("alice");
  EXPECT_THAT(alice->Run("create_group g"), StartsWith("group g created"));
  Share(*alice, "f.bin", 3 << 20);
  const std::string original = cluster_.dir().File("files-alice/f.bin");
  EXPECT_EQ(alice->Run("download_file g f.bin " + Dest("link.bin")),
            "you share f.bin in g already: " + Dest("link.bin") +
                " is a hard link of your file (3.0 MiB)");
  struct stat a, b;
  ASSERT_EQ(stat(original.c_str(), &a), 0);
  ASSERT_EQ(stat(Dest("link.bin").c_str(), &b), 0);
  EXPECT_EQ(a.st_ino, b.st_ino);
  EXPECT_THAT(cluster_.Downloads(*alice),
              ::testing::Contains("[C] [g] f.bin -> " + Dest("link.bin")));
  // Another file system, where links cannot go.
  char other[] = "/dev/shm/groupshare-test.XXXXXX";
  if (mkdtemp(other) == nullptr) GTEST_SKIP() << "no /dev/shm here";
  struct stat shm;
  ASSERT_EQ(stat(other, &shm), 0);
  const std::string copy = std::string(other) + "/copy.bin";
  const std::string answer = alice->Run("download_file g f.bin " + copy);
  if (shm.st_dev != a.st_dev) {
    EXPECT_EQ(answer, "you share f.bin in g already: " + copy + " is a copy of your file (3.0 MiB)");
    ASSERT_EQ(stat(copy.c_str(), &b), 0);
    EXPECT_NE(a.st_ino, b.st_ino);
  }
  EXPECT_TRUE(testing::ReadFile(copy) == testing::ReadFile(original));
  unlink(copy.c_str());
  rmdir(other);
}

// SIGINT stops a client of a pipe while upload_file hashes a large file,
// at once rather than once the hashing ends.
TEST_F(Sharing, SigintStopsAClientWhileItHashes) {
  auto alice = cluster_.StartUser("alice");
  EXPECT_THAT(alice->Run("create_group g"), StartsWith("group g created"));
  const std::string huge = cluster_.dir().File("huge.bin");
  {
    int fd = open(huge.c_str(), O_CREAT | O_WRONLY, 0644);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(ftruncate(fd, off_t{16} << 30), 0);  // sparse: still a minute to read
    close(fd);
  }
  alice->shell->Send("upload_file " + huge + " g");
  absl::SleepFor(absl::Milliseconds(500));  // hashing has begun; nothing to wait on
  const absl::Time signalled = absl::Now();
  alice->shell->Signal(SIGINT);
  EXPECT_THAT(alice->shell->WaitFor("stopped while hashing huge.bin"),
              Optional(HasSubstr("error: stopped while hashing huge.bin")));
  EXPECT_THAT(alice->shell->Wait(), Optional(0));
  EXPECT_LT(absl::Now() - signalled, absl::Seconds(5));
}

// show_uploads tells who downloads what now and what each share sent since
// login; set changes the limits at run time.
TEST_F(Sharing, ShowUploadsAndLimitsChangedAtRunTime) {
  const size_t size = 4 << 20;
  auto alice = cluster_.StartUser("alice", {"--max_upload_rate", "64"});
  auto bob = cluster_.StartUser("bob");
  cluster_.AddMember(*alice, *bob, "g");
  EXPECT_EQ(alice->Run("show_uploads"), "nothing sent since login");
  Share(*alice, "f.bin", size);
  EXPECT_THAT(bob->Run("download_file g f.bin " + Dest("out.bin")), StartsWith("downloading"));
  // At 64 KiB/s the download would take a minute.
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  std::string uploads;
  while (absl::Now() < deadline &&
         !std::regex_match(uploads = alice->Run("show_uploads"),
                           std::regex(R"(\[g\] f\.bin: [0-9.]+ KiB sent since login; now to bob at 0\.[01] MiB/s)"))) {
    absl::SleepFor(absl::Milliseconds(200));  // the rate is measured each second
  }
  EXPECT_THAT(uploads, StartsWith("[g] f.bin: ")) << uploads;
  EXPECT_THAT(uploads, HasSubstr("; now to bob at 0.")) << uploads;
  EXPECT_EQ(alice->Run("set upload_rate off"), "uploads are not capped");
  EXPECT_EQ(cluster_.WaitForDownload(*bob, "[C]", absl::Seconds(20)),
            "[C] [g] f.bin -> " + Dest("out.bin"));
  EXPECT_EQ(alice->Run("show_uploads"), "[g] f.bin: 4.0 MiB sent since login");
  EXPECT_EQ(alice->Run("set upload_rate 128"), "uploads send at most 128 KiB/s together");
  EXPECT_THAT(alice->Run("set upload_rate fast"), StartsWith("error: 'fast' is not a rate"));
  EXPECT_EQ(bob->Run("set max_peers 2"), "downloads connect to at most 2 peers at once");
  EXPECT_THAT(bob->Run("set max_peers 0"), StartsWith("error: '0' is not a peer count"));
  EXPECT_THAT(bob->Run("set speed 1"), StartsWith("error: no setting 'speed'"));
  // A new login counts from zero.
  EXPECT_THAT(alice->Run("logout"), StartsWith("logged out"));
  EXPECT_THAT(alice->Run("login alice pw-alice"), StartsWith("logged in as alice"));
  EXPECT_EQ(alice->Run("show_uploads"), "nothing sent since login");
}

// A download cap holds what all of a client's downloads receive together,
// and changes at run time.
TEST_F(Sharing, ADownloadCapHoldsAllOfAClientsDownloadsTogether) {
  auto alice = cluster_.StartUser("alice");
  auto bob = cluster_.StartUser("bob", {"--max_download_rate", "1024"});
  cluster_.AddMember(*alice, *bob, "g");
  const std::vector<std::string> names = {"f1.bin", "f2.bin"};
  std::vector<std::string> paths;
  for (uint32_t i = 0; i < names.size(); ++i) {
    paths.push_back(MakeFile("alice", names[i], 2 << 20, /*seed=*/i + 1));
    EXPECT_THAT(alice->Run(absl::StrCat("upload_file ", paths[i], " g")), StartsWith("shared"));
  }
  const absl::Time start = absl::Now();
  for (const std::string& name : names) {
    EXPECT_THAT(bob->Run(absl::StrCat("download_file g ", name, " ", Dest(name))),
                StartsWith("downloading"));
  }
  for (const std::string& name : names) {
    EXPECT_EQ(cluster_.WaitForDownload(*bob, "[C] [g] " + name),
              absl::StrCat("[C] [g] ", name, " -> ", Dest(name)));
  }
  // 4 MiB at 1 MiB/s: the full bucket (1 MiB) and a piece on credit for
  // each download (2 x 512 KiB) go at once, the other 2 MiB take 2 s.
  // A cap of each download's own would have let both through in half a
  // second; without a cap, both take a small part of a second here.
  EXPECT_GE(absl::Now() - start, absl::Seconds(2));
  for (uint32_t i = 0; i < names.size(); ++i) {
    EXPECT_TRUE(testing::ReadFile(Dest(names[i])) == testing::ReadFile(paths[i])) << names[i];
  }
  EXPECT_EQ(bob->Run("set download_rate off"), "downloads are not capped");
  EXPECT_EQ(bob->Run("set download_rate 64"), "downloads receive at most 64 KiB/s together");
  EXPECT_THAT(bob->Run("set download_rate -1"), StartsWith("error: '-1' is not a rate"));
}

// Downloads beyond --max_active_downloads wait their turn in the order they
// came, holding no part file; one stopped while it waits just goes.
TEST_F(Sharing, DownloadsBeyondTheLimitWaitTheirTurnInOrder) {
  auto alice = cluster_.StartUser("alice", {"--max_upload_rate", "2048"});
  auto bob = cluster_.StartUser("bob", {"--max_active_downloads", "1"});
  cluster_.AddMember(*alice, *bob, "g");
  const std::vector<std::string> names = {"a.bin", "b.bin", "c.bin"};
  std::vector<std::string> paths;
  for (uint32_t i = 0; i < names.size(); ++i) {
    paths.push_back(MakeFile("alice", names[i], 4 << 20, /*seed=*/i + 1));
    EXPECT_THAT(alice->Run(absl::StrCat("upload_file ", paths[i], " g")), StartsWith("shared"));
  }
  for (const std::string& name : names) {
    EXPECT_THAT(bob->Run(absl::StrCat("download_file g ", name, " ", Dest(name))),
                StartsWith("downloading"));
  }
  // At 2 MiB/s a.bin takes two seconds: the others wait behind it.
  auto all_listed = [](const std::vector<std::string>& l) {
    return l.size() == 3 && absl::StrContains(l[2], "queued");
  };
  std::vector<std::string> lines = cluster_.Downloads(*bob);
  for (const absl::Time deadline = absl::Now() + absl::Seconds(10);
       !all_listed(lines) && absl::Now() < deadline; lines = cluster_.Downloads(*bob)) {
    absl::SleepFor(absl::Milliseconds(50));  // a poll with a deadline
  }
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_THAT(lines[0], StartsWith("[D] [g] a.bin "));
  EXPECT_EQ(lines[1],
            "[D] [g] b.bin queued: it starts when a running download ends (0 ahead of it)");
  EXPECT_EQ(lines[2],
            "[D] [g] c.bin queued: it starts when a running download ends (1 ahead of it)");
  EXPECT_NE(access((Dest("b.bin") + ".part").c_str(), F_OK), 0);
  EXPECT_THAT(bob->Run("stop_share g c.bin"), StartsWith("stopped sharing c.bin in g"));
  // A second slot lets b.bin start at once, beside a.bin.
  EXPECT_EQ(bob->Run("set active_downloads 2"),
            "at most 2 downloads run at once; the others wait their turn");
  EXPECT_THAT(bob->Run("set active_downloads 0"), StartsWith("error: '0' is not a download count"));
  for (const absl::Time deadline = absl::Now() + absl::Seconds(10);
       absl::StrContains(lines[1], "queued") && absl::Now() < deadline;
       lines = cluster_.Downloads(*bob)) {
    absl::SleepFor(absl::Milliseconds(50));  // a poll with a deadline
  }
  EXPECT_THAT(lines[1], HasSubstr("[g] b.bin ")) << lines[1];
  EXPECT_THAT(lines[1], Not(HasSubstr("queued"))) << lines[1];
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(cluster_.WaitForDownload(*bob, "[C] [g] " + names[i]),
              absl::StrCat("[C] [g] ", names[i], " -> ", Dest(names[i])));
    EXPECT_TRUE(testing::ReadFile(Dest(names[i])) == testing::ReadFile(paths[i])) << names[i];
  }
  EXPECT_EQ(cluster_.Downloads(*bob).size(), 2u);
  EXPECT_NE(access(Dest("c.bin").c_str(), F_OK), 0);
  EXPECT_NE(access((Dest("c.bin") + ".part").c_str(), F_OK), 0);
}

// What concerns a user reaches its shell unasked, at its next keep-alive:
// a request waiting for a group it owns, its own request accepted or
// refused (told at its next login when it was away), a group handed to it.
TEST(Notices, JoinRequestsTheirAnswersAndAGroupHandedOver) {
  Cluster cluster({"--session_ttl", "3"});
  auto alice = cluster.StartUser("alice");
  auto bob = cluster.StartUser("bob");
  auto carol = cluster.StartUser("carol");
  EXPECT_THAT(alice->Run("create_group g"), StartsWith("group g created"));
  EXPECT_THAT(bob->Run("join_group g"), StartsWith("asked to join g"));
  EXPECT_THAT(alice->shell->WaitForNotice("asks to join"),
              Optional(std::string("notice: bob asks to join g; accept_request g bob lets them in")));
  EXPECT_THAT(alice->Run("accept_request g bob"), StartsWith("bob is now a member of g"));
  EXPECT_THAT(bob->shell->WaitForNotice("accepted"),
              Optional(std::string("notice: alice accepted you into g")));
  EXPECT_THAT(carol->Run("join_group g"), StartsWith("asked to join g"));
  EXPECT_THAT(carol->Run("logout"), StartsWith("logged out"));
  EXPECT_THAT(alice->Run("reject_request g carol"), StartsWith("rejected"));
  EXPECT_EQ(carol->Run("login carol pw-carol"), "logged in as carol");
  EXPECT_THAT(carol->shell->WaitForNotice("refused"),
              Optional(std::string("notice: alice refused your request to join g")));
  EXPECT_THAT(alice->Run("leave_group g"), HasSubstr("left g"));
  EXPECT_THAT(bob->shell->WaitForNotice("own it now"),
              Optional(std::string("notice: alice left g; you own it now")));
  EXPECT_THAT(bob->Run("list_groups"), StartsWith("g owner=bob"));
  // Each is told once.
  absl::SleepFor(absl::Seconds(3));  // two more keep-alives
  EXPECT_THAT(bob->Run("list_groups"), StartsWith("g owner=bob"));
  EXPECT_EQ(std::count_if(bob->shell->notices().begin(), bob->shell->notices().end(),
                          [](const std::string& n) { return absl::StrContains(n, "accepted"); }),
            1);
}

// The ticket key rotated while peers share: they hear of the new key from
// their keep-alives before it signs, and downloads go on.
TEST(TicketKeys, RotationWhileSharing) {
  AliceSharesWithBob peers({"--session_ttl", "3", "--ticket_ttl", "10"}, 2 << 20);
  auto& [cluster, alice, bob, path] = peers;
  testing::Subprocess rotate({GS_TRACKER_BIN, "--db", cluster.dir().File("tracker.db"),
                              "--rotate_ticket_key", "--session_ttl", "3", "--ticket_ttl", "10"},
                             std::map<std::string, std::string>{{"HOME", cluster.dir().path()}});
  rotate.CloseStdin();
  const absl::Time rotated = absl::Now();
  const std::string said = rotate.ReadLine().value_or("");
  EXPECT_THAT(said, HasSubstr("the new key signs from"));
  EXPECT_EQ(rotate.Wait(), 0);
  // "... (in N s); ...": when the new key signs.
  int lead = 0;
  const size_t in = said.find("(in ");
  ASSERT_NE(in, std::string::npos) << said;
  ASSERT_TRUE(absl::SimpleAtoi(said.substr(in + 4, said.find(' ', in + 4) - in - 4), &lead))
      << said;
  EXPECT_GE(lead, 8);  // a session (3 s) and a tracker's refresh (5 s)
  // Once the new key signs, bob's tickets are of it: alice serves them only
  // if she heard of the key in time, from her keep-alives.
  absl::SleepFor(rotated + absl::Seconds(lead + 1) - absl::Now());  // the lead itself
  peers.ExpectBobDownloads();
}

// Quits `client`, runs `sql` on its state file, and starts it again: what
// a client stopped at the wrong moment leaves behind.
void RestartWithStateEdited(Cluster& cluster, std::unique_ptr<Cluster::Client>& client,
                            const std::string& sql) {
  client->Run("quit");
  ASSERT_THAT(client->shell->Wait(), Optional(0));
  auto state = sqlite::Database::Open(client->state_dir + "/state.db");
  ASSERT_TRUE(state.ok()) << state.status();
  ASSERT_TRUE((*state)->Exec(sql).ok());
  state->reset();
  client = cluster.StartClient(client->name);
}

// A share the tracker lists for a client whose state folder holds no record
// of it (the client stopped between registering and recording it) is
// withdrawn at the next login, and the login says so.
TEST(TrackerOutage, AShareTheStateFolderLostIsWithdrawnAtLogin) {
  AliceSharesWithBob peers({}, 1 << 20);
  auto& [cluster, alice, bob, path] = peers;
  ASSERT_TRUE(WaitForListing(*bob, "peers=1"));
  RestartWithStateEdited(cluster, alice, "DELETE FROM shares WHERE name = 'f.bin'");
  EXPECT_EQ(alice->Run("login alice pw-alice"),
            "logged in as alice; not shared again: f.bin in g: the state folder holds no record "
            "of it");
  EXPECT_TRUE(WaitForListing(*bob, "no files in g yet")) << alice->Log();
}

// A download renamed into place whose record was not yet marked complete
// when the client stopped (a crash between the two) is found whole at the
// next login and shared, not reported as a destination that exists.
TEST(CrashRecovery, ADownloadCompleteInPlaceButNotRecordedIsSharedAtLogin) {
  AliceSharesWithBob peers({}, 1 << 20);
  auto& [cluster, alice, bob, path] = peers;
  peers.ExpectBobDownloads();
  RestartWithStateEdited(cluster, bob, "UPDATE shares SET complete = 0 WHERE name = 'f.bin'");
  EXPECT_EQ(bob->Run("login bob pw-bob"), "logged in as bob; sharing 1 file again");
  EXPECT_EQ(alice->Run("stop_share g f.bin"), "stopped sharing f.bin in g");
  EXPECT_TRUE(WaitForListing(*alice, "peers=1 seeders=1")) << bob->Log();
}

// One user logged in from two clients: each shares its own file, both are
// downloadable, list_files counts clients, and one logging out leaves the
// other online.
TEST(OneUser, TwoClientsShareDifferentFilesBothDownloadable) {
  Cluster cluster;
  auto laptop = cluster.StartUser("alice");
  auto desk = cluster.StartClient("alice-desk");
  EXPECT_THAT(desk->Run("login alice pw-alice"), StartsWith("logged in as alice"));
  auto bob = cluster.StartUser("bob");
  cluster.AddMember(*laptop, *bob, "g");
  std::string one = cluster.dir().File("one.bin"), two = cluster.dir().File("two.bin");
  testing::WriteFile(one, testing::RandomBytes(2 << 20, 1));
  testing::WriteFile(two, testing::RandomBytes(2 << 20, 2));
  EXPECT_THAT(laptop->Run("upload_file " + one + " g"), StartsWith("shared"));
  EXPECT_THAT(desk->Run("upload_file " + two + " g"), StartsWith("shared"));
  EXPECT_THAT(desk->Run("upload_file " + one + " g"), HasSubstr("now one of its sources"));
  EXPECT_THAT(bob->Run("list_files g"), StartsWith("one.bin size=2097152 (2.0 MiB) peers=2"));
  EXPECT_THAT(bob->shell->ReadLine(), Optional(StartsWith("two.bin size=2097152 (2.0 MiB) peers=1")));
  for (const char* name : {"one.bin", "two.bin"}) {
    const std::string out = cluster.dir().File(std::string("out-") + name);
    EXPECT_THAT(bob->Run(absl::StrCat("download_file g ", name, " ", out)),
                StartsWith("downloading"));
    EXPECT_THAT(bob->shell->WaitForNotice(name), Optional(HasSubstr("complete")));
    EXPECT_TRUE(testing::ReadFile(out) == testing::ReadFile(cluster.dir().File(name)));
  }
  EXPECT_THAT(laptop->Run("logout"), StartsWith("logged out"));
  // bob has both now: one.bin from him and the desk client, two.bin the same.
  EXPECT_THAT(bob->Run("list_files g"), StartsWith("one.bin size=2097152 (2.0 MiB) peers=2"));
  EXPECT_THAT(bob->shell->ReadLine(), Optional(StartsWith("two.bin size=2097152 (2.0 MiB) peers=2")));
  EXPECT_THAT(desk->Run("list_groups"), StartsWith("g owner=alice"));
}

// At login the tracker connects back to the address a client advertises,
// and the shell says whether other members reach it there. The tracker
// tries only the caller's own address.
TEST(Reachability, TheShellSaysWhetherOtherMembersReachTheClient) {
  Cluster cluster;
  auto alice = cluster.StartUser("alice");
  EXPECT_THAT(alice->shell->WaitForNotice("reachable"),
              Optional(absl::StrCat("notice: reachable at 127.0.0.1:", alice->port,
                                    ": other members connect to this client directly")));
  // Listening on one port and advertising another, where nothing answers
  // (a port forward that is not there).
  const int nowhere = testing::UnusedPort();
  auto bob = cluster.StartClient("bob", {"--listen", "127.0.0.1:0"},
                                 absl::StrCat("127.0.0.1:", nowhere));
  EXPECT_THAT(bob->Run("create_user bob pw-bob"), StartsWith("user bob created"));
  EXPECT_EQ(bob->Run("login bob pw-bob"), "logged in as bob");
  auto told = bob->shell->WaitForNotice("reachable");
  EXPECT_THAT(told, Optional(StartsWith(absl::StrCat(
                        "notice: not reachable from outside at 127.0.0.1:", nowhere, " ("))));
  EXPECT_THAT(told, Optional(HasSubstr("Connection refused")));
  EXPECT_THAT(told, Optional(HasSubstr("the tracker announces no relay")));
  // An address that is not the caller's own is not tried.
  auto carol = cluster.StartClient("carol", {"--listen", "127.0.0.1:0"}, "127.0.0.2:7001");
  EXPECT_THAT(carol->Run("create_user carol pw-carol"), StartsWith("user carol created"));
  EXPECT_EQ(carol->Run("login carol pw-carol"), "logged in as carol");
  EXPECT_THAT(carol->shell->WaitForNotice("reachable"),
              Optional(HasSubstr("is not the address this client's calls come from (127.0.0.1)")));
}

// The fingerprint the tracker of `cluster` printed at its latest start.
std::string PrintedFingerprint(Cluster& cluster) {
  const std::string console = testing::ReadFile(cluster.dir().File("tracker.log"));
  const size_t at = console.rfind("TLS certificate sha256=");
  if (at == std::string::npos) return "";
  return console.substr(at + std::strlen("TLS certificate sha256="), 64);
}

// With an operator's certificate (--tls_cert) and clients given its CA
// (--tls_ca), everything runs as by default; a plaintext client gets
// nowhere.
TEST(Tls, AnOperatorsCertificateAndCaRoots) {
  testing::TempDir certs;
  Cluster cluster(OperatorCertificate(certs));
  const std::string cert = certs.File("cert.pem");
  auto alice = cluster.StartUser("alice", {"--tls_ca", cert});
  auto bob = cluster.StartUser("bob", {"--tls_ca", cert});
  cluster.AddMember(*alice, *bob, "g");
  std::string path = cluster.dir().File("f.bin");
  testing::WriteFile(path, testing::RandomBytes(3 << 20, 4));
  EXPECT_THAT(alice->Run("upload_file " + path + " g"), StartsWith("shared"));
  std::string dest = cluster.dir().File("out.bin");
  EXPECT_THAT(bob->Run("download_file g f.bin " + dest), StartsWith("downloading"));
  EXPECT_EQ(cluster.WaitForDownload(*bob, "[C]"), "[C] [g] f.bin -> " + dest);
  EXPECT_TRUE(testing::ReadFile(dest) == testing::ReadFile(path));
  EXPECT_EQ(PrintedFingerprint(cluster), ReadCertificate(testing::ReadFile(cert))->sha256);
  // A client that does not speak TLS gets nowhere.
  auto plain = cluster.StartClient("plain", {"--plaintext"});
  const std::string refused = plain->Run("create_user carol pw");
  EXPECT_THAT(refused, StartsWith("error: no tracker answers"));
  EXPECT_THAT(refused, HasSubstr("this client runs --plaintext"));
}

// A client over TLS (the default) and a tracker run with --plaintext: the
// error says what to change.
TEST(Tls, APlaintextTrackerAndATlsClientSayWhatToChange) {
  Cluster cluster({"--plaintext"});
  auto client = cluster.StartClient("c");
  const std::string refused = client->Run("create_user c pw");
  EXPECT_THAT(refused, StartsWith("error: no tracker answers"));
  EXPECT_THAT(refused, HasSubstr("give this client --plaintext too"));
}

// By default a client trusts the certificate a tracker shows first, records
// it, and refuses another one later, as ssh does: a tracker that lost its
// database (and made itself a new key) is refused until the user says so.
TEST(Tls, TrustOnFirstUseIsRecordedAndAChangedCertificateRefused) {
  Cluster cluster;
  auto alice = cluster.StartUser("alice");
  const std::string first = PrintedFingerprint(cluster);
  ASSERT_EQ(first.size(), 64u);
  const std::string known = alice->state_dir + "/known_trackers";
  EXPECT_EQ(testing::ReadFile(known),
            absl::StrCat("127.0.0.1:", cluster.tracker_port(), " ", first, "\n"));
  struct stat st;
  ASSERT_EQ(stat(known.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  cluster.KillTracker();
  for (const char* f : {"tracker.db", "tracker.db-wal", "tracker.db-shm"}) {
    std::remove(cluster.dir().File(f).c_str());
  }
  cluster.StartTracker();
  const std::string second = PrintedFingerprint(cluster);
  ASSERT_EQ(second.size(), 64u);
  ASSERT_NE(second, first);
  const std::string refused = alice->Run("list_groups");
  EXPECT_THAT(refused, StartsWith("error: no tracker answers"));
  EXPECT_THAT(refused, HasSubstr("WARNING"));
  EXPECT_THAT(refused, HasSubstr("sha256=" + first));
  EXPECT_THAT(refused, HasSubstr("sha256=" + second));
  EXPECT_THAT(refused, HasSubstr(known));
  // A client that never met the tracker takes the new one.
  auto carol = cluster.StartClient("carol");
  EXPECT_THAT(carol->Run("create_user carol pw"), StartsWith("user carol created"));
  EXPECT_THAT(testing::ReadFile(carol->state_dir + "/known_trackers"), HasSubstr(second));
}

// A fingerprint pinned in tracker_info.txt is held to from the first call.
TEST(Tls, APinnedFingerprintWins) {
  Cluster cluster;
  const std::string right = PrintedFingerprint(cluster);
  ASSERT_EQ(right.size(), 64u);
  const std::string address = absl::StrCat("127.0.0.1:", cluster.tracker_port());
  // Pinned right: the client never records a first use.
  testing::WriteFile(cluster.tracker_info(), address + " sha256=" + right + "\n");
  auto alice = cluster.StartUser("alice");
  EXPECT_THAT(alice->Run("list_groups"), Not(StartsWith("error")));
  EXPECT_EQ(testing::ReadFile(alice->state_dir + "/known_trackers"), "");
  // Pinned wrong: refused, naming both.
  const std::string wrong(64, 'e');
  testing::WriteFile(cluster.tracker_info(), address + " sha256=" + wrong + "\n");
  auto bob = cluster.StartClient("bob");
  const std::string refused = bob->Run("create_user bob pw");
  EXPECT_THAT(refused, StartsWith("error: no tracker answers"));
  EXPECT_THAT(refused, HasSubstr("sha256=" + right));
  EXPECT_THAT(refused, HasSubstr("pins sha256=" + wrong));
}

// A peer admits only callers certified by the trackers' peer CA, and only
// while the certificate lasts; the ticket alone does not do.
TEST(Tls, APeerRefusesCertificatesOfAnotherCaAndExpiredOnes) {
  // Keep-alives every second renew the real clients' certificates in time.
  Cluster cluster({"--peer_certificate_ttl", "3", "--session_ttl", "3"});
  auto alice = cluster.StartUser("alice");
  auto bob = cluster.StartUser("bob");
  cluster.AddMember(*alice, *bob, "g");
  const std::string path = cluster.dir().File("f.bin");
  testing::WriteFile(path, testing::RandomBytes(1 << 20, 9));
  EXPECT_THAT(alice->Run("upload_file " + path + " g"), StartsWith("shared"));
  const std::string sha1 = HexEncode(Sha1Of(testing::ReadFile(path)));
  Ticketed ticketed = TicketedRequest(cluster, "bob", sha1);
  pv1::GetPieceRequest one = ticketed.request;
  one.clear_pieces();
  one.add_pieces(0);
  auto get_piece = [&](std::shared_ptr<grpc::ChannelCredentials> credentials) {
    auto peer = pv1::PeerService::NewStub(
        grpc::CreateChannel(absl::StrCat("127.0.0.1:", alice->port), credentials));
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    auto reader = peer->GetPiece(&ctx, one);
    pv1::PieceChunk chunk;
    std::string data;
    while (reader->Read(&chunk)) data += chunk.data();
    return std::make_pair(reader->Finish(), data);
  };
  // Bob's own certificate, fresh: served.
  auto [served, data] = get_piece(ticketed.member.To("alice"));
  EXPECT_TRUE(served.ok()) << served.error_message();
  EXPECT_TRUE(data == testing::ReadFile(path).substr(0, data.size()) && !data.empty());

  // A certificate for bob's key from a CA of his own making: no handshake.
  CertificateRequest ca_request;
  ca_request.common_name = "bob's own CA";
  ca_request.is_ca = true;
  ca_request.not_before = absl::Now() - absl::Hours(1);
  ca_request.not_after = absl::Now() + absl::Hours(1);
  auto other_ca = SelfSigned(ca_request);
  ASSERT_TRUE(other_ca.ok());
  CertificateRequest request;
  request.common_name = "bob";
  request.not_before = absl::Now() - absl::Hours(1);
  request.not_after = absl::Now() + absl::Hours(1);
  testing::TestMember forger = testing::NewMember(cluster, "bob");
  const std::string forger_key = forger.identity->public_key_pem();
  auto forged_for_forger = Issue(*other_ca, forger_key, request);
  ASSERT_TRUE(forged_for_forger.ok());
  ASSERT_TRUE(forger.identity->Accept(*forged_for_forger, {other_ca->cert_pem}).ok());
  auto [other_ca_status, other_ca_data] = get_piece(forger.To("alice"));
  EXPECT_EQ(other_ca_status.error_code(), grpc::StatusCode::UNAVAILABLE)
      << other_ca_status.error_message();
  EXPECT_TRUE(other_ca_data.empty());

  // Bob's real certificate once it has expired (3 s): no handshake either.
  absl::SleepFor(absl::Seconds(4));  // the time the certificate lives is the point
  auto [expired_status, expired_data] = get_piece(ticketed.member.To("alice"));
  EXPECT_EQ(expired_status.error_code(), grpc::StatusCode::UNAVAILABLE)
      << expired_status.error_message();
  EXPECT_TRUE(expired_data.empty());
  // Meanwhile the real clients renewed theirs with their keep-alives.
  EXPECT_THAT(bob->Run("download_file g f.bin " + cluster.dir().File("out.bin")),
              StartsWith("downloading"));
  EXPECT_EQ(cluster.WaitForDownload(*bob, "[C]"),
            "[C] [g] f.bin -> " + cluster.dir().File("out.bin"));
}

TEST_F(Sharing, KilledDownloaderResumesFromItsVerifiedPieces) {
  // A downloader saves its progress every second: at 3 MiB/s it loses at
  // most about a fifth of the file to a kill.
  auto [alice, bob, path] = AliceSharesSlowly(3072);
  const size_t size = testing::ReadFile(path).size();
  EXPECT_THAT(bob->Run("download_file g f.bin " + Dest("out.bin")), StartsWith("downloading"));
  double percent = cluster_.WaitForPercent(*bob, 50);
  ASSERT_GE(percent, 50);
  ASSERT_LT(percent, 95);
  bob->shell->Signal(SIGKILL);
  bob->shell->Wait();
  bob = cluster_.StartClient("bob");
  EXPECT_EQ(bob->Run("login bob pw-bob"), "logged in as bob; resuming 1 download");
  EXPECT_EQ(cluster_.WaitForDownload(*bob, "[C]"), "[C] [g] f.bin -> " + Dest("out.bin"));
  EXPECT_TRUE(testing::ReadFile(Dest("out.bin")) == testing::ReadFile(path));
  // At least a quarter was kept: what came over the network after the
  // restart is the rest.
  auto sources = BytesByPeer(*bob, "f.bin");
  EXPECT_GT(sources["alice"], 0u);
  EXPECT_LE(sources["alice"], size * 3 / 4);
  EXPECT_EQ(sources.size(), 1u);
}

// Logging out, or leaving the shell, in the middle of a download says that
// it is paused; the next login takes it up where it was.
TEST_F(Sharing, LeavingMidDownloadSaysItIsPausedAndLoginGoesOn) {
  auto [alice, bob, path] = AliceSharesSlowly(1024);
  EXPECT_THAT(bob->Run("download_file g f.bin " + Dest("out.bin")), StartsWith("downloading"));
  ASSERT_GE(cluster_.WaitForPercent(*bob, 5), 5);
  EXPECT_EQ(bob->Run("logout"),
            "logged out bob; 1 download paused: it goes on at the next login");
  EXPECT_EQ(bob->Run("login bob pw-bob"), "logged in as bob; resuming 1 download");
  ASSERT_GE(cluster_.WaitForPercent(*bob, 10), 10);
  // End of input ends the shell, as quit does.
  bob->shell->CloseStdin();
  EXPECT_THAT(bob->shell->WaitFor("logged out"),
              Optional(std::string("logged out bob; 1 download paused: it goes on at the next "
                                   "login")));
  EXPECT_THAT(bob->shell->Wait(), Optional(0));
  EXPECT_EQ(alice->Run("set upload_rate off"), "uploads are not capped");
  bob = cluster_.StartClient("bob");
  EXPECT_EQ(bob->Run("login bob pw-bob"), "logged in as bob; resuming 1 download");
  EXPECT_EQ(cluster_.WaitForDownload(*bob, "[C]"), "[C] [g] f.bin -> " + Dest("out.bin"));
  EXPECT_TRUE(testing::ReadFile(Dest("out.bin")) == testing::ReadFile(path));
  // Nothing runs now: logging out says no more than that.
  EXPECT_EQ(bob->Run("logout"), "logged out bob");
}

// Stopping a download for good (stop_share, leave_group) removes its part
// file, as a browser's cancel does; a part file that never was its own stays.
TEST_F(Sharing, StoppingADownloadForGoodRemovesItsOwnPartFileOnly) {
  auto [alice, bob, path] = AliceSharesSlowly(1024);
  auto exists = [](const std::string& file) {
    struct stat st;
    return stat(file.c_str(), &st) == 0;
  };

  testing::WriteFile(Dest("mine.bin.part"), "the user's own bytes");
  EXPECT_THAT(bob->Run("download_file g f.bin " + Dest("mine.bin")), StartsWith("downloading"));
  EXPECT_EQ(cluster_.WaitForDownload(*bob, "[F]"),
            "[F] [g] f.bin: '" + Dest("mine.bin.part") +
                "' exists and is not a download of this client; remove it or choose another "
                "destination");
  EXPECT_EQ(bob->Run("stop_share g f.bin"), "stopped sharing f.bin in g");
  EXPECT_EQ(testing::ReadFile(Dest("mine.bin.part")), "the user's own bytes");

  EXPECT_THAT(bob->Run("download_file g f.bin " + Dest("out.bin")), StartsWith("downloading"));
  ASSERT_GT(cluster_.WaitForPercent(*bob, 1), 0);
  ASSERT_TRUE(exists(Dest("out.bin.part")));
  EXPECT_EQ(bob->Run("stop_share g f.bin"),
            "stopped sharing f.bin in g; an unfinished download was removed, part file too");
  EXPECT_FALSE(exists(Dest("out.bin.part")));

  EXPECT_THAT(bob->Run("download_file g f.bin " + Dest("out.bin")), StartsWith("downloading"));
  ASSERT_GT(cluster_.WaitForPercent(*bob, 1), 0);
  EXPECT_EQ(bob->Run("leave_group g"),
            "left g; an unfinished download was removed, part file too");
  EXPECT_FALSE(exists(Dest("out.bin.part")));
  EXPECT_EQ(bob->Run("show_downloads"), "no downloads yet; start one with download_file");
}

TEST_F(Sharing, BadInputGetsClearErrors) {
  auto alice = cluster_.StartUser("alice");
  auto bob = cluster_.StartUser("bob");
  cluster_.AddMember(*alice, *bob, "g");
  EXPECT_THAT(alice->Run("upload_file " + Dest("missing.bin") + " g"),
              StartsWith("error: no file '"));
  EXPECT_THAT(alice->Run("upload_file " + cluster_.dir().path() + " g"),
              HasSubstr("is a folder; upload_file takes a file"));
  std::string empty = MakeFile("alice", "empty.bin", 0);
  EXPECT_THAT(alice->Run("upload_file " + empty + " h"), StartsWith("error: no group 'h'"));
  EXPECT_THAT(alice->Run("upload_file " + empty + " g"),
              StartsWith("shared empty.bin in g (0 B, 0 pieces, sha1 "
                         "da39a3ee5e6b4b0d3255bfef95601890afd80709)"));
  std::string odd = MakeFile("alice", "odd.bin", (1 << 20) + 1);
  EXPECT_THAT(alice->Run("upload_file " + odd + " g"), HasSubstr("3 pieces"));
  // Refused before it is read: a file (sparse here) past the largest share.
  const std::string huge = Dest("huge.bin");
  testing::WriteFile(huge, "");
  ASSERT_EQ(truncate(huge.c_str(), (off_t{1} << 40) + 1), 0);
  EXPECT_EQ(alice->Run("upload_file " + huge + " g"),
            "error: '" + huge + "' is 1099511627777 bytes; the largest file that can be shared "
            "is 1 TiB");
  // Regular files only: a FIFO would never end, a file of /proc says it is
  // empty, and a link would share its target under the target's name.
  const std::string fifo = Dest("fifo");
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  EXPECT_THAT(alice->Run("upload_file " + fifo + " g"),
              StartsWith("error: '" + fifo + "' is not a regular file (a FIFO)"));
  EXPECT_THAT(alice->Run("upload_file /proc/self/status g"),
              StartsWith("error: '/proc/self/status' is a file of the kernel's"));
  // The client's log names files and peers: for its user only.
  struct stat log;
  ASSERT_EQ(stat((alice->state_dir + "/client.log").c_str(), &log), 0);
  EXPECT_EQ(log.st_mode & 0777, 0600u);
  const std::string link = Dest("link.bin");
  ASSERT_EQ(symlink(odd.c_str(), link.c_str()), 0);
  EXPECT_THAT(alice->Run("upload_file " + link + " g"),
              StartsWith("error: '" + link + "' is a symbolic link to '" + odd + "'"));

  EXPECT_THAT(bob->Run("download_file g ../x " + Dest("y")), StartsWith("error: file name must not contain '/'"));
  EXPECT_THAT(bob->Run("download_file g .. " + Dest("y")), StartsWith("error: '..' is not a file name"));
  EXPECT_THAT(bob->Run("download_file g nope.bin " + Dest("y")),
              StartsWith("error: group 'g' has no file 'nope.bin'"));
  EXPECT_THAT(bob->Run("download_file g odd.bin " + Dest("no/such/folder/y")),
              StartsWith("error: no folder '"));
  EXPECT_THAT(bob->Run("download_file g odd.bin " + odd), HasSubstr("exists already"));
  // A folder nobody may write into (root included) is refused at once.
  EXPECT_THAT(bob->Run("download_file g odd.bin /proc/self/odd.bin"),
              StartsWith("error: cannot write into '/proc/"));
  // A folder as destination keeps the file's name inside it.
  std::string into = cluster_.dir().File("into");
  mkdir(into.c_str(), 0755);
  EXPECT_THAT(bob->Run("download_file g odd.bin " + into),
              StartsWith("downloading odd.bin from g into " + into + "/odd.bin"));
  EXPECT_THAT(bob->Run("download_file g empty.bin " + Dest("empty.out")), StartsWith("downloading"));
  EXPECT_EQ(cluster_.WaitForDownload(*bob, "[C] [g] empty.bin"),
            "[C] [g] empty.bin -> " + Dest("empty.out"));
  EXPECT_EQ(cluster_.WaitForDownload(*bob, "[C] [g] odd.bin"), "[C] [g] odd.bin -> " + into + "/odd.bin");
  EXPECT_TRUE(testing::ReadFile(into + "/odd.bin") == testing::ReadFile(odd));
  struct stat st;
  ASSERT_EQ(stat(Dest("empty.out").c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 0);
  // Quotes keep a path with spaces in one word.
  std::string spaced = MakeFile("alice", "my film.bin", 4096);
  EXPECT_THAT(alice->Run("upload_file \"" + spaced + "\" g"), StartsWith("shared my film.bin in g"));
  EXPECT_THAT(bob->Run("download_file g 'my film.bin' " + into), StartsWith("downloading"));
  EXPECT_EQ(cluster_.WaitForDownload(*bob, "[C] [g] my film.bin"),
            "[C] [g] my film.bin -> " + into + "/my film.bin");
  EXPECT_THAT(bob->Run("download_file g \"my film.bin"), StartsWith("error: unterminated \" quote"));
  EXPECT_THAT(bob->Run("upload_file"), StartsWith("error: usage: upload_file <file_path> <group_id>"));
  EXPECT_THAT(bob->Run("stop_share g nope.bin"), StartsWith("error: you do not share 'nope.bin'"));
  // "~" is the home folder, as in a shell, for both paths.
  testing::WriteFile(cluster_.dir().File("home-file.bin"), "at home");
  EXPECT_THAT(alice->Run("upload_file ~/home-file.bin g"), StartsWith("shared home-file.bin in g"));
  EXPECT_THAT(bob->Run("download_file g home-file.bin ~/from-home.bin"),
              StartsWith("downloading home-file.bin from g into " +
                         cluster_.dir().File("from-home.bin")));
}

}  // namespace
}  // namespace groupshare
