#include "services/peer/downloader.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "core/crypto.h"
#include "core/file_hasher.h"
#include "core/log.h"
#include "core/status_macros.h"
#include "services/common/grpc_status.h"

namespace groupshare::peer {

namespace tv1 = ::groupshare::tracker::v1;
namespace pv1 = ::groupshare::peer::v1;

namespace {

// A peer address is taken back after it went away at most this often.
constexpr int kMaxPeerAttempts = 3;
// Requests in flight to a peer cover about this much of its transfer time.
constexpr absl::Duration kPipelineTarget = absl::Milliseconds(20);
constexpr absl::Duration kTick = absl::Milliseconds(250);
constexpr absl::Duration kSaveInterval = absl::Seconds(1);

std::unique_ptr<pv1::PeerService::Stub> PeerStub(
    const std::string& address, std::shared_ptr<grpc::ChannelCredentials> credentials) {
  if (credentials == nullptr) credentials = grpc::InsecureChannelCredentials();
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 << 20);
  // Each download talks to a peer over a connection of its own.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  return pv1::PeerService::NewStub(
      grpc::CreateCustomChannel(address, credentials, args));
}

}  // namespace

const char* DownloadStateLetter(DownloadState state) {
  switch (state) {
    case DownloadState::kRunning: return "D";
    case DownloadState::kComplete: return "C";
    case DownloadState::kFailed: return "F";
    case DownloadState::kStopped: return "S";
  }
  return "?";
}

struct Download::Peer {
  PeerId id = 0;
  std::string user_id;
  std::string address;
  std::unique_ptr<pv1::PeerService::Stub> stub;
  grpc::ClientContext bitfield_ctx;
  std::vector<std::thread> threads;
  // Guarded by Download::mu_.
  bool ready = false;  // its bitfield arrived
  bool gone = false;
  int strikes = 0;
  int failures = 0;  // in a row
  uint64_t bytes = 0;
  uint64_t bytes_at_tick = 0;
  double rate = 0;  // bytes a second
  std::map<uint32_t, grpc::ClientContext*> active;
  absl::CondVar wake;  // its workers wait here for something to fetch
};

Download::Download(Env env, DownloadOptions options, std::string group_id,
                   tv1::GetFilePeersResponse first, std::string dest)
    : env_(std::move(env)),
      options_(options),
      group_id_(std::move(group_id)),
      file_(first.file()),
      layout_{first.file().size(), first.file().piece_size()},
      key_{group_id_, first.file().sha1()},
      dest_(std::move(dest)),
      part_(dest_ + ".part"),
      first_(std::move(first)),
      picker_(layout_.PieceCount(), PiecePicker::Options{
                                        options.random_first, 2, std::random_device{}()}) {}

Download::~Download() {
  Stop();
  if (coordinator_.joinable()) coordinator_.join();
}

void Download::Start() { coordinator_ = std::thread(&Download::Run, this); }

void Download::Stop() {
  absl::MutexLock lock(&mu_);
  stop_ = true;
  changed_.SignalAll();
  WakeAllPeers();
}

void Download::WakeAllPeers() {
  for (const auto& p : peers_) p->wake.SignalAll();
}

DownloadProgress Download::Progress() const {
  absl::MutexLock lock(&mu_);
  DownloadProgress p;
  p.group_id = group_id_;
  p.name = file_.name();
  p.dest = dest_;
  p.state = state_;
  p.pieces_done = picker_.HaveCount();
  p.piece_count = picker_.piece_count();
  p.bytes_done = bytes_done_;
  p.size = layout_.size;
  p.bytes_per_second = state_ == DownloadState::kRunning ? rate_ : 0;
  for (const auto& peer : peers_) p.peers += peer->ready && !peer->gone;
  p.error = error_;
  p.bytes_by_peer = bytes_by_peer_;
  return p;
}

void Download::Fail(absl::Status status) {
  GS_LOG(kWarning) << "download of " << file_.name() << " in " << group_id_
                   << " failed: " << status.message();
  absl::MutexLock lock(&mu_);
  state_ = DownloadState::kFailed;
  error_ = std::string(status.message());
}

