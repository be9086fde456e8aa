#include "services/peer/peer_service.h"


#include <algorithm>
#include <atomic>
#include <optional>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "core/log.h"
#include "core/piece_chunk.h"
#include "core/status_macros.h"
#include "services/common/grpc_status.h"
#include "services/common/server_setup.h"
#include "services/peer/peer_identity.h"

namespace groupshare::peer {
namespace {

constexpr absl::Duration kHousekeepingInterval = absl::Seconds(1);

// A call refused before it started.
template <class Message>
class Refusal final : public grpc::ServerWriteReactor<Message> {
 public:
  explicit Refusal(const grpc::Status& status) { this->Finish(status); }
  void OnDone() override { delete this; }
};

// Whose share of the calls and the read budget a call uses: over TLS, the
// client its certificate names (a member's devices are apart, behind one
// address or not; whoever holds one device's key shares that device's);
// over plaintext, the user at the call's source address (a ticket copied to
// someone elsewhere cannot use up what the member's own client is allowed).
std::string AllowanceOf(const std::string& user, const grpc::CallbackServerContext& ctx) {
  if (std::optional<std::string> client = PeerIdentity::CertifiedClient(ctx)) {
    return absl::StrCat(user, " client ", *client);
  }
  return absl::StrCat(user, " from ", SourceAddress(ctx.peer()));
}

}  // namespace

// Not in the anonymous namespace: the calls, classes of PeerServiceImpl,
// derive from it.
namespace internal {

// What both calls share: a reference count (gRPC holds one until OnDone;
// whoever acts on a call from outside holds one meanwhile) and one way to
// finish, safe against a cancellation from outside running at the same time.
//
// gRPC may run a call's reactions inline inside TryCancel, including Finish
// and OnDone. CutOff therefore marks itself running; a Finish wanted meanwhile
// waits until TryCancel has returned, so the context stays valid throughout.
template <class Message>
class CountedCall : public grpc::ServerWriteReactor<Message> {
 public:
  CountedCall(grpc::CallbackServerContext* ctx, std::string user)
      : ctx_(ctx), user_(std::move(user)), allowance_(AllowanceOf(user_, *ctx)) {}

  const std::string& user() const { return user_; }
  // Whose share of the limits the call uses (see AllowanceOf).
  const std::string& allowance() const { return allowance_; }
  void Ref() { refs_.fetch_add(1, std::memory_order_relaxed); }
  void Unref() {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }

  // Cancels the call from outside its reactions. The caller holds a
  // reference.
  void CutOff() ABSL_LOCKS_EXCLUDED(finish_mu_) {
    {
      absl::MutexLock lock(&finish_mu_);
      if (finished_) return;
      cutting_off_ = true;
    }
    ctx_->TryCancel();
    std::optional<grpc::Status> deferred;
    {
      absl::MutexLock lock(&finish_mu_);
      cutting_off_ = false;
      deferred.swap(deferred_);
    }
    if (deferred.has_value()) this->Finish(*deferred);
  }

 protected:
  // Finishes the call once; later calls do nothing.
  void FinishOnce(const grpc::Status& status) ABSL_LOCKS_EXCLUDED(finish_mu_) {
    {
      absl::MutexLock lock(&finish_mu_);
      if (finished_) return;
      finished_ = true;
      if (cutting_off_) {
        deferred_ = status;
        return;
      }
    }
    this->Finish(status);
  }

  grpc::CallbackServerContext* const ctx_;

 private:
  const std::string user_;
  const std::string allowance_;
  std::atomic<int> refs_{1};
  absl::Mutex finish_mu_;
  bool finished_ ABSL_GUARDED_BY(finish_mu_) = false;
  bool cutting_off_ ABSL_GUARDED_BY(finish_mu_) = false;
  std::optional<grpc::Status> deferred_ ABSL_GUARDED_BY(finish_mu_);
};

}  // namespace internal

// GetBitfield: the full bitfield, then one message a verified piece, fed by
// a subscription to the share. Of a share held whole, what the offer book
// offers instead, then one message a piece offered. Ends when the share
// goes, the ticket expires, or the caller cancels.
class PeerServiceImpl::BitfieldCall final : public internal::CountedCall<pv1::BitfieldUpdate> {
 public:
  // Forwards the store's news to the call. The call unsubscribes before it
  // is freed, and no news comes once that returns.
  class Listener final : public PieceStore::Listener {
   public:
    explicit Listener(BitfieldCall* call) : call_(call) {}
    void OnHave(uint32_t piece) override { call_->Queue({.piece = piece}); }
    void OnGone() override { call_->End(grpc::Status::OK); }

