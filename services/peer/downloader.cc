#include "services/peer/downloader.h"

#include <malloc.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/crypto.h"
#include "core/log.h"
#include "core/status_macros.h"

namespace groupshare::peer {

namespace tv1 = ::groupshare::tracker::v1;

namespace {

// A peer address is taken back after it went away at most this often.
// A peer dropped for anything but corrupt data (it was busy, restarting,
// or cut off) is tried again after this, doubling with each drop.
constexpr absl::Duration kFirstRetry = absl::Seconds(1);
constexpr absl::Duration kMaxRetry = absl::Seconds(30);
// Links to one holder that may fail in one download; it is not tried again
// after that.
constexpr int kMaxAttempts = 16;
// A peer's window of requests covers about this much of its transfer time.
constexpr absl::Duration kPipelineTarget = absl::Milliseconds(40);
// A new link's window, before its rate is known, and the least it shrinks
// to: two keep a slow (say rate-capped) peer busy without queueing much
// there, which matters when many downloaders ask one capped seeder.
constexpr uint32_t kInitialWindow = 4;
constexpr uint32_t kMinWindow = 2;
constexpr absl::Duration kTick = absl::Milliseconds(250);
constexpr absl::Duration kSaveInterval = absl::Seconds(1);
constexpr absl::Duration kEtaSmoothing = absl::Seconds(8);
// A peer slower than this share of the fastest one may be swapped out for
// one in reserve.
constexpr double kSlowShare = 0.25;

// The memory quota of a link: twice the most a link may hold, plus room for
// what gRPC reads and frames around it. A link holds at most its window of
// requested pieces (received, queued or being written: a piece leaves the
// picker's count only once written), and past kMinWindow only what the
// download's budget allows; the received pieces also keep alive the read
// buffers they were cut from. So an honest peer never fills it, however
// long the workers hold its pieces ("Buffers full" would end the
// connection).
uint64_t LinkMemoryQuota(const DownloadOptions& options, uint32_t piece_size) {
  if (options.link_memory_quota != 0) return options.link_memory_quota;
  const uint64_t budget_pieces = options.max_bytes_in_flight / piece_size;
  const uint64_t pieces = std::min<uint64_t>(std::max<uint32_t>(options.max_window, kMinWindow),
                                             std::max<uint64_t>(budget_pieces, kMinWindow) + 1);
  return 2 * pieces * piece_size + (16 << 20);
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

// The coordinator's view of one peer.
struct Download::Link {
  PeerId id;
  tv1::Peer peer;  // user, address and the current ticket
  std::unique_ptr<PeerLink> link;
  std::string bitfield_ticket;  // the ticket the bitfield stream was opened with
  bool ready = false;           // its bitfield arrived
  bool gone = false;
  bool rotated = false;  // dropped to make room, not for a fault
  absl::Time gone_at = absl::InfiniteFuture();
  int strikes = 0;
  int failures = 0;  // in a row
  uint32_t calls = 0;
  uint32_t window = kInitialWindow;
  uint64_t bytes = 0;
  uint64_t bytes_at_tick = 0;
  double rate = 0;  // bytes a second
  absl::Time since;  // connected
};

Download::Download(Context context, DownloadOptions options, std::string group_id,
                   tv1::GetFilePeersResponse first, std::string dest)
    : context_(std::move(context)),
      env_(context_.env),
      options_(std::move(options)),
      group_id_(std::move(group_id)),
      file_(first.file()),
      layout_{first.file().size(), first.file().piece_size()},
      key_{group_id_, first.file().sha1()},
      dest_(std::move(dest)),
      part_path_(dest_ + ".part"),
      first_(std::move(first)),
      max_peers_(options_.max_peers),
      picker_(layout_.PieceCount(),
              PiecePicker::Options{options_.random_first, 2, 32, std::random_device{}()}),
      last_tick_(env_->Now()),
      last_rotate_(last_tick_) {
  for (const std::string& hex : file_.piece_sha1()) {
    Sha1Digest digest{};
    if (auto raw = HexDecode(hex); raw.has_value() && raw->size() == digest.size()) {
      std::memcpy(digest.data(), raw->data(), digest.size());
    }
    expected_.push_back(digest);
  }
  {
    absl::MutexLock lock(&mu_);
    workers_ = std::make_unique<WorkQueue>(std::max(options_.workers, 1));
  }
  Publish();
}

Download::~Download() {
  Stop();
  if (coordinator_.joinable()) coordinator_.join();
}

void Download::Start() { coordinator_ = std::thread(&Download::Run, this); }

void Download::Stop() {
  absl::MutexLock lock(&mu_);
  stop_ = true;
  changed_.SignalAll();
}

bool Download::WaitUntilDone(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  return mu_.AwaitWithTimeout(absl::Condition(&ended_), timeout);
}

DownloadProgress Download::Progress() const {
  absl::MutexLock lock(&mu_);
  return published_;
}

void Download::Publish() {
  DownloadProgress p;
  p.counters = counters_;
  p.group_id = group_id_;
  p.name = file_.name();
  p.dest = dest_;
  p.state = state_;
  p.pieces_done = picker_.HaveCount();
  p.piece_count = picker_.piece_count();
  p.bytes_done = bytes_done_;
  if (state_ == DownloadState::kRunning && no_source_since_ != absl::InfiniteFuture()) {
    p.waiting_for_sharer = true;
    p.gives_up_in = options_.no_source_timeout - (env_->Now() - no_source_since_);
  }
  p.size = layout_.size;
  p.bytes_per_second = state_ == DownloadState::kRunning ? rate_ : 0;
  p.eta_bytes_per_second = state_ == DownloadState::kRunning ? eta_rate_ : 0;
  for (const auto& l : links_) {
    p.peers += l->ready && !l->gone;
    p.links_open += l->link != nullptr;
  }
  p.error = error_;
  p.no_source = state_ == DownloadState::kFailed && no_source_failure_;
  p.bytes_by_peer = bytes_by_peer_;
  p.dropped = dropped_;
  absl::MutexLock lock(&mu_);
  p.pieces_held = pieces_held_;
  published_ = std::move(p);
}

void Download::Fail(const absl::Status& status) {
  if (state_ != DownloadState::kRunning) return;
  GS_LOG(kWarning) << "download of " << file_.name() << " in " << group_id_
                   << " failed: " << status.message();
  state_ = DownloadState::kFailed;
  error_ = std::string(status.message());
  ending_ = true;
}

void Download::Post(Event event) {
  absl::MutexLock lock(&mu_);
  events_.push_back(std::move(event));
  changed_.Signal();
}

void Download::OnBitfield(PeerLink* link, const pv1::BitfieldUpdate& update) {
  Post(BitfieldEvent{link->id(), update});
}

void Download::OnBitfieldEnd(PeerLink* link, const absl::Status& status) {
  Post(BitfieldEndEvent{link->id(), status});
}

void Download::OnPiece(PeerLink* link, PeerLink::Piece piece) {
  // Straight to a worker, which touches none of the coordinator's state: a
  // piece reaches the disk without waiting for the coordinator's turn. (A
  // copy that lost an endgame race is written twice, to the same bytes.)
  absl::MutexLock lock(&mu_);
  if (workers_ == nullptr) return;  // the download is ending
  ++pieces_held_;
  workers_->Run([this, id = link->id(), piece = std::move(piece)]() mutable {
    Verify(id, std::move(piece));  // the piece's bytes are released there
  });
}

void Download::OnCallEnd(PeerLink* link, std::vector<uint32_t> undelivered,
                         const absl::Status& status) {
  Post(CallEndEvent{link->id(), std::move(undelivered), status});
}

void Download::Run() {
  const absl::Time started = env_->Now();
  if (absl::Status s = Prepare(); !s.ok()) {
    Fail(s);
  } else {
    AddPeers(first_);
  }
  absl::Time last_refresh = env_->Now(), last_save = env_->Now();
  while (!ending_ && !picker_.Done()) {
    std::deque<Event> events;
    {
      absl::MutexLock lock(&mu_);
      if (events_.empty() && !stop_) env_->WaitUntil(&changed_, &mu_, env_->Now() + kTick);
      events.swap(events_);
      ending_ |= stop_;
    }
    for (Event& e : events) {
      if (ending_) break;  // what is left is dropped with the queue
      std::visit([this](auto& event) { Handle(event); }, e);
    }
    if (ending_ || picker_.Done()) break;
    FreeDroppedLinks();
    const absl::Time now = env_->Now();
    if (now - last_tick_ >= kTick) Tick(now);
    if (now - no_source_since_ > options_.no_source_timeout) {
      const uint32_t missing = picker_.piece_count() - picker_.HaveCount();
      no_source_failure_ = true;
      Fail(absl::UnavailableError(absl::StrCat(
          "no online peer has ", std::max<uint32_t>(picker_.UnavailableCount(), 1), " of the ",
          missing, " missing pieces; it goes on when a sharer is back")));
      break;
    }
    // Calls that brought nothing for too long go back to the picker
    // (as cancelled calls end); the peer gets a failure.
    for (size_t i = 0; i < links_.size(); ++i) {  // a drop may connect another
      Link* link = links_[i].get();
      if (link->gone) continue;
      if (int n = link->link->CancelStalled(now - options_.piece_timeout); n > 0) {
        counters_.stalled_calls += n;
        Blame(link, absl::DeadlineExceededError(absl::StrCat(
                        "it sent nothing for ", absl::FormatDuration(options_.piece_timeout))));
      }
    }
    if (!announcing_ && picker_.HaveCount() > 0) {
      announcing_ = true;
      tracker_thread_->Run([this] {
        announced_ = context_.tracker->AnnounceHolder(group_id_, file_.name(), false).ok();
      });
    }
    int connected = 0;
    for (const auto& l : links_) connected += !l->gone;
    const bool room = static_cast<uint32_t>(connected) < max_peers_.load();
    if (now - last_refresh >=
        (room ? options_.refresh_interval_with_room : options_.refresh_interval)) {
      last_refresh = now;
      tracker_thread_->Run([this] {
        auto response = context_.tracker->GetFilePeers(group_id_, file_.name());
        if (!response.ok()) {
          GS_LOG(kWarning) << "refreshing the peers of " << file_.name() << ": "
                           << response.status();
        } else if (response->file().sha1() == file_.sha1()) {  // else: other content now
          Post(PeersEvent{*std::move(response)});
        }
      });
    }
    if (now - last_save >= kSaveInterval) {
      SaveProgress();
      last_save = now;
    }
    Publish();
  }
  // In order: no link takes a new call, the workers finish what they hold
  // (their verdicts go unread), the tracker thread ends, the links go (each
  // waits for its calls), and the events left are dropped with the pieces
  // they hold.
  const absl::Time pieces_done = env_->Now();
  ending_ = true;
  for (const auto& l : links_) {
    if (l->link != nullptr) l->link->Close();
  }
  std::unique_ptr<WorkQueue> workers;
  {
    absl::MutexLock lock(&mu_);
    workers = std::move(workers_);
  }
  workers.reset();
  tracker_thread_.reset();
  links_.clear();
  {
    absl::MutexLock lock(&mu_);
    events_.clear();
  }
  GS_LOG(kDebug) << "download of " << file_.name() << ": pieces in "
                 << absl::ToDoubleSeconds(pieces_done - started) << " s, links stopped "
                 << absl::ToDoubleSeconds(env_->Now() - pieces_done) << " s later";
  if (part_ != nullptr) {  // a save still queued was dropped with the thread
    if (absl::Status s = context_.state->UpdateHave(context_.user_id, group_id_, file_.sha1(),
                                                    picker_.have().ToBytes());
        !s.ok()) {
      GS_LOG(kWarning) << "saving the progress of " << file_.name() << ": " << s;
    }
  }
  if (picker_.Done() && state_ == DownloadState::kRunning) {
    if (absl::Status s = Finish(); !s.ok()) Fail(s);
  }
  if (state_ == DownloadState::kFailed) {
    Withdraw();
  } else if (state_ == DownloadState::kRunning) {
    state_ = DownloadState::kStopped;
  }
  // The links' buffers are free now: give them back to the system rather
  // than keep the download's peak mapped while the client idles.
  malloc_trim(0);
  Publish();
  absl::MutexLock lock(&mu_);
  ended_ = true;
}

absl::Status Download::Prepare() {
  if (layout_.piece_size == 0 || layout_.piece_size > options_.max_piece_size) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the tracker announced pieces of ", layout_.piece_size,
        " bytes; this client takes pieces of 1 to ", options_.max_piece_size, " bytes"));
  }
  struct stat st;
  if (lstat(dest_.c_str(), &st) == 0) {
    return absl::AlreadyExistsError(absl::StrCat(
        "'", dest_, "' exists already; remove it or choose another destination"));
  }
  // The part file is ours when the state folder records this download.
  Bitfield have(layout_.PieceCount());
  bool ours = false;
  ASSIGN_OR_RETURN(auto records, context_.state->List(context_.user_id));
  for (const ShareRecord& r : records) {
    if (r.group_id == group_id_ && r.sha1 == file_.sha1() && !r.complete && r.path == dest_) {
      ours = true;
      if (auto saved = Bitfield::FromBytes(r.have, layout_.PieceCount()); saved.ok()) {
        have = *std::move(saved);
      }
    }
  }
  ASSIGN_OR_RETURN(PartFileOpened opened, env_->OpenPartFile(part_path_, layout_.size, ours));
  part_ = std::move(opened.file);
  hasher_ = std::make_unique<WholeFileHasher>(layout_, part_.get());
  if (opened.fresh) have = Bitfield(layout_.PieceCount());
  // Resume: keep only the recorded pieces that still check out on disk.
  uint32_t kept = 0;
  std::string data;
  for (uint32_t i = 0; i < have.size(); ++i) {
    if (!have.Get(i)) continue;
    data.resize(layout_.PieceLength(i));
    bool good = part_->Read(layout_.PieceOffset(i), data.data(), data.size()).ok() &&
                Sha1Of(data) == expected_[i];
    have.Set(i, good);
    kept += good;
  }
  if (kept > 0) {
    GS_LOG(kInfo) << "resuming " << file_.name() << " with " << kept << " of " << have.size()
                  << " pieces verified on disk";
  }
  ShareRecord record{context_.user_id, group_id_, file_.name(), file_.sha1(), layout_.size,
                     layout_.piece_size, {file_.piece_sha1().begin(), file_.piece_sha1().end()},
                     dest_, false, have.ToBytes()};
  RETURN_IF_ERROR(context_.state->Put(record));
  RETURN_IF_ERROR(context_.store->Add(key_, file_.name(), part_path_, layout_, have));
  for (uint32_t i = 0; i < have.size(); ++i) {
    if (!have.Get(i)) continue;
    picker_.SetHave(PieceIndex(i));
    bytes_done_ += layout_.PieceLength(i);
  }
  for (uint32_t i = 0; i < have.size(); ++i) {
    if (have.Get(i)) hasher_->Add(i, {});
  }
  return absl::OkStatus();
}