void Download::Run() {
  const absl::Time started = absl::Now();
  if (absl::Status s = Prepare(); !s.ok()) {
    Fail(s);
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
    return;
  }
  HashInOrder(0, nullptr);  // what a resumed download holds already
  {
    absl::MutexLock lock(&mu_);
    AddPeers(first_);
  }
  absl::Time last_refresh = absl::Now(), last_save = absl::Now();
  absl::Status failure;
  bool done = false;
  while (true) {
    bool announce = false, refresh = false;
    {
      absl::MutexLock lock(&mu_);
      if (!picker_.Done() && !stop_) changed_.WaitWithTimeout(&mu_, kTick);
      if (stop_) break;
      if (picker_.Done()) {
        done = true;
        break;
      }
      absl::Time now = absl::Now();
      if (now - last_tick_ >= kTick) Tick(now);
      if (now - no_source_since_ > options_.no_source_timeout) {
        uint32_t missing = picker_.piece_count() - picker_.HaveCount();
        failure = absl::UnavailableError(absl::StrCat(
            "no online peer has ", std::max<uint32_t>(picker_.UnavailableCount(), 1), " of the ",
            missing, " missing pieces; try again when a sharer is back"));
        break;
      }
      announce = !announced_ && picker_.HaveCount() > 0;
      int live = 0;
      for (const auto& p : peers_) live += !p->gone;
      refresh = now - last_refresh >= options_.refresh_interval ||
                (live == 0 && now - last_refresh >= absl::Seconds(1));
    }
    if (announce) {
      tv1::AnnounceHolderRequest req;
      req.set_group_id(group_id_);
      req.set_file_name(file_.name());
      auto r = env_.tracker->Call(&tv1::TrackerService::Stub::AnnounceHolder, req);
      if (r.ok()) {
        absl::MutexLock lock(&mu_);
        announced_ = true;
      }
    }
    if (refresh) {
      Refresh();
      last_refresh = absl::Now();
    }
    if (absl::Now() - last_save >= kSaveInterval) {
      SaveProgress();
      last_save = absl::Now();
    }
  }
  absl::Time pieces_done = absl::Now();
  StopPeers();
  GS_LOG(kDebug) << "download of " << file_.name() << ": pieces in "
                 << absl::ToDoubleSeconds(pieces_done - started) << " s, peers stopped "
                 << absl::ToDoubleSeconds(absl::Now() - pieces_done) << " s later";
  SaveProgress();
  if (!failure.ok()) {
    Fail(failure);
    Withdraw();
  } else if (done) {
    if (absl::Status s = Finish(); !s.ok()) {
      Fail(s);
      Withdraw();
    }
  } else {
    absl::MutexLock lock(&mu_);
    if (state_ == DownloadState::kRunning) state_ = DownloadState::kStopped;
  }
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
}