   private:
    BitfieldCall* const call_;
  };

  BitfieldCall(PeerServiceImpl* service, grpc::CallbackServerContext* ctx, ShareKey key,
               Ticket ticket)
      : CountedCall(ctx, ticket.user_id),
        service_(service),
        key_(std::move(key)),
        ticket_(std::move(ticket)),
        listener_(std::make_shared<Listener>(this)) {}

  bool ExpiredAt(absl::Time now) const { return ticket_.ExpiredAt(now); }

  // Subscribes and sends the full bitfield.
  void Start() {
    auto snapshot = service_->store_->Subscribe(key_, listener_);
    if (!snapshot.ok()) {
      FinishOnce(ToGrpcStatus(snapshot.status()));
      return;
    }
    const uint32_t count = snapshot->layout.PieceCount();
    const Bitfield bits =
        snapshot->have.All() ? service_->OpenOffers(key_, count, this) : snapshot->have;
    {
      absl::MutexLock lock(&mu_);
      count_ = count;
      message_.set_bitfield(bits.ToBytes());
      message_.set_piece_count(count_);
    }
    StartWrite(&message_);  // writing_ was true from the start
  }

  // A piece held or offered, or an offer withdrawn. A piece waits in the
  // queue once: a later move of a piece not yet sent replaces the earlier
  // (an offer withdrawn before it went out goes as a withdrawal alone).
  void Queue(OfferBook::Move move) ABSL_LOCKS_EXCLUDED(mu_) {
    {
      absl::MutexLock lock(&mu_);
      auto [it, added] = withdrawn_.try_emplace(move.piece, move.withdrawn);
      if (added) {
        pending_.push_back(move.piece);
      } else {
        it->second = move.withdrawn;
      }
    }
    Pump();
  }
  void End(const grpc::Status& status) ABSL_LOCKS_EXCLUDED(mu_) {
    {
      absl::MutexLock lock(&mu_);
      if (!end_.has_value()) end_ = status;
    }
    Pump();
  }
  // True when a message has waited for the reader since before `when`.
  bool WritingSince(absl::Time when) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    return writing_ && write_started_ < when;
  }

  void OnWriteDone(bool ok) override {
    {
      absl::MutexLock lock(&mu_);
      writing_ = false;
      if (!ok && !end_.has_value()) end_ = grpc::Status::CANCELLED;
    }
    Pump();
  }
  void OnCancel() override { End(grpc::Status::CANCELLED); }
  void OnDone() override {
    service_->store_->Unsubscribe(key_, listener_.get());
    service_->CloseOffers(key_, this);
    service_->Unregister(this);
    Unref();
  }

 private:
  // Starts the next write, or finishes once nothing is being written.
  void Pump() ABSL_LOCKS_EXCLUDED(mu_) {
    std::optional<grpc::Status> finish;
    {
      absl::MutexLock lock(&mu_);
      if (writing_ || done_) return;
      if (end_.has_value()) {
        done_ = true;
        finish = end_;
      } else if (!pending_.empty()) {
        message_.Clear();
        const uint32_t piece = pending_.front();
        pending_.pop_front();
        auto it = withdrawn_.find(piece);
        if (it->second) {
          message_.set_withdrawn(piece);
        } else {
          message_.set_have(piece);
        }
        withdrawn_.erase(it);
        message_.set_piece_count(count_);
        writing_ = true;
        write_started_ = absl::Now();
      } else {
        return;
      }
    }
    if (finish.has_value()) {
      FinishOnce(*finish);
    } else {
      StartWrite(&message_);
    }
  }

  PeerServiceImpl* const service_;
  const ShareKey key_;
  const Ticket ticket_;
  const std::shared_ptr<Listener> listener_;
  absl::Mutex mu_;
  pv1::BitfieldUpdate message_;  // written while writing_
  uint32_t count_ ABSL_GUARDED_BY(mu_) = 0;
  std::deque<uint32_t> pending_ ABSL_GUARDED_BY(mu_);  // at most one entry a piece
  // Of each piece in pending_: whether it goes as a withdrawal.
  absl::flat_hash_map<uint32_t, bool> withdrawn_ ABSL_GUARDED_BY(mu_);
  bool writing_ ABSL_GUARDED_BY(mu_) = true;  // until Start has sent the bitfield
  absl::Time write_started_ ABSL_GUARDED_BY(mu_) = absl::Now();
  std::optional<grpc::Status> end_ ABSL_GUARDED_BY(mu_);
  bool done_ ABSL_GUARDED_BY(mu_) = false;
};