void Download::Withdraw() {
  // A failed download is not served. Its verified pieces stay on disk and
  // recorded: the same download_file (or the next login) takes them up again.
  context_.store->Remove(key_);
  if (announced_) context_.tracker->StopShare(group_id_, file_.name()).IgnoreError();
}

absl::Status Download::Finish() {
  // Every piece checked out; the whole file must too before it is renamed
  // into place.
  ASSIGN_OR_RETURN(std::string sha1, hasher_->Finish());
  if (sha1 != file_.sha1()) {
    context_.state->Remove(context_.user_id, group_id_, file_.sha1()).IgnoreError();
    unlink(part_path_.c_str());
    return absl::DataLossError(absl::StrCat(
        "every piece checked out but the whole file's SHA1 is ", sha1, ", not ", file_.sha1(),
        "; the file was registered with inconsistent hashes"));
  }
  // Durable before it is called complete: after a power cut the file is
  // whole, or still a part file whose pieces are checked again.
  RETURN_IF_ERROR(part_->Sync());
  RETURN_IF_ERROR(part_->RenameTo(dest_));
  ASSIGN_OR_RETURN(FileStamp stamp, StampOf(dest_));
  RETURN_IF_ERROR(context_.state->MarkComplete(context_.user_id, group_id_, file_.sha1(), stamp.mtime_ns));
  context_.state->AddCompleted({context_.user_id, group_id_, file_.name(), dest_, layout_.size})
      .IgnoreError();  // only show_downloads' history would miss it
  if (absl::Status s = context_.tracker->AnnounceHolder(group_id_, file_.name(), true); !s.ok()) {
    GS_LOG(kWarning) << "could not tell the tracker that " << file_.name()
                     << " is complete: " << s;
  }
  state_ = DownloadState::kComplete;
  std::string sources;
  for (const auto& [user, bytes] : bytes_by_peer_) {
    absl::StrAppend(&sources, sources.empty() ? "" : ", ", user, "=", bytes);
  }
  GS_LOG(kInfo) << "download of " << file_.name() << " in " << group_id_ << " complete: "
                << layout_.size << " bytes to " << dest_ << "; bytes from " << sources;
  return absl::OkStatus();
}