absl::Status Download::Prepare() {
  struct stat st;
  if (stat(dest_.c_str(), &st) == 0) {
    return absl::AlreadyExistsError(absl::StrCat(
        "'", dest_, "' exists already; remove it or choose another destination"));
  }
  Bitfield have(layout_.PieceCount());
  ASSIGN_OR_RETURN(auto records, env_.state->List(env_.user_id));
  for (const ShareRecord& r : records) {
    if (r.group_id == group_id_ && r.sha1 == file_.sha1() && !r.complete && r.path == dest_) {
      if (auto saved = Bitfield::FromBytes(r.have, layout_.PieceCount()); saved.ok()) {
        have = *std::move(saved);
      }
    }
  }
  fd_ = open(part_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot create '", part_, "': ", std::strerror(errno)));
  }
  if (fstat(fd_, &st) != 0 || static_cast<uint64_t>(st.st_size) != layout_.size) {
    have = Bitfield(layout_.PieceCount());
  }
  // Resume: keep only the recorded pieces that still check out on disk.
  uint32_t kept = 0;
  for (uint32_t i = 0; i < have.size(); ++i) {
    if (!have.Get(i)) continue;
    std::string data(layout_.PieceLength(i), '\0');
    bool good = ReadFully(fd_, data.data(), data.size(), layout_.PieceOffset(i)).ok() &&
                HexEncode(Sha1Of(data)) == file_.piece_sha1(static_cast<int>(i));
    have.Set(i, good);
    kept += good;
  }
  if (kept == 0) {
    if (ftruncate(fd_, 0) != 0) {
      return absl::UnavailableError(absl::StrCat("cannot truncate '", part_, "'"));
    }
    int rc = layout_.size == 0 ? 0 : posix_fallocate(fd_, 0, static_cast<off_t>(layout_.size));
    if (rc == ENOSPC) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "no room for ", layout_.size, " bytes at '", part_, "'; free some space"));
    }
    if (rc != 0 && ftruncate(fd_, static_cast<off_t>(layout_.size)) != 0) {
      return absl::UnavailableError(
          absl::StrCat("cannot size '", part_, "': ", std::strerror(errno)));
    }
  } else {
    GS_LOG(kInfo) << "resuming " << file_.name() << " with " << kept << " of "
                  << have.size() << " pieces verified on disk";
  }
  ShareRecord record{env_.user_id, group_id_, file_.name(), file_.sha1(), layout_.size,
                     layout_.piece_size, {file_.piece_sha1().begin(), file_.piece_sha1().end()},
                     dest_, false, have.ToBytes()};
  RETURN_IF_ERROR(env_.state->Put(record));
  RETURN_IF_ERROR(env_.store->Add(key_, file_.name(), part_, layout_, have));
  absl::MutexLock lock(&mu_);
  for (uint32_t i = 0; i < have.size(); ++i) {
    if (!have.Get(i)) continue;
    picker_.SetHave(i);
    bytes_done_ += layout_.PieceLength(i);
  }
  return absl::OkStatus();
}

void Download::Withdraw() {
  // A failed download is not served. Its verified pieces stay on disk and
  // recorded: the same download_file (or the next login) takes them up again.
  env_.store->Remove(key_);
  bool announced;
  {
    absl::MutexLock lock(&mu_);
    announced = announced_;
  }
  if (announced) {
    tv1::StopShareRequest req;
    req.set_group_id(group_id_);
    req.set_file_name(file_.name());
    env_.tracker->Call(&tv1::TrackerService::Stub::StopShare, req).IgnoreError();
  }
}

void Download::HashInOrder(uint32_t piece, const std::string* data) {
  absl::MutexLock hash_lock(&hash_mu_);
  if (data != nullptr) {
    if (piece != next_hash_) return;  // its turn comes when the gap fills
    whole_.Update(*data);
    ++next_hash_;
  }
  std::string buf;
  while (next_hash_ < layout_.PieceCount()) {
    {
      absl::MutexLock lock(&mu_);
      if (!picker_.Have(next_hash_)) return;
    }
    // Completed out of order earlier: read it back (from the page cache).
    buf.resize(layout_.PieceLength(next_hash_));
    if (!ReadFully(fd_, buf.data(), buf.size(), layout_.PieceOffset(next_hash_)).ok()) return;
    whole_.Update(buf);
    ++next_hash_;
  }
}