// GetPiece: for each chunk in turn, a share of the read budget, a read on
// the disk threads, the upload cap's turn, one write. Nothing blocks a
// thread while the reader is slow.
class PeerServiceImpl::PieceCall final : public internal::CountedCall<pv1::PieceChunk> {
 public:
  PieceCall(PeerServiceImpl* service, grpc::CallbackServerContext* ctx, ShareKey key,
            std::string user, std::vector<uint32_t> pieces, FileLayout layout)
      : CountedCall(ctx, std::move(user)),
        service_(service),
        key_(std::move(key)),
        pieces_(std::move(pieces)),
        layout_(layout) {}

  uint32_t ChunkLength() const {
    return static_cast<uint32_t>(
        std::min<uint64_t>(kMaxChunkBytes, layout_.PieceLength(pieces_[index_]) - offset_));
  }

  // Ends a call that Housekeep took out of the queue for the read budget,
  // saying `why`; no other step of it runs.
  void EndWaiting(const std::string& why) {
    cancelled_.store(true);
    CutOff();
    FinishOnce(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, why));
  }
  // Asks for the budget of the next chunk, or finishes after the last.
  void Next() {
    if (index_ == pieces_.size() || cancelled_.load()) {
      FinishOnce(index_ == pieces_.size() ? grpc::Status::OK : grpc::Status::CANCELLED);
      return;
    }
    if (service_->Reserve(this, ChunkLength())) ScheduleRead();
  }
  // The budget is ours: read on the disk threads.
  void ScheduleRead() {
    service_->work_.Run([this] { Read(); });
  }
  // True when a message has waited for the reader since before `when`.
  bool WritingSince(absl::Time when) const {
    int64_t since = write_started_.load();
    return since != 0 && since < absl::ToUnixMicros(when);
  }

  void OnWriteDone(bool ok) override {
    write_started_.store(0);
    service_->Release(*this, ChunkLength(), ok ? &key_ : nullptr);
    if (!ok) {
      FinishOnce(grpc::Status::CANCELLED);
      return;
    }
    offset_ += ChunkLength();
    if (offset_ == layout_.PieceLength(pieces_[index_])) {
      const uint32_t sent = pieces_[index_];
      service_->ChangeOffers(key_, [sent](OfferBook& book) { return book.Sent(sent); });
      offset_ = 0;
      ++index_;
    }
    Next();
  }
  void OnCancel() override {
    cancelled_.store(true);
    // If it waits for the upload cap, it goes now (and fails at once),
    // rather than when its turn would have come.
    service_->PumpSends();
  }
  void OnDone() override {
    service_->ChangeOffers(key_, [this](OfferBook& book) {
      return book.NotSent(absl::MakeConstSpan(pieces_).subspan(index_));
    });
    service_->Unregister(this);
    Unref();
  }

 private:
  void Read() {
    const uint32_t length = ChunkLength();
    absl::Status read = cancelled_.load() ? absl::CancelledError("cancelled")
                                          : service_->store_->Read(key_, pieces_[index_], offset_,
                                                                   length, message_.mutable_data());
    if (!read.ok()) {
      service_->Release(*this, length);
      FinishOnce(ToGrpcStatus(read));
      return;
    }
    message_.set_piece(pieces_[index_]);
    message_.set_offset(offset_);
    if (!service_->QueueSend(this, key_, pieces_[index_], offset_, length)) Write();
  }

 public:
  bool cancelled() const { return cancelled_.load(); }
  const ShareKey& key() const { return key_; }
  void Write() {
    write_started_.store(absl::ToUnixMicros(absl::Now()));
    StartWrite(&message_);
  }

 private:

  PeerServiceImpl* const service_;
  const ShareKey key_;
  const std::vector<uint32_t> pieces_;
  const FileLayout layout_;
  // One step runs at a time (reserve, read, write), each started by the one
  // before, so these need no lock.
  size_t index_ = 0;
  uint32_t offset_ = 0;
  pv1::PieceChunk message_;
  std::atomic<bool> cancelled_{false};
  std::atomic<int64_t> write_started_{0};  // Unix micros; 0 while not writing
};