Download::Link* Download::Find(uint32_t id) {
  if (id == 0 || id > links_.size()) return nullptr;
  Link* link = links_[id - 1].get();
  return link->gone ? nullptr : link;
}

bool Download::MayConnect(const tv1::Peer& peer, absl::Time now) {
  int failed = 0;
  absl::Time last_failed = absl::InfinitePast();
  for (const auto& known : links_) {
    if (known->peer.address() != peer.address()) continue;
    if (!known->gone || known->strikes >= options_.max_strikes) return false;
    if (known->rotated) continue;
    ++failed;
    last_failed = std::max(last_failed, known->gone_at);
  }
  if (failed >= kMaxAttempts) return false;
  const absl::Duration backoff =
      failed == 0 ? absl::ZeroDuration()
                  : std::min(kFirstRetry * (int64_t{1} << std::min(failed - 1, 10)), kMaxRetry);
  return now - last_failed >= backoff;
}

void Download::AddPeers(const tv1::GetFilePeersResponse& response) {
  const absl::Time now = env_->Now();
  for (const tv1::Peer& p : response.peers()) {
    for (const auto& known : links_) {
      if (known->peer.address() == p.address() && !known->gone) {
        known->peer.set_ticket(p.ticket());  // renewed
      }
    }
    bool reserved = false;
    for (tv1::Peer& r : reserve_) {
      if (r.address() == p.address()) {
        r = p;
        reserved = true;
      }
    }
    if (reserved || !MayConnect(p, now)) continue;
    uint32_t connected = 0;
    for (const auto& l : links_) connected += !l->gone;
    if (connected < max_peers_.load()) {
      Connect(p);
    } else {
      reserve_.push_back(p);
    }
  }
}