absl::Status Download::Finish() {
  // Every piece checked out; the whole file must too before it is renamed
  // into place. HashInOrder has hashed all of it by now.
  HashInOrder(0, nullptr);
  std::string sha1;
  {
    absl::MutexLock hash_lock(&hash_mu_);
    if (next_hash_ != layout_.PieceCount()) {
      return absl::UnavailableError(absl::StrCat("cannot read '", part_, "' back"));
    }
    sha1 = HexEncode(whole_.Finish());
  }
  if (sha1 != file_.sha1()) {
    env_.state->Remove(env_.user_id, group_id_, file_.sha1()).IgnoreError();
    unlink(part_.c_str());
    return absl::DataLossError(absl::StrCat(
        "every piece checked out but the whole file's SHA1 is ", sha1, ", not ", file_.sha1(),
        "; the file was registered with inconsistent hashes"));
  }
  if (rename(part_.c_str(), dest_.c_str()) != 0) {
    return absl::UnavailableError(absl::StrCat("cannot rename '", part_, "' to '", dest_,
                                               "': ", std::strerror(errno)));
  }
  RETURN_IF_ERROR(env_.state->MarkComplete(env_.user_id, group_id_, file_.sha1()));
  tv1::AnnounceHolderRequest req;
  req.set_group_id(group_id_);
  req.set_file_name(file_.name());
  req.set_complete(true);
  if (auto r = env_.tracker->Call(&tv1::TrackerService::Stub::AnnounceHolder, req); !r.ok()) {
    GS_LOG(kWarning) << "could not tell the tracker that " << file_.name()
                     << " is complete: " << r.status();
  }
  absl::MutexLock lock(&mu_);
  state_ = DownloadState::kComplete;
  std::string sources;
  for (const auto& [user, bytes] : bytes_by_peer_) {
    absl::StrAppend(&sources, sources.empty() ? "" : ", ", user, "=", bytes);
  }
  GS_LOG(kInfo) << "download of " << file_.name() << " in " << group_id_ << " complete: "
                << layout_.size << " bytes to " << dest_ << "; bytes from " << sources;
  return absl::OkStatus();
}

void Download::AddPeers(const tv1::GetFilePeersResponse& response) {
  ticket_ = response.ticket();
  for (const tv1::Peer& p : response.peers()) {
    int attempts = 0;
    bool live = false;
    for (const auto& known : peers_) {
      if (known->address != p.address()) continue;
      ++attempts;
      live |= !known->gone;
    }
    if (live || attempts >= kMaxPeerAttempts) continue;
    auto peer = std::make_unique<Peer>();
    peer->id = next_peer_id_++;
    peer->user_id = p.user_id();
    peer->address = p.address();
    peer->stub = PeerStub(p.address(), options_.credentials);
    Peer* raw = peer.get();
    peers_.push_back(std::move(peer));
    raw->threads.emplace_back(&Download::ReadBitfield, this, raw);
    for (uint32_t i = 0; i < options_.max_in_flight; ++i) {
      raw->threads.emplace_back(&Download::FetchLoop, this, raw);
    }
    GS_LOG(kDebug) << "download of " << file_.name() << ": peer " << p.user_id() << " at "
                   << p.address();
  }
}

void Download::Refresh() {
  tv1::GetFilePeersRequest req;
  req.set_group_id(group_id_);
  req.set_file_name(file_.name());
  auto response = env_.tracker->Call(&tv1::TrackerService::Stub::GetFilePeers, req);
  if (!response.ok()) {
    GS_LOG(kWarning) << "refreshing the peers of " << file_.name() << ": " << response.status();
    return;
  }
  if (response->file().sha1() != file_.sha1()) return;  // the name now means other content
  absl::MutexLock lock(&mu_);
  if (!stop_) AddPeers(*response);
}

void Download::Tick(absl::Time now) {
  double seconds = std::max(absl::ToDoubleSeconds(now - last_tick_), 1e-3);
  last_tick_ = now;
  double total = 0;
  bool any_ready = false;
  for (const auto& p : peers_) {
    if (p->gone) continue;
    any_ready |= p->ready;
    double instant = static_cast<double>(p->bytes - p->bytes_at_tick) / seconds;
    p->bytes_at_tick = p->bytes;
    p->rate = 0.5 * p->rate + 0.5 * instant;
    total += p->rate;
    // Enough requests in flight to cover the pipeline target at its rate.
    double want = 1 + std::ceil(p->rate * absl::ToDoubleSeconds(kPipelineTarget) /
                                layout_.piece_size);
    picker_.SetMaxInFlight(p->id, static_cast<uint32_t>(std::clamp<double>(
                                      want, 2, options_.max_in_flight)));
  }
  rate_ = total;
  WakeAllPeers();  // limits may have grown
  // Stuck: pieces are missing that no peer has, and nothing else is under
  // way (a large download keeps going while a missing piece may reappear).
  uint32_t in_flight = 0;
  for (const auto& p : peers_) in_flight += p->gone ? 0 : picker_.InFlight(p->id);
  if (!any_ready || (picker_.UnavailableCount() > 0 && in_flight == 0)) {
    if (no_source_since_ == absl::InfiniteFuture()) no_source_since_ = now;
  } else {
    no_source_since_ = absl::InfiniteFuture();
  }
}