PeerServiceImpl::PeerServiceImpl(PieceStore* store, PeerServiceOptions options)
    : store_(store),
      options_(options),
      budget_(options.max_buffered_bytes, options.max_buffered_bytes_per_user),
      work_(options.disk_threads) {
  work_.RunAt(absl::Now() + kHousekeepingInterval, [this] { Housekeep(); });
}

PeerServiceImpl::~PeerServiceImpl() = default;

void PeerServiceImpl::SetTicketVerifier(std::shared_ptr<const TicketVerifier> verifier) {
  gate_.SetVerifier(std::move(verifier));
}

void PeerServiceImpl::SetSelfAddress(const std::string& address) {
  gate_.SetSelfAddress(address);
}

std::vector<UploadTraffic> PeerServiceImpl::Traffic() const {
  absl::MutexLock lock(&mu_);
  std::set<std::pair<std::string, ShareKey>> open;
  for (const PieceCall* call : piece_calls_) open.insert({call->user(), call->key()});
  std::vector<UploadTraffic> out;
  for (const auto& [who, sent] : sent_) {
    out.push_back({who.first, who.second, sent.bytes, sent.rate, open.count(who) > 0});
  }
  return out;
}

void PeerServiceImpl::ResetTraffic() {
  absl::MutexLock lock(&mu_);
  sent_.clear();
}

void PeerServiceImpl::SetMaxUploadRate(uint64_t bytes_per_second) {
  absl::MutexLock lock(&mu_);
  shaper_.SetRate(bytes_per_second);
}

void PeerServiceImpl::Shutdown() { gate_.Shutdown(); }

bool PeerServiceImpl::QueueSend(PieceCall* call, const ShareKey& key, uint32_t piece,
                                uint32_t offset, uint64_t bytes) {
  {
    absl::MutexLock lock(&mu_);
    if (shaper_.rate() == 0) return false;
    shaper_.Queue(call, absl::StrCat(key.group_id, "/", key.sha1, "/", piece), offset == 0,
                  bytes);
  }
  PumpSends();
  return true;
}

void PeerServiceImpl::PumpSends() {
  UploadShaper<PieceCall>::Pumped pumped;
  bool schedule = false;
  {
    absl::MutexLock lock(&mu_);
    pumped = shaper_.Pump(absl::Now(), [](PieceCall* call) { return call->cancelled(); });
    if (pumped.again.has_value() && !pump_timer_) schedule = pump_timer_ = true;
  }
  if (schedule) {
    work_.RunAt(*pumped.again, [this] {
      {
        absl::MutexLock lock(&mu_);
        pump_timer_ = false;
      }
      PumpSends();
    });
  }
  for (PieceCall* call : pumped.ready) call->Write();
}

absl::Status PeerServiceImpl::Admit(const std::string& user, const std::string& allowance) {
  absl::MutexLock lock(&mu_);
  if (calls_ >= options_.max_calls) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "this peer serves ", options_.max_calls, " calls at once already; try again later"));
  }
  uint32_t& mine = calls_by_allowance_[allowance];
  if (mine >= options_.max_calls_per_user) {
    return absl::ResourceExhaustedError(
        absl::StrCat("user ", user, " has ", mine, " calls open to this peer from this client, ",
                     "the most it serves one user's client; end some first"));
  }
  ++mine;
  ++calls_;
  return absl::OkStatus();
}

void PeerServiceImpl::Register(BitfieldCall* call) {
  absl::MutexLock lock(&mu_);
  bitfield_calls_.insert(call);
}

void PeerServiceImpl::Register(PieceCall* call) {
  absl::MutexLock lock(&mu_);
  piece_calls_.insert(call);
}

namespace {
template <class Map>
void Decrement(Map& map, const std::string& key, uint64_t by) {
  auto it = map.find(key);
  if (it == map.end()) return;
  it->second -= std::min<uint64_t>(it->second, by);
  if (it->second == 0) map.erase(it);
}
}  // namespace

void PeerServiceImpl::Unregister(BitfieldCall* call) {
  absl::MutexLock lock(&mu_);
  bitfield_calls_.erase(call);
  ReleaseAdmission(call->allowance());
}

void PeerServiceImpl::Unregister(PieceCall* call) {
  absl::MutexLock lock(&mu_);
  piece_calls_.erase(call);
  ReleaseAdmission(call->allowance());
}