void Download::Connect(const tv1::Peer& peer) {
  auto link = std::make_unique<Link>();
  link->id = PeerId(static_cast<uint32_t>(links_.size() + 1));
  link->peer = peer;
  link->since = env_->Now();
  link->link = env_->NewLink(this, link->id.value(), peer.user_id(), peer.address(),
                             PeerLink::Target{group_id_, file_.sha1(), layout_,
                                              LinkMemoryQuota(options_, layout_.piece_size)});
  link->bitfield_ticket = peer.ticket();
  ++counters_.peers_connected;
  GS_LOG(kDebug) << "download of " << file_.name() << ": peer " << peer.user_id() << " at "
                 << peer.address();
  PeerLink* opened = link->link.get();
  links_.push_back(std::move(link));
  opened->OpenBitfield(peer.ticket());
}

void Download::Fill(Link* link) {
  if (ending_ || !link->ready || link->gone) return;
  while (link->calls < options_.max_calls_per_peer) {
    // Calls carry several pieces: with one under way, wait until half the
    // window is free (in endgame, any free slot will do).
    const uint32_t in_flight = picker_.InFlight(link->id);
    const uint32_t free = link->window > in_flight ? link->window - in_flight : 0;
    if (link->calls > 0 && free < link->window / 2 && !picker_.InEndgame()) return;
    // In endgame each call carries one piece, so that a lost race cancels
    // only that piece.
    const uint32_t batch = picker_.InEndgame() ? 1 : options_.max_pieces_per_call;
    // Past its least window, a link takes only what the download's budget
    // has left, so fast links get the budget and every link keeps going.
    const uint64_t budget = options_.max_bytes_in_flight / layout_.piece_size;
    std::vector<uint32_t> pieces;
    while (pieces.size() < batch &&
           (picker_.InFlight(link->id) < kMinWindow || picker_.TotalInFlight() < budget)) {
      auto p = picker_.Pick(link->id);
      if (!p.has_value()) break;
      pieces.push_back(p->value());
    }
    if (pieces.empty()) return;
    ++link->calls;
    ++counters_.calls;
    link->link->Request(std::move(pieces), link->peer.ticket());
  }
}