void Download::ReadBitfield(Peer* peer) {
  pv1::GetBitfieldRequest req;
  {
    absl::MutexLock lock(&mu_);
    req.set_ticket(ticket_);
  }
  req.set_group_id(group_id_);
  req.set_file_sha1(file_.sha1());
  auto reader = peer->stub->GetBitfield(&peer->bitfield_ctx, req);
  pv1::BitfieldUpdate update;
  while (reader->Read(&update)) {
    absl::MutexLock lock(&mu_);
    if (stop_ || peer->gone) break;
    if (!peer->ready) {
      auto bits = Bitfield::FromBytes(update.bitfield(), picker_.piece_count());
      if (!update.has_bitfield() || update.piece_count() != picker_.piece_count() ||
          !bits.ok()) {
        DropPeer(peer, "sent a malformed bitfield");
        break;
      }
      picker_.AddPeer(peer->id, *bits, std::max<uint32_t>(options_.max_in_flight / 2, 2));
      peer->ready = true;
    } else if (update.has_have() && update.have() < picker_.piece_count()) {
      picker_.PeerHas(peer->id, update.have());
    }
    peer->wake.SignalAll();
  }
  grpc::Status status = reader->Finish();
  absl::MutexLock lock(&mu_);
  if (!peer->gone) {
    DropPeer(peer, status.ok() ? "it stopped sharing" : status.error_message());
  }
}

void Download::FetchLoop(Peer* peer) {
  while (true) {
    uint32_t piece = 0;
    std::string ticket;
    grpc::ClientContext ctx;
    {
      absl::MutexLock lock(&mu_);
      while (true) {
        if (stop_ || peer->gone) return;
        if (peer->ready) {
          if (auto p = picker_.Pick(peer->id)) {
            piece = *p;
            break;
          }
        }
        peer->wake.Wait(&mu_);
      }
      ctx.set_deadline(absl::ToChronoTime(absl::Now() + options_.piece_timeout));
      peer->active[piece] = &ctx;
      ticket = ticket_;
    }
    auto data = FetchPiece(peer, piece, &ctx, ticket);
    absl::Status written = data.status();
    if (data.ok()) {
      // One writer at a time: concurrent writes to one file contend for the
      // inode lock in the kernel, which spins and costs more than it saves.
      absl::MutexLock write_lock(&write_mu_);
      written = WriteFully(fd_, data->data(), data->size(), layout_.PieceOffset(piece));
    }
    bool first = false;  // this worker delivered the piece first
    {
      absl::MutexLock lock(&mu_);
      peer->active.erase(piece);
      peer->wake.Signal();   // a request slot of this peer is free
      changed_.SignalAll();  // the coordinator watches every piece
      if (written.ok()) {
        peer->failures = 0;
        first = !picker_.Have(piece);  // else another peer won the endgame race
        if (first) {
          if (picker_.InEndgame()) WakeAllPeers();  // idle peers may take copies now
          for (PeerId other : picker_.Complete(peer->id, piece)) {
            for (const auto& p : peers_) {
              auto it = p->id == other ? p->active.find(piece) : p->active.end();
              if (it != p->active.end()) it->second->TryCancel();
            }
          }
          uint32_t len = layout_.PieceLength(piece);
          bytes_done_ += len;
          peer->bytes += len;
          bytes_by_peer_[peer->user_id] += len;
          have_dirty_ = true;
          env_.store->MarkHave(key_, piece);
        }
      } else {
        picker_.Abort(peer->id, piece);
        WakeAllPeers();  // the piece may be asked of another peer
        if (data.ok()) {
          // The disk failed us, not the peer: nothing more can be written.
          state_ = DownloadState::kFailed;
          error_ = absl::StrCat("writing '", part_, "': ", written.message());
          stop_ = true;
          return;
        }
        if (!stop_ && !peer->gone && !picker_.Have(piece)) Blame(peer, data.status());
      }
    }
    if (first) HashInOrder(piece, &*data);
  }
}