void PeerServiceImpl::ReleaseAdmission(const std::string& allowance) {
  Decrement(calls_by_allowance_, allowance, 1);
  --calls_;
}

bool PeerServiceImpl::Reserve(PieceCall* call, uint64_t bytes) {
  absl::MutexLock lock(&mu_);
  return budget_.Reserve(call, call->allowance(), bytes, absl::Now());
}

void PeerServiceImpl::Release(const PieceCall& call, uint64_t bytes, const ShareKey* sent) {
  std::vector<PieceCall*> ready;
  {
    absl::MutexLock lock(&mu_);
    if (sent != nullptr) sent_[{call.user(), *sent}].bytes += bytes;
    ready = budget_.Release(call.allowance(), bytes);
  }
  for (PieceCall* call : ready) call->ScheduleRead();
}

void PeerServiceImpl::Housekeep() {
  const absl::Time now = absl::Now();
  std::vector<BitfieldCall*> expired;
  std::vector<PieceCall*> stalled, unqueued;
  absl::flat_hash_set<std::string> stalled_clients;  // allowances of the stalled calls
  {
    absl::MutexLock lock(&mu_);
    // With no call left, the send counts of the last crowd mean nothing to
    // the next one.
    if (calls_ == 0) shaper_.ForgetCounts();
    const double elapsed = std::max(absl::ToDoubleSeconds(now - last_tick_), 1e-3);
    for (auto& [who, sent] : sent_) {
      sent.rate = static_cast<double>(sent.bytes - sent.bytes_at_tick) / elapsed;
      sent.bytes_at_tick = sent.bytes;
    }
    last_tick_ = now;
    for (BitfieldCall* call : bitfield_calls_) {
      if (call->ExpiredAt(now)) {
        call->Ref();
        expired.push_back(call);
      }
    }
    for (PieceCall* call : piece_calls_) {
      if (call->WritingSince(now - options_.write_timeout)) {
        call->Ref();
        stalled.push_back(call);
        stalled_clients.insert(call->allowance());
      }
    }
    // Calls that waited too long for the read budget (held by readers
    // that take nothing), or whose caller gave up, leave the queue: each
    // holds a slot of its user's, which a live call could use. So do the
    // waiting calls of a client whose reader took nothing on another call:
    // it would take nothing on them either, and they would take the budget
    // the stalled calls free and stall in turn.
    unqueued = budget_.Expire(now - options_.write_timeout, [&](PieceCall* call) {
      return call->cancelled() || stalled_clients.contains(call->allowance());
    });
    for (PieceCall* call : unqueued) call->Ref();
  }
  const std::string timeout = absl::FormatDuration(options_.write_timeout);
  for (PieceCall* call : unqueued) {
    const std::string why =
        stalled_clients.contains(call->allowance())
            ? absl::StrCat("another call of this client took nothing for ", timeout)
            : absl::StrCat("the call waited for this peer's read budget for ", timeout);
    if (!call->cancelled()) {
      GS_LOG(kInfo) << "ending a GetPiece call of " << call->user() << ": " << why;
    }
    call->EndWaiting(why);
    call->Unref();
  }
  for (BitfieldCall* call : expired) {
    call->End(grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                           "download ticket expired; ask the tracker for a new one "
                           "(GetFilePeers) and call again"));
    // A reader that takes nothing would keep the stream open regardless.
    if (call->WritingSince(now - options_.write_timeout)) call->CutOff();
    call->Unref();
  }
  for (PieceCall* call : stalled) {
    GS_LOG(kInfo) << "cutting off a GetPiece call of " << call->user()
                  << " whose reader took nothing for " << timeout;
    call->CutOff();
    call->Unref();
  }
  work_.RunAt(now + kHousekeepingInterval, [this] { Housekeep(); });
}

Bitfield PeerServiceImpl::OpenOffers(const ShareKey& key, uint32_t piece_count,
                                     BitfieldCall* call) {
  Bitfield offered;
  ChangeOffers(
      key,
      [&](OfferBook& book) {
        OfferBook::Moves others;
        offered = book.Open(call, &others);
        return others;
      },
      piece_count);
  return offered;
}

void PeerServiceImpl::CloseOffers(const ShareKey& key, BitfieldCall* call) {
  absl::MutexLock lock(&offers_mu_);
  auto it = offers_.find(key);
  if (it == offers_.end()) return;
  it->second.Close(call);
  if (it->second.empty()) offers_.erase(it);
}