void Download::FillAll() {
  for (const auto& l : links_) Fill(l.get());
}

void Download::Drop(Link* link, const std::string& why) {
  if (link->gone) return;
  link->gone = true;
  link->gone_at = env_->Now();
  ++counters_.peers_dropped;
  picker_.RemovePeer(link->id);
  link->link->Close();  // freed on the next pass
  if (ending_) return;
  GS_LOG(kInfo) << "download of " << file_.name() << ": dropped peer " << link->peer.user_id()
                << " at " << link->peer.address() << ": " << why;
  dropped_[link->peer.user_id()] = why;
  // A holder in reserve takes its place, the first that may be connected.
  const absl::Time now = env_->Now();
  for (auto it = reserve_.begin(); it != reserve_.end(); ++it) {
    if (!MayConnect(*it, now)) continue;
    tv1::Peer next = std::move(*it);
    reserve_.erase(it);
    Connect(next);
    break;
  }
  FillAll();  // its pieces are free for the others
}

void Download::Blame(Link* link, const absl::Status& why) {
  if (why.code() == absl::StatusCode::kDataLoss) {
    ++link->strikes;
    GS_LOG(kWarning) << "peer " << link->peer.user_id() << " at " << link->peer.address()
                     << ": " << why.message() << " (strike " << link->strikes << ")";
    if (link->strikes >= options_.max_strikes) {
      Drop(link, absl::StrCat("it sent ", link->strikes, " corrupt pieces"));
    }
  } else if (++link->failures >= options_.max_failures ||
             why.code() == absl::StatusCode::kPermissionDenied ||
             why.code() == absl::StatusCode::kNotFound) {
    Drop(link, std::string(why.message()));
  }
}

