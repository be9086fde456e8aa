#include "services/peer/downloader.h"

#include <algorithm>
#include <cmath>
#include <optional>
#include <utility>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "core/log.h"
#include "core/status_macros.h"

namespace groupshare::peer {

namespace tv1 = ::groupshare::tracker::v1;

namespace {

// A new link's window, before its rate is known, and the least it shrinks
// to: two keep a slow (say rate-capped) peer busy without queueing much
// there, which matters when many downloaders ask one capped seeder.
constexpr uint32_t kInitialWindow = 4;
constexpr uint32_t kMinWindow = 2;
constexpr absl::Duration kTick = absl::Milliseconds(250);
constexpr absl::Duration kSaveInterval = absl::Seconds(1);
constexpr absl::Duration kEtaSmoothing = absl::Seconds(8);
// A piece asked of a peer waits there, and an idle peer may fetch a copy,
// once its call brought nothing for twice the time a piece takes at the
// peer's rate, within these bounds. (A piece comes as one message, so a
// shorter silence may be one on its way.)
constexpr absl::Duration kLeastWait = absl::Milliseconds(250);
constexpr absl::Duration kMostWait = absl::Seconds(2);

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

PeerSet::Options PeerSetOptions(const DownloadOptions& options, uint32_t piece_size) {
  PeerSet::Options o;
  o.piece_size = std::max<uint32_t>(piece_size, 1);
  o.initial_window = kInitialWindow;
  o.min_window = kMinWindow;
  o.max_window = options.max_window;
  o.max_strikes = options.max_strikes;
  o.max_failures = options.max_failures;
  o.rotate_interval = options.rotate_interval;
  return o;
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
      peers_(PeerSetOptions(options_, layout_.piece_size), env_->Now()),
      last_tick_(env_->Now()) {
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
  if (target_ != nullptr && state_ != DownloadState::kComplete) {
    p.part_file = target_->part_path();
  }
  p.pieces_done = picker_.HaveCount();
  p.piece_count = picker_.piece_count();
  p.bytes_done = bytes_done_;
  if (state_ == DownloadState::kRunning && no_source_since_ != absl::InfiniteFuture()) {
    p.waiting_for_sharer = true;
    p.gives_up_in = options_.no_source_timeout - (env_->Now() - no_source_since_);
  }
  p.queued_ahead = queued_ahead_;
  p.size = layout_.size;
  p.bytes_per_second = state_ == DownloadState::kRunning ? rate_ : 0;
  p.eta_bytes_per_second = state_ == DownloadState::kRunning ? eta_rate_ : 0;
  for (const PeerSet::Peer& peer : peers_.peers()) p.peers += peer.ready && !peer.gone;
  for (const auto& link : links_) p.links_open += link != nullptr;
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

bool Download::AwaitTurn() {
  DownloadSlots* const slots = context_.slots;
  if (slots == nullptr) return true;
  const uint64_t place = slots->Join();
  bool waited = false;
  while (!slots->TryTake(place)) {
    waited = true;
    queued_ahead_ = slots->Ahead(place);
    Publish();
    absl::MutexLock lock(&mu_);
    if (!stop_) env_->WaitUntil(&changed_, &mu_, env_->Now() + kTick);
    if (stop_) {
      slots->Leave(place);
      return false;
    }
  }
  has_slot_ = true;
  queued_ahead_.reset();
  // The holders and tickets it was given may be stale by now.
  if (waited) {
    auto fresh = context_.tracker->GetFilePeers(group_id_, file_.name());
    if (fresh.ok() && fresh->file().sha1() == file_.sha1()) first_ = *std::move(fresh);
  }
  return true;
}

void Download::Run() {
  absl::Cleanup give_back = [this] {
    if (has_slot_) context_.slots->Give();
  };
  absl::Time started = env_->Now();
  if (!AwaitTurn()) {
    // Stopped while it waited its turn: it opened nothing, and ends so.
    ending_ = true;
    state_ = DownloadState::kStopped;
    queued_ahead_.reset();
  } else {
    {
      absl::MutexLock lock(&mu_);
      workers_ = std::make_unique<WorkQueue>(std::max(options_.workers, 1));
    }
    started = env_->Now();
    if (absl::Status s = Prepare(); !s.ok()) {
      Fail(s);
    } else {
      if (picker_.HaveCount() == 0) {
        tracker_thread_->Run([this] {
          if (context_.tracker->AnnounceStart(group_id_, file_.name()).ok()) announced_ = true;
        });
      }
      AddPeers(first_);
    }
  }
  absl::Time last_refresh = env_->Now(), last_save = env_->Now();
  absl::Duration refresh_wait = options_.first_refresh;  // doubles up to the interval
  while (!ending_ && !picker_.Done()) {
    std::deque<Event> events;
    {
      absl::MutexLock lock(&mu_);
      if (events_.empty() && !stop_) {
        env_->WaitUntil(&changed_, &mu_,
                        std::min(env_->Now() + kTick, last_refresh + refresh_wait));
      }
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
    if (no_source_since_ != absl::InfiniteFuture() &&
        (!unlisted_.ok() || now - no_source_since_ > options_.no_source_timeout)) {
      no_source_failure_ = true;
      Fail(NoSourceError());
      break;
    }
    // Calls that brought nothing for too long go back to the picker
    // (as cancelled calls end); the peer gets a failure.
    for (uint32_t id = 1; id <= links_.size(); ++id) {  // a drop may connect another
      if (peers_.Find(id) == nullptr) continue;
      if (int n = links_[id - 1]->CancelStalled(now - options_.piece_timeout); n > 0) {
        counters_.stalled_calls += n;
        Blame(id, absl::DeadlineExceededError(absl::StrCat(
                      "it sent nothing for ", absl::FormatDuration(options_.piece_timeout))));
      }
    }
    if (!announcing_ && picker_.HaveCount() > 0) {
      announcing_ = true;
      tracker_thread_->Run([this] {
        if (context_.tracker->AnnounceHolder(group_id_, file_.name(), false).ok()) {
          announced_ = true;
        }
      });
    }
    const bool room = peers_.connected() < max_peers_.load();
    refresh_wait = std::min(
        refresh_wait, room ? options_.refresh_interval_with_room : options_.refresh_interval);
    if (now - last_refresh >= refresh_wait) {
      last_refresh = now;
      refresh_wait *= 2;
      tracker_thread_->Run([this] {
        auto answer = context_.tracker->GetFilePeers(group_id_, file_.name());
        if (!answer.ok() && answer.status() != last_refresh_failure_) {
          GS_LOG(kWarning) << "refreshing the peers of " << file_.name() << ": "
                           << answer.status();
        }
        last_refresh_failure_ = answer.status();
        Post(PeersEvent{std::move(answer)});
      });
    }
    if (now - last_save >= kSaveInterval) {
      // A part file taken away fails the download now, not at its end.
      if (absl::Status s = target_->CheckPartFile(); !s.ok()) {
        Fail(s);
        break;
      }
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
  for (const auto& link : links_) {
    if (link != nullptr) link->Close();
  }
  std::unique_ptr<WorkQueue> workers;
  {
    absl::MutexLock lock(&mu_);
    workers = std::move(workers_);
  }
  workers.reset();
  // Pieces still waiting for their turn go back to gRPC unchecked.
  if (target_ != nullptr) target_->writer().DropWaiting();
  tracker_thread_.reset();
  links_.clear();
  {
    absl::MutexLock lock(&mu_);
    events_.clear();
  }
  GS_LOG(kDebug) << "download of " << file_.name() << ": pieces in "
                 << absl::ToDoubleSeconds(pieces_done - started) << " s, links stopped "
                 << absl::ToDoubleSeconds(env_->Now() - pieces_done) << " s later";
  // A save still queued was dropped with the thread.
  if (target_ != nullptr) WriteHave(picker_.have().ToBytes());
  if (picker_.Done() && state_ == DownloadState::kRunning) {
    if (absl::Status s = Finish(); !s.ok()) Fail(s);
  }
  if (state_ == DownloadState::kFailed) {
    Withdraw();
  } else if (state_ == DownloadState::kRunning) {
    state_ = DownloadState::kStopped;
  }
  Publish();
  absl::MutexLock lock(&mu_);
  ended_ = true;
}

absl::Status Download::Prepare() {
  Bitfield have;
  ASSIGN_OR_RETURN(target_,
                   DownloadTarget::Resume({context_.user_id, group_id_, file_, dest_,
                                           options_.max_piece_size},
                                          context_.state, env_, &have));
  RETURN_IF_ERROR(context_.store->Add(key_, file_.name(), part_path_, layout_, have));
  for (uint32_t i = 0; i < have.size(); ++i) {
    if (!have.Get(i)) continue;
    picker_.SetHave(PieceIndex(i));
    bytes_done_ += layout_.PieceLength(i);
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
  absl::Status finished = target_->Finish(context_.state);
  counters_.pieces_read_back = target_->writer().pieces_read_back();
  RETURN_IF_ERROR(finished);
  if (absl::Status s = context_.tracker->AnnounceHolder(group_id_, file_.name(), true); !s.ok()) {
    GS_LOG(kWarning) << "could not tell the tracker that " << file_.name()
                     << " is complete: " << s;
  }
  state_ = DownloadState::kComplete;
  std::string sources;
  for (const auto& [user, bytes] : bytes_by_peer_) {
    absl::StrAppend(&sources, sources.empty() ? "" : ", ", user, "=", bytes);
  }
  const std::string checked =
      target_->writer().chained()
          ? "every piece checked against the file's SHA1 chain"
          : absl::StrCat(counters_.pieces_read_back, " of ", layout_.PieceCount(),
                         " pieces read back for the whole file's SHA1");
  GS_LOG(kInfo) << "download of " << file_.name() << " in " << group_id_ << " complete: "
                << layout_.size << " bytes to " << dest_ << "; bytes from " << sources << "; "
                << checked;
  return absl::OkStatus();
}

void Download::AddPeers(const tv1::GetFilePeersResponse& response) {
  for (const tv1::Peer& holder : peers_.Offer(response, max_peers_.load(), env_->Now())) {
    Connect(holder);
  }
}

void Download::Connect(const tv1::Peer& holder) {
  const uint32_t id = peers_.Connect(holder, env_->Now());
  links_.push_back(env_->NewLink(this, id, holder,
                                 PeerLink::Target{group_id_, file_.sha1(), layout_,
                                                  LinkMemoryQuota(options_, layout_.piece_size)}));
  ++counters_.peers_connected;
  GS_LOG(kDebug) << "download of " << file_.name() << ": peer " << holder.user_id() << " at "
                 << holder.address();
  links_.back()->OpenBitfield(holder.ticket());
}

void Download::Fill(uint32_t id) {
  PeerSet::Peer* peer = peers_.Find(id);
  if (ending_ || peer == nullptr || !peer->ready) return;
  const PeerId picked(id);
  const PiecePicker::Waits waits = [this](PeerId holder, PieceIndex piece) {
    return PieceWaits(holder, piece);
  };
  while (peer->calls < options_.max_calls_per_peer) {
    // Calls carry several pieces: with one under way, wait until half the
    // window is free (in endgame, any free slot will do).
    const uint32_t in_flight = picker_.InFlight(picked);
    const uint32_t free = peer->window > in_flight ? peer->window - in_flight : 0;
    if (peer->calls > 0 && free < peer->window / 2 && !picker_.InEndgame()) return;
    // In endgame each call carries one piece, so that a lost race cancels
    // only that piece.
    const uint32_t batch = picker_.InEndgame() ? 1 : options_.max_pieces_per_call;
    // Past its least window, a link takes only what the download's budget
    // has left, so fast links get the budget and every link keeps going.
    const uint64_t budget = options_.max_bytes_in_flight / layout_.piece_size;
    // Under a download cap, a piece is asked for only once the cap has room
    // (Tick tries again).
    RateCap* const cap = context_.cap;
    const absl::Time now = env_->Now();
    std::vector<uint32_t> pieces;
    while (pieces.size() < batch &&
           (picker_.InFlight(picked) < kMinWindow || picker_.TotalInFlight() < budget) &&
           (cap == nullptr || cap->Open(now))) {
      auto p = picker_.Pick(picked, waits);
      if (!p.has_value()) break;
      if (cap != nullptr) cap->Take(layout_.PieceLength(p->value()), now);
      pieces.push_back(p->value());
    }
    if (pieces.empty()) return;
    ++peer->calls;
    ++counters_.calls;
    links_[id - 1]->Request(std::move(pieces), peer->holder.ticket());
  }
}

bool Download::PieceWaits(PeerId holder, PieceIndex piece) {
  const PeerSet::Peer* at = peers_.Find(holder.value());
  if (at == nullptr) return true;
  const double piece_seconds = at->rate > 0 ? layout_.piece_size / at->rate : 1e9;
  const absl::Duration wait = std::clamp(absl::Seconds(2 * piece_seconds), kLeastWait, kMostWait);
  return links_[holder.value() - 1]->Waits(piece.value(), env_->Now() - wait);
}

void Download::FillAll() {
  for (uint32_t id = 1; id <= links_.size(); ++id) Fill(id);
}

void Download::Drop(uint32_t id, const std::string& why, bool rotated) {
  PeerSet::Peer* peer = peers_.Find(id);
  if (peer == nullptr) return;
  const tv1::Peer holder = peer->holder;
  std::optional<tv1::Peer> next = peers_.Drop(id, rotated, env_->Now());
  ++counters_.peers_dropped;
  picker_.RemovePeer(PeerId(id));
  links_[id - 1]->Close();  // freed on the next pass
  if (ending_) return;
  GS_LOG(kInfo) << "download of " << file_.name() << ": dropped peer " << holder.user_id()
                << " at " << holder.address() << ": " << why;
  dropped_[holder.user_id()] = why;
  if (next.has_value()) Connect(*next);
  FillAll();  // its pieces are free for the others
}

void Download::Blame(uint32_t id, const absl::Status& why) {
  PeerSet::Peer* peer = peers_.Find(id);
  if (peer == nullptr) return;
  std::optional<std::string> drop = peers_.Blame(id, why);
  if (why.code() == absl::StatusCode::kDataLoss) {
    GS_LOG(kWarning) << "peer " << peer->holder.user_id() << " at " << peer->holder.address()
                     << ": " << why.message() << " (strike " << peer->strikes << ")";
  }
  if (drop.has_value()) Drop(id, *drop);
}

void Download::Handle(BitfieldEvent& e) {
  PeerSet::Peer* peer = peers_.Find(e.link);
  if (peer == nullptr) return;
  const pv1::BitfieldUpdate& update = e.update;
  if (update.has_bitfield()) {
    auto bits = Bitfield::FromBytes(update.bitfield(), picker_.piece_count());
    if (update.piece_count() != picker_.piece_count() || !bits.ok()) {
      Drop(e.link, "it sent a malformed bitfield");
      return;
    }
    if (!peer->ready) {
      picker_.AddPeer(PeerId(e.link), *bits, peer->window);
      peer->ready = true;
    } else {  // a stream opened again with a new ticket
      for (uint32_t i = 0; i < bits->size(); ++i) {
        if (bits->Get(i)) picker_.PeerHas(PeerId(e.link), PieceIndex(i));
      }
    }
  } else if (update.has_have() && peer->ready) {
    picker_.PeerHas(PeerId(e.link), PieceIndex(update.have()));
  } else if (update.has_withdrawn() && peer->ready) {
    picker_.PeerLacks(PeerId(e.link), PieceIndex(update.withdrawn()));
  }
  Fill(e.link);
}

void Download::Handle(BitfieldEndEvent& e) {
  PeerSet::Peer* peer = peers_.Find(e.link);
  if (peer == nullptr) return;
  if (e.status.code() == absl::StatusCode::kPermissionDenied &&
      peer->holder.ticket() != peer->bitfield_ticket) {
    // Its ticket expired, and we hold a newer one.
    peer->bitfield_ticket = peer->holder.ticket();
    links_[e.link - 1]->OpenBitfield(peer->holder.ticket());
  } else {
    Drop(e.link, e.status.ok() ? "it stopped sharing" : std::string(e.status.message()));
  }
}

void Download::Handle(CallEndEvent& e) {
  PeerSet::Peer* peer = peers_.Get(e.link);
  if (peer == nullptr) return;
  if (peer->calls > 0) --peer->calls;
  for (uint32_t piece : e.undelivered) picker_.Abort(PeerId(e.link), PieceIndex(piece));
  if (peer->gone) return;
  // CANCELLED: we cancelled it (a lost endgame race, a stalled call).
  if (!e.status.ok() && e.status.code() != absl::StatusCode::kCancelled) Blame(e.link, e.status);
  FillAll();
}

void Download::Handle(VerifiedEvent& e) {
  const PieceIndex piece(e.piece);
  if (e.status.code() == absl::StatusCode::kDataLoss) {
    picker_.Abort(PeerId(e.link), piece);
    ++counters_.corrupt_pieces;
    if (!picker_.Have(piece)) {
      Blame(e.link, absl::DataLossError(absl::StrCat("piece ", e.piece, " failed its SHA1 check")));
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
    if (peers_.Find(other.value()) != nullptr) links_[other.value() - 1]->CancelPiece(e.piece);
    ++counters_.cancelled_copies;
  }
  const uint32_t len = layout_.PieceLength(e.piece);
  bytes_done_ += len;
  peers_.Delivered(e.link, len);
  bytes_by_peer_[peers_.Get(e.link)->holder.user_id()] += len;
  have_dirty_ = true;
  // Shared at once: the bitfield streams of this share hear of it now.
  context_.store->MarkHave(key_, e.piece);
  if (peers_.Find(e.link) == nullptr || picker_.InEndgame()) {
    FillAll();
  } else {
    Fill(e.link);
  }
}

void Download::Handle(PeersEvent& e) {
  if (!e.answer.ok()) {
    // Any other failure (the tracker out of reach) says nothing of sharers.
    if (e.answer.status().code() == absl::StatusCode::kNotFound) unlisted_ = e.answer.status();
    return;
  }
  unlisted_ = absl::OkStatus();
  if (e.answer->file().sha1() == file_.sha1()) AddPeers(*e.answer);  // else: other content now
}

absl::Status Download::NoSourceError() const {
  if (!unlisted_.ok()) {
    // The tracker's fact, without its advice to gRPC callers after "; ".
    absl::string_view fact = unlisted_.message();
    fact = fact.substr(0, fact.find("; "));
    return absl::UnavailableError(absl::StrCat("the tracker lists no sharer of it now (", fact,
                                               "); it goes on when a member shares it again"));
  }
  const uint32_t missing = picker_.piece_count() - picker_.HaveCount();
  return absl::UnavailableError(absl::StrCat(
      "no online peer has ", std::max<uint32_t>(picker_.UnavailableCount(), 1), " of the ",
      missing, " missing pieces; it goes on when a sharer is back"));
}

void Download::Verify(uint32_t link, PeerLink::Piece piece) {
  const uint32_t index = piece.index;
  std::vector<absl::string_view> data = piece.data;
  // The verdict comes now or, for a piece that waits for its turn in the
  // whole file's SHA1, from another worker; the bytes go back to gRPC then.
  const bool waits = target_->writer().Write(
      index, std::move(data),
      [this, link, index, piece = std::move(piece)](absl::Status status) mutable {
        piece = PeerLink::Piece();
        absl::MutexLock lock(&mu_);
        --pieces_held_;
        events_.push_back(VerifiedEvent{link, index, std::move(status)});
        changed_.Signal();
      },
      [this](std::function<void()> task) {
        absl::MutexLock lock(&mu_);
        if (workers_ != nullptr) workers_->Run(std::move(task));  // else the download ends
      });
  if (!waits) return;
  absl::MutexLock lock(&mu_);
  ScheduleCheckWaiting();
}

void Download::ScheduleCheckWaiting() {
  if (workers_ == nullptr || check_waiting_due_) return;  // ending, or due already
  check_waiting_due_ = true;
  workers_->RunAt(absl::Now() + PieceWriter::kTurnWait, [this] { CheckWaiting(); });
}

void Download::CheckWaiting() {
  {
    absl::MutexLock lock(&mu_);
    check_waiting_due_ = false;
  }
  if (!target_->writer().CheckWaiting()) return;
  absl::MutexLock lock(&mu_);
  ScheduleCheckWaiting();  // for those that came since the last check
}

void Download::FreeDroppedLinks() {
  for (const PeerSet::Peer& peer : peers_.peers()) {
    if (peer.gone) links_[peer.id - 1].reset();  // waits for its closed calls to end
  }
}

void Download::Tick(absl::Time now) {
  const double seconds = std::max(absl::ToDoubleSeconds(now - last_tick_), 1e-3);
  last_tick_ = now;
  std::optional<uint32_t> rotate_out = peers_.Tick(now, seconds);
  bool any_ready = false;
  uint32_t in_flight = 0;
  for (const PeerSet::Peer& peer : peers_.peers()) {
    if (peer.gone) continue;
    any_ready |= peer.ready;
    if (peer.ready) picker_.SetMaxInFlight(PeerId(peer.id), peer.window);
    in_flight += picker_.InFlight(PeerId(peer.id));
  }
  const double total = peers_.total_rate();
  rate_ = total;
  // The ETA's rate moves slowly (a time constant of kEtaSmoothing), so that
  // a bursty peer, a capped one say, does not make the ETA jump about.
  eta_rate_ = eta_rate_ == 0
                  ? total
                  : eta_rate_ + (total - eta_rate_) *
                                    std::min(1.0, seconds / absl::ToDoubleSeconds(kEtaSmoothing));
  FillAll();  // windows may have grown
  // With holders in reserve, the slowest peer makes room now and then.
  if (rotate_out.has_value()) {
    Drop(*rotate_out, "it is much slower than the others; trying a holder in reserve",
         /*rotated=*/true);
  }
  // Stuck: pieces are missing that no peer has, and nothing else is under
  // way (a large download keeps going while a missing piece may reappear).
  if (!any_ready || (picker_.UnavailableCount() > 0 && in_flight == 0)) {
    if (no_source_since_ == absl::InfiniteFuture()) no_source_since_ = now;
  } else {
    no_source_since_ = absl::InfiniteFuture();
  }
}

void Download::SaveProgress() {
  if (!have_dirty_) return;
  have_dirty_ = false;
  tracker_thread_->Run([this, have = picker_.have().ToBytes()] { WriteHave(have); });
}

void Download::WriteHave(const std::string& have) {
  if (absl::Status s =
          context_.state->UpdateHave(context_.user_id, group_id_, file_.sha1(), have);
      !s.ok()) {
    GS_LOG(kWarning) << "saving the progress of " << file_.name() << ": " << s;
  }
}

}  // namespace groupshare::peer