void PeerServiceImpl::ChangeOffers(const ShareKey& key,
                                   absl::FunctionRef<OfferBook::Moves(OfferBook&)> change,
                                   uint32_t open_with) {
  std::vector<std::pair<BitfieldCall*, OfferBook::Move>> moved;
  {
    absl::MutexLock lock(&offers_mu_);
    auto it = open_with > 0 ? offers_.try_emplace(key, open_with, options_.offers).first
                            : offers_.find(key);
    if (it == offers_.end()) return;
    for (const OfferBook::Move& move : change(it->second)) {
      // In the book, so alive until CloseOffers, which waits for the lock.
      auto* call = static_cast<BitfieldCall*>(const_cast<void*>(move.reader));
      call->Ref();
      moved.push_back({call, move});
    }
  }
  for (auto& [call, move] : moved) {
    call->Queue(move);
    call->Unref();
  }
}

grpc::ServerWriteReactor<pv1::BitfieldUpdate>* PeerServiceImpl::GetBitfield(
    grpc::CallbackServerContext* ctx, const pv1::GetBitfieldRequest* req) {
  auto ticket = gate_.Authorize(req->ticket(), req->group_id(), req->file_sha1(),
                               PeerIdentity::CertifiedUser(*ctx));
  absl::Status admitted =
      ticket.ok() ? Admit(ticket->user_id, AllowanceOf(ticket->user_id, *ctx)) : ticket.status();
  if (!admitted.ok()) {
    GS_LOG(kDebug) << "GetBitfield refused: " << admitted;
    return new Refusal<pv1::BitfieldUpdate>(ToGrpcStatus(admitted));
  }
  auto* call = new BitfieldCall(this, ctx, ShareKey{req->group_id(), req->file_sha1()},
                                *std::move(ticket));
  Register(call);
  call->Start();
  return call;
}

absl::StatusOr<std::vector<uint32_t>> CheckPieceRequest(const pv1::GetPieceRequest& req,
                                                        uint32_t max_pieces) {
  const auto& pieces = req.pieces();
  if (pieces.empty() || static_cast<uint32_t>(pieces.size()) > max_pieces) {
    return absl::InvalidArgumentError(absl::StrCat("a GetPiece call asks for 1 to ", max_pieces,
                                                   " pieces, not ", pieces.size()));
  }
  std::vector<uint32_t> sorted(pieces.begin(), pieces.end());
  std::sort(sorted.begin(), sorted.end());
  if (std::adjacent_find(sorted.begin(), sorted.end()) != sorted.end()) {
    return absl::InvalidArgumentError(
        "a GetPiece call names a piece more than once; ask for each piece once");
  }
  return sorted;
}

grpc::ServerWriteReactor<pv1::PieceChunk>* PeerServiceImpl::GetPiece(
    grpc::CallbackServerContext* ctx, const pv1::GetPieceRequest* req) {
  auto refuse = [](const absl::Status& why) {
    GS_LOG(kDebug) << "GetPiece refused: " << why;
    return new Refusal<pv1::PieceChunk>(ToGrpcStatus(why));
  };
  const auto& pieces = req->pieces();
  auto sorted = CheckPieceRequest(*req, options_.max_pieces_per_request);
  if (!sorted.ok()) return refuse(sorted.status());
  auto ticket = gate_.Authorize(req->ticket(), req->group_id(), req->file_sha1(),
                               PeerIdentity::CertifiedUser(*ctx));
  if (!ticket.ok()) return refuse(ticket.status());
  ShareKey key{req->group_id(), req->file_sha1()};
  auto snapshot = store_->Get(key);
  if (!snapshot.ok()) return refuse(snapshot.status());
  if (sorted->back() >= snapshot->layout.PieceCount()) {
    return refuse(absl::OutOfRangeError(absl::StrCat(
        "piece ", sorted->back(), " is out of range; the file has ",
        snapshot->layout.PieceCount())));
  }
  if (absl::Status s = Admit(ticket->user_id, AllowanceOf(ticket->user_id, *ctx)); !s.ok()) {
    return refuse(s);
  }
  std::vector<uint32_t> asked(pieces.begin(), pieces.end());
  ChangeOffers(key, [&](OfferBook& book) { return book.Asked(asked); });
  auto* call = new PieceCall(this, ctx, std::move(key), ticket->user_id, std::move(asked),
                             snapshot->layout);
  Register(call);
  call->Next();
  return call;
}

}  // namespace groupshare::peer