void Download::Handle(BitfieldEvent& e) {
  Link* link = Find(e.link);
  if (link == nullptr) return;
  const pv1::BitfieldUpdate& update = e.update;
  if (update.has_bitfield()) {
    auto bits = Bitfield::FromBytes(update.bitfield(), picker_.piece_count());
    if (update.piece_count() != picker_.piece_count() || !bits.ok()) {
      Drop(link, "it sent a malformed bitfield");
      return;
    }
    if (!link->ready) {
      picker_.AddPeer(link->id, *bits, link->window);
      link->ready = true;
    } else {  // a stream opened again with a new ticket
      for (uint32_t i = 0; i < bits->size(); ++i) {
        if (bits->Get(i)) picker_.PeerHas(link->id, PieceIndex(i));
      }
    }
  } else if (update.has_have() && link->ready) {
    picker_.PeerHas(link->id, PieceIndex(update.have()));
  }
  Fill(link);
}

void Download::Handle(BitfieldEndEvent& e) {
  Link* link = Find(e.link);
  if (link == nullptr) return;
  if (e.status.code() == absl::StatusCode::kPermissionDenied &&
      link->peer.ticket() != link->bitfield_ticket) {
    // Its ticket expired, and we hold a newer one.
    link->bitfield_ticket = link->peer.ticket();
    link->link->OpenBitfield(link->peer.ticket());
  } else {
    Drop(link, e.status.ok() ? "it stopped sharing" : std::string(e.status.message()));
  }
}

void Download::Handle(CallEndEvent& e) {
  if (e.link == 0 || e.link > links_.size()) return;
  Link* link = links_[e.link - 1].get();
  if (link->calls > 0) --link->calls;
  for (uint32_t piece : e.undelivered) picker_.Abort(link->id, PieceIndex(piece));
  if (link->gone) return;
  // CANCELLED: we cancelled it (a lost endgame race, a stalled call).
  if (!e.status.ok() && e.status.code() != absl::StatusCode::kCancelled) Blame(link, e.status);
  FillAll();
}

void Download::Handle(VerifiedEvent& e) {
  const PieceIndex piece(e.piece);
  Link* link = Find(e.link);  // null once dropped
  if (e.status.code() == absl::StatusCode::kDataLoss) {
    picker_.Abort(PeerId(e.link), piece);
    ++counters_.corrupt_pieces;
    if (link != nullptr && !picker_.Have(piece)) {
      Blame(link, absl::DataLossError(absl::StrCat("piece ", e.piece, " failed its SHA1 check")));
    }
    FillAll();
    return;
  }
  if (!e.status.ok()) {
    picker_.Abort(PeerId(e.link), piece);
    Fail(e.status);
    return;
  }
  if (picker_.Have(piece)) return;  // another copy won
  for (PeerId other : picker_.Complete(PeerId(e.link), piece)) {
    Link* loser = Find(other.value());
    if (loser != nullptr) loser->link->CancelPiece(e.piece);
    ++counters_.cancelled_copies;
  }
  const uint32_t len = layout_.PieceLength(e.piece);
  Link* from = links_[e.link - 1].get();
  bytes_done_ += len;
  from->bytes += len;
  from->failures = 0;
  bytes_by_peer_[from->peer.user_id()] += len;
  have_dirty_ = true;
  // Shared at once: the bitfield streams of this share hear of it now.
  context_.store->MarkHave(key_, e.piece);
  if (link == nullptr || picker_.InEndgame()) {
    FillAll();
  } else {
    Fill(link);
  }
}