void Download::Blame(Peer* peer, const absl::Status& why) {
  if (why.code() == absl::StatusCode::kDataLoss) {
    ++peer->strikes;
    GS_LOG(kWarning) << "peer " << peer->user_id << " at " << peer->address << ": "
                     << why.message() << " (strike " << peer->strikes << ")";
    if (peer->strikes >= options_.max_strikes) {
      DropPeer(peer, absl::StrCat("it sent ", peer->strikes, " corrupt pieces"));
    }
  } else if (++peer->failures >= options_.max_failures ||
             why.code() == absl::StatusCode::kPermissionDenied) {
    DropPeer(peer, std::string(why.message()));
  }
}

absl::StatusOr<std::string> Download::FetchPiece(Peer* peer, uint32_t piece,
                                                 grpc::ClientContext* ctx,
                                                 const std::string& ticket) {
  pv1::GetPieceRequest req;
  req.set_ticket(ticket);
  req.set_group_id(group_id_);
  req.set_file_sha1(file_.sha1());
  req.add_pieces(piece);
  const uint32_t len = layout_.PieceLength(piece);
  std::string data;
  absl::Status protocol;
  auto reader = peer->stub->GetPiece(ctx, req);
  pv1::PieceChunk chunk;
  while (reader->Read(&chunk)) {
    if (chunk.piece() != piece || chunk.offset() != data.size() ||
        data.size() + chunk.data().size() > len) {
      protocol = absl::DataLossError(absl::StrCat("piece ", piece, " arrived malformed"));
      ctx->TryCancel();
      break;
    }
    if (data.empty()) {
      data = std::move(*chunk.mutable_data());
    } else {
      data.append(chunk.data());
    }
  }
  grpc::Status status = reader->Finish();
  if (!protocol.ok()) return protocol;
  if (!status.ok()) return FromGrpcStatus(status);
  if (data.size() != len) {
    return absl::DataLossError(absl::StrCat("piece ", piece, " arrived short"));
  }
  if (HexEncode(Sha1Of(data)) != file_.piece_sha1(static_cast<int>(piece))) {
    return absl::DataLossError(absl::StrCat("piece ", piece, " failed its SHA1 check"));
  }
  return data;
}

void Download::DropPeer(Peer* peer, const std::string& why) {
  if (peer->gone) return;
  peer->gone = true;
  picker_.RemovePeer(peer->id);
  peer->bitfield_ctx.TryCancel();
  for (auto& [piece, ctx] : peer->active) ctx->TryCancel();
  changed_.SignalAll();
  WakeAllPeers();  // its pieces are free for the others
  if (!stop_) {
    GS_LOG(kInfo) << "download of " << file_.name() << ": dropped peer " << peer->user_id
                  << " at " << peer->address << ": " << why;
  }
}

void Download::StopPeers() {
  std::vector<std::thread*> threads;
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
    changed_.SignalAll();  // the hasher may be waiting for a piece
    for (const auto& p : peers_) {
      DropPeer(p.get(), "the download ended");
      for (std::thread& t : p->threads) threads.push_back(&t);
    }
  }
  for (std::thread* t : threads) t->join();
}

void Download::SaveProgress() {
  std::string have;
  {
    absl::MutexLock lock(&mu_);
    if (!have_dirty_) return;
    have_dirty_ = false;
    have = picker_.have().ToBytes();
  }
  if (absl::Status s = env_.state->UpdateHave(env_.user_id, group_id_, file_.sha1(), have);
      !s.ok()) {
    GS_LOG(kWarning) << "saving the progress of " << file_.name() << ": " << s;
  }
}

}  // namespace groupshare::peer