void Download::Handle(PeersEvent& e) { AddPeers(e.response); }

void Download::Verify(uint32_t link, PeerLink::Piece piece) {
  const uint32_t index = piece.index;
  Sha1 sha1;
  for (absl::string_view part : piece.data) sha1.Update(part);
  absl::Status status;
  if (sha1.Finish() != expected_[index]) {
    status = absl::DataLossError("its SHA1 check failed");
  } else {
    status = part_->Write(layout_.PieceOffset(index), piece.data);
    // A second copy of a piece adds nothing: the hasher takes each once.
    if (status.ok()) hasher_->Add(index, piece.data);
  }
  piece = PeerLink::Piece();  // its bytes go back to gRPC now
  absl::MutexLock lock(&mu_);
  --pieces_held_;
  events_.push_back(VerifiedEvent{link, index, status});
  changed_.Signal();
}

void Download::FreeDroppedLinks() {
  for (const auto& l : links_) {
    if (l->gone) l->link.reset();  // waits for its closed calls to end
  }
}

void Download::Tick(absl::Time now) {
  double seconds = std::max(absl::ToDoubleSeconds(now - last_tick_), 1e-3);
  last_tick_ = now;
  double total = 0, fastest = 0;
  bool any_ready = false;
  for (const auto& l : links_) {
    if (l->gone) continue;
    any_ready |= l->ready;
    double instant = static_cast<double>(l->bytes - l->bytes_at_tick) / seconds;
    l->bytes_at_tick = l->bytes;
    l->rate = 0.5 * l->rate + 0.5 * instant;
    total += l->rate;
    fastest = std::max(fastest, l->rate);
    // Enough requests in flight to cover the pipeline target at its rate.
    double want = 1 + std::ceil(l->rate * absl::ToDoubleSeconds(kPipelineTarget) /
                                layout_.piece_size);
    l->window = static_cast<uint32_t>(std::clamp<double>(want, kMinWindow, options_.max_window));
    if (l->ready) picker_.SetMaxInFlight(l->id, l->window);
  }
  rate_ = total;
  // The ETA's rate moves slowly (a time constant of kEtaSmoothing), so that
  // a bursty peer, a capped one say, does not make the ETA jump about.
  eta_rate_ = eta_rate_ == 0
                  ? total
                  : eta_rate_ + (total - eta_rate_) *
                                    std::min(1.0, seconds / absl::ToDoubleSeconds(kEtaSmoothing));
  FillAll();  // windows may have grown
  // With holders in reserve, the slowest peer makes room now and then.
  if (!reserve_.empty() && now - last_rotate_ >= options_.rotate_interval) {
    last_rotate_ = now;
    Link* slowest = nullptr;
    for (const auto& l : links_) {
      if (l->gone || now - l->since < options_.rotate_interval) continue;
      if (slowest == nullptr || l->rate < slowest->rate) slowest = l.get();
    }
    if (slowest != nullptr && slowest->rate < kSlowShare * fastest) {
      tv1::Peer back = slowest->peer;
      slowest->rotated = true;
      Drop(slowest, "it is much slower than the others; trying a holder in reserve");
      reserve_.push_back(back);
    }
  }
  // Stuck: pieces are missing that no peer has, and nothing else is under
  // way (a large download keeps going while a missing piece may reappear).
  uint32_t in_flight = 0;
  for (const auto& l : links_) in_flight += l->gone ? 0 : picker_.InFlight(l->id);
  if (!any_ready || (picker_.UnavailableCount() > 0 && in_flight == 0)) {
    if (no_source_since_ == absl::InfiniteFuture()) no_source_since_ = now;
  } else {
    no_source_since_ = absl::InfiniteFuture();
  }
}

void Download::SaveProgress() {
  if (!have_dirty_) return;
  have_dirty_ = false;
  tracker_thread_->Run([this, have = picker_.have().ToBytes()] {
    if (absl::Status s =
            context_.state->UpdateHave(context_.user_id, group_id_, file_.sha1(), have);
        !s.ok()) {
      GS_LOG(kWarning) << "saving the progress of " << file_.name() << ": " << s;
    }
  });
}

}  // namespace groupshare::peer
