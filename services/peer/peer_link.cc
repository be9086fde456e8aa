#include "services/peer/peer_link.h"

#include <algorithm>
#include <atomic>

#include <grpcpp/resource_quota.h>

#include "absl/strings/str_cat.h"
#include "core/log.h"
#include "core/piece_chunk.h"
#include "services/common/grpc_status.h"

namespace groupshare::peer {
namespace {

constexpr char kGetPieceMethod[] = "/groupshare.peer.v1.PeerService/GetPiece";
// What a message may hold besides its data: the field tags and numbers.
constexpr int kMessageOverhead = 4096;

std::shared_ptr<grpc::Channel> MakeChannel(const std::string& address,
                                           const PeerLink::Target& target, LinkRoute route) {
  const FileLayout& layout = target.layout;
  std::shared_ptr<grpc::ChannelCredentials> credentials = std::move(route.credentials);
  if (credentials == nullptr) credentials = grpc::InsecureChannelCredentials();
  grpc::ChannelArguments args;
  std::string dial = address;
  if (!route.relay_session.empty()) {
    // gRPC dials the proxy and asks it for the channel's target: the
    // relay's session of that key. TLS then runs through it end to end.
    args.SetString(GRPC_ARG_HTTP_PROXY, absl::StrCat("http://", route.relay_session));
    dial = absl::StrCat(route.session_key, ":1");
  } else {
    args.SetInt(GRPC_ARG_ENABLE_HTTP_PROXY, 0);  // an http_proxy of the environment is not ours
  }
  // No message larger than a piece's chunk (or the bitfield) is accepted.
  uint64_t largest = std::max<uint64_t>(std::min(layout.piece_size, kMaxChunkBytes),
                                        layout.PieceCount() / 8 + 1);
  args.SetMaxReceiveMessageSize(static_cast<int>(largest + kMessageOverhead));
  // Each download talks to a peer over a connection of its own.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  // The peer may send a chunk in HTTP/2 frames of up to a chunk, not of the
  // 16 KiB default: 64 times fewer frames per piece for both sides to make
  // and parse (the downloader spends about 5% less CPU per GiB, the seeder
  // too). Frames are parsed as they come; none is held whole.
  args.SetInt(GRPC_ARG_HTTP2_MAX_FRAME_SIZE, static_cast<int>(kMaxChunkBytes));
  // gRPC buffers a whole message before it checks the size limit, and
  // grants flow-control window for whatever length a message declares. A
  // memory quota of its own per link makes the transport give up on a peer
  // that declares more than a few chunks' worth.
  grpc::ResourceQuota quota(absl::StrCat("peer link to ", address));
  quota.Resize(target.memory_quota);
  args.SetResourceQuota(quota);
  return grpc::CreateCustomChannel(dial, credentials, args);
}

}  // namespace

struct GrpcPeerLink::Stubs {
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<pv1::PeerService::Stub> stub;
  std::unique_ptr<grpc::GenericStub> generic;
  int calls = 0;  // started on them and not yet deleted; under the link's mu_
};

std::unique_ptr<GrpcPeerLink::Stubs> GrpcPeerLink::MakeStubs(LinkRoute route) const {
  auto stubs = std::make_unique<Stubs>();
  stubs->channel = MakeChannel(PeerLink::address(), target_, std::move(route));
  stubs->stub = pv1::PeerService::NewStub(stubs->channel);
  stubs->generic = std::make_unique<grpc::GenericStub>(stubs->channel);
  return stubs;
}

// What the link knows of each of its calls. Reference-counted: gRPC holds
// one until OnDone; a canceller holds one while it cancels, since gRPC may
// run OnDone inline inside TryCancel.
//
// The call's context holds a reference to the channel. The link outlives
// every call object (its destructor waits until the last is deleted), so
// the channel's last reference is never dropped on a gRPC callback thread:
// destroying a channel there frees the completion queue that thread runs.
class GrpcPeerLink::Call {
 public:
  explicit Call(GrpcPeerLink* link) : link_(link) { link_->CallCreated(); }
  virtual ~Call() = default;
  void Ref() { refs_.fetch_add(1, std::memory_order_relaxed); }
  void Unref() {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      GrpcPeerLink* link = link_;
      Stubs* started_on = stubs;
      delete this;
      link->CallDeleted(started_on);
    }
  }
  virtual bool Carries(uint32_t) const { return false; }
  virtual bool StalledSince(absl::Time) const { return false; }

  grpc::ClientContext ctx;
  Stubs* stubs = nullptr;  // what it was started on; set by Admit

 protected:
  GrpcPeerLink* const link_;

 private:
  std::atomic<int> refs_{1};
};

class GrpcPeerLink::BitfieldCall final : public Call,
                                     public grpc::ClientReadReactor<pv1::BitfieldUpdate> {
 public:
  BitfieldCall(GrpcPeerLink* link, const std::string& ticket) : Call(link) {
    request_.set_ticket(ticket);
    request_.set_group_id(link->target_.group_id);
    request_.set_file_sha1(link->target_.file_sha1);
  }
  // Set when the link moved the stream to another connection: its end is
  // not the stream's.
  std::atomic<bool> moved{false};

  void Start(Stubs* stubs) {
    stubs->stub->async()->GetBitfield(&ctx, &request_, this);
    StartRead(&update_);
    StartCall();
  }
  void OnReadDone(bool ok) override {
    if (!ok) return;
    link_->owner_->OnBitfield(link_, update_);
    StartRead(&update_);
  }
  void OnDone(const grpc::Status& status) override {
    link_->Ended(this);
    if (!moved.load()) link_->owner_->OnBitfieldEnd(link_, FromGrpcStatus(status));
    Unref();
  }

 private:
  pv1::GetBitfieldRequest request_;
  pv1::BitfieldUpdate update_;
};

class GrpcPeerLink::PieceCall final : public Call,
                                  public grpc::ClientBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
 public:
  PieceCall(GrpcPeerLink* link, std::vector<uint32_t> pieces, const std::string& ticket)
      : Call(link), pieces_(std::move(pieces)), progress_(absl::ToUnixMicros(absl::Now())) {
    pv1::GetPieceRequest req;
    req.set_ticket(ticket);
    req.set_group_id(link->target_.group_id);
    req.set_file_sha1(link->target_.file_sha1);
    for (uint32_t p : pieces_) req.add_pieces(p);
    grpc::Slice slice(req.SerializeAsString());
    request_ = grpc::ByteBuffer(&slice, 1);
  }
  void Start(Stubs* stubs) {
    stubs->generic->PrepareBidiStreamingCall(&ctx, kGetPieceMethod, grpc::StubOptions(), this);
    StartWriteLast(&request_, grpc::WriteOptions());
    StartRead(&response_);
    StartCall();
  }
  bool Carries(uint32_t piece) const override {
    size_t next = next_.load();
    return std::find(pieces_.begin() + static_cast<long>(std::min(next, pieces_.size())),
                     pieces_.end(), piece) != pieces_.end();
  }
  bool StalledSince(absl::Time before) const override {
    return progress_.load() < absl::ToUnixMicros(before);
  }

  void OnReadDone(bool ok) override {
    if (!ok) return;
    progress_.store(absl::ToUnixMicros(absl::Now()));
    absl::Status taken = Take();  // takes response_'s message
    if (!taken.ok()) {
      error_ = taken;
      ctx.TryCancel();
      return;
    }
    StartRead(&response_);
  }
  void OnDone(const grpc::Status& status) override {
    size_t next = std::min(next_.load(), pieces_.size());
    std::vector<uint32_t> undelivered(pieces_.begin() + static_cast<long>(next), pieces_.end());
    absl::Status why = !error_.ok() ? error_ : FromGrpcStatus(status);
    if (why.ok() && !undelivered.empty()) {
      why = absl::DataLossError("the peer ended the call before sending every piece asked for");
    }
    // Out of the link's calls first: once the owner hears of the end, no
    // CancelStalled counts this call again.
    link_->Ended(this);
    link_->owner_->OnCallEnd(link_, std::move(undelivered), why);
    Unref();
  }

 private:
  // Takes one message: its data joins the piece being assembled, which is
  // handed over once whole.
  absl::Status Take() {
    auto received = std::make_shared<Received>();
    received->message.Swap(&response_);
    if (!received->message.Dump(&received->slices).ok()) {
      return absl::DataLossError("unreadable message");
    }
    std::vector<absl::string_view> buffers;
    buffers.reserve(received->slices.size());
    for (const grpc::Slice& s : received->slices) {
      buffers.emplace_back(reinterpret_cast<const char*>(s.begin()), s.size());
    }
    auto chunk = ParsePieceChunk(buffers);
    if (!chunk.ok()) return absl::DataLossError("the peer sent a malformed PieceChunk");
    size_t next = next_.load();
    if (next == pieces_.size()) return absl::DataLossError("the peer sent pieces not asked for");
    const uint32_t piece = pieces_[next];
    const uint32_t length = link_->target_.layout.PieceLength(piece);
    if (chunk->piece != piece || chunk->offset != received_ ||
        received_ + chunk->size > length) {
      return absl::DataLossError(absl::StrCat("piece ", piece, " arrived malformed"));
    }
    current_.index = piece;
    current_.data.insert(current_.data.end(), chunk->data.begin(), chunk->data.end());
    // The views point into these slices; the vector never moves its
    // elements again, so inlined small slices stay where the views point.
    current_.holders.push_back(std::move(received));
    received_ += static_cast<uint32_t>(chunk->size);
    if (received_ == length) {
      received_ = 0;
      next_.store(next + 1);
      link_->owner_->OnPiece(link_, std::move(current_));
      current_ = Piece();
    }
    return absl::OkStatus();
  }

  const std::vector<uint32_t> pieces_;
  grpc::ByteBuffer request_;
  grpc::ByteBuffer response_;
  std::atomic<size_t> next_{0};          // pieces_[next_] is being received
  std::atomic<int64_t> progress_;        // Unix micros of the last message
  uint32_t received_ = 0;                // bytes of pieces_[next_] so far
  Piece current_;
  absl::Status error_;
};

GrpcPeerLink::GrpcPeerLink(Owner* owner, uint32_t id, std::string user_id, std::string address,
                           Target target, LinkRoute route)
    : PeerLink(id, std::move(user_id), std::move(address)),
      owner_(owner),
      target_(std::move(target)) {
  Route(std::move(route));
}

GrpcPeerLink::GrpcPeerLink(Owner* owner, uint32_t id, std::string user_id, std::string address,
                           Target target, std::function<LinkRoute(bool direct_only)> find,
                           WorkQueue* finding)
    : PeerLink(id, std::move(user_id), std::move(address)),
      owner_(owner),
      target_(std::move(target)),
      find_(std::move(find)),
      finding_queue_(finding) {
  {
    absl::MutexLock lock(&mu_);
    finding_ = true;
  }
  finding->Run([this] { Route(find_(/*direct_only=*/false)); });
}

GrpcPeerLink::~GrpcPeerLink() {
  Close();
  absl::MutexLock lock(&mu_);
  while (live_calls_ > 0 || finding_) ended_.Wait(&mu_);
}

void GrpcPeerLink::Route(LinkRoute route) {
  const std::string failure = route.failure;
  const bool relayed = !route.relay_session.empty();
  std::unique_ptr<Stubs> stubs = MakeStubs(std::move(route));
  // The channel connects now, on this thread: gRPC does the setup (and
  // much of TLS's) on the thread that asks first.
  if (failure.empty()) stubs->channel->GetState(/*try_to_connect=*/true);
  std::vector<Waiting> waiting;
  {
    absl::MutexLock lock(&mu_);
    stubs_ = stubs.get();
    all_stubs_.push_back(std::move(stubs));
    relayed_ = relayed;
    next_direct_try_ = absl::Now() + target_.direct_retry;
    failure_ = failure;
    routed_ = true;
    waiting.swap(waiting_);
  }
  // Started in the order they were made; a closed link ends them at once.
  for (Waiting& w : waiting) {
    if (w.bitfield) {
      OpenBitfield(w.ticket);
    } else {
      Request(std::move(w.pieces), w.ticket);
    }
  }
  // Last: the destructor may run from here on.
  absl::MutexLock lock(&mu_);
  finding_ = false;
  ended_.SignalAll();
}

void GrpcPeerLink::Drop(std::vector<Waiting> waiting, const absl::Status& why) {
  for (Waiting& w : waiting) {
    if (w.bitfield) {
      owner_->OnBitfieldEnd(this, why);
    } else {
      owner_->OnCallEnd(this, std::move(w.pieces), why);
    }
  }
}

void GrpcPeerLink::CallCreated() {
  absl::MutexLock lock(&mu_);
  ++live_calls_;
}

void GrpcPeerLink::CallDeleted(Stubs* stubs) {
  absl::MutexLock lock(&mu_);
  if (stubs != nullptr) --stubs->calls;
  --live_calls_;
  ended_.SignalAll();
}

void GrpcPeerLink::DropUnusedStubs() {
  std::vector<std::unique_ptr<Stubs>> unused;
  {
    absl::MutexLock lock(&mu_);
    auto keep = std::stable_partition(
        all_stubs_.begin(), all_stubs_.end(),
        [this](const std::unique_ptr<Stubs>& s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
          return s.get() == stubs_ || s->calls > 0;
        });
    unused.assign(std::make_move_iterator(keep), std::make_move_iterator(all_stubs_.end()));
    all_stubs_.erase(keep, all_stubs_.end());
  }
  // Out of the lock, and on the caller's thread, never a gRPC one: the
  // channel's last reference goes here, which closes its connection.
}

bool GrpcPeerLink::Admit(Call* call, Stubs** stubs) {
  absl::MutexLock lock(&mu_);
  if (closed_) return false;
  calls_.insert(call);
  call->Ref();  // the starter's, until Start returns
  *stubs = call->stubs = stubs_;
  ++stubs_->calls;
  return true;
}

void GrpcPeerLink::MaybeTryDirect() {
  {
    absl::MutexLock lock(&mu_);
    if (!relayed_ || finding_queue_ == nullptr || finding_ || closed_ ||
        absl::Now() < next_direct_try_) {
      return;
    }
    finding_ = true;
    next_direct_try_ = absl::Now() + target_.direct_retry;
  }
  finding_queue_->Run([this] {
    LinkRoute route = find_(/*direct_only=*/true);
    if (route.failure.empty() && route.relay_session.empty()) MoveTo(std::move(route));
    // Last: the destructor may run from here on.
    absl::MutexLock lock(&mu_);
    finding_ = false;
    ended_.SignalAll();
  });
}

void GrpcPeerLink::MoveTo(LinkRoute direct) {
  std::unique_ptr<Stubs> stubs = MakeStubs(std::move(direct));
  BitfieldCall* relayed_bitfield = nullptr;
  std::string ticket;
  {
    absl::MutexLock lock(&mu_);
    stubs_ = stubs.get();
    all_stubs_.push_back(std::move(stubs));
    relayed_ = false;
    if (closed_) return;
    relayed_bitfield = bitfield_;
    ticket = bitfield_ticket_;
    if (relayed_bitfield != nullptr) {
      relayed_bitfield->moved = true;
      relayed_bitfield->Ref();
    }
  }
  GS_LOG(kInfo) << "reaching " << user_id() << " at " << PeerLink::address()
                << " directly now, no longer through its relay";
  if (relayed_bitfield == nullptr) return;
  OpenBitfield(ticket);
  relayed_bitfield->ctx.TryCancel();
  relayed_bitfield->Unref();
}

void GrpcPeerLink::OpenBitfield(const std::string& ticket) {
  std::string failure;
  {
    absl::MutexLock lock(&mu_);
    if (!routed_ && !closed_) {
      waiting_.push_back({true, {}, ticket});
      return;
    }
    failure = failure_;
  }
  if (!failure.empty()) {
    owner_->OnBitfieldEnd(this, absl::UnavailableError(failure));
    return;
  }
  auto* call = new BitfieldCall(this, ticket);
  Stubs* stubs = nullptr;
  if (Admit(call, &stubs)) {
    {
      absl::MutexLock lock(&mu_);
      bitfield_ = call;
      bitfield_ticket_ = ticket;
    }
    call->Start(stubs);
  }
  call->Unref();  // outside mu_: deleting the call takes it
}

void GrpcPeerLink::Request(std::vector<uint32_t> pieces, const std::string& ticket) {
  std::string failure;
  {
    absl::MutexLock lock(&mu_);
    if (!routed_ && !closed_) {
      waiting_.push_back({false, std::move(pieces), ticket});
      return;
    }
    failure = failure_;
  }
  if (!failure.empty()) {
    owner_->OnCallEnd(this, std::move(pieces), absl::UnavailableError(failure));
    return;
  }
  auto* call = new PieceCall(this, pieces, ticket);
  Stubs* stubs = nullptr;
  if (!Admit(call, &stubs)) {
    call->Unref();  // outside mu_: deleting the call takes it
    owner_->OnCallEnd(this, std::move(pieces), absl::CancelledError("the link is closed"));
    return;
  }
  // Started outside the lock: gRPC may run reactions inline.
  call->Start(stubs);
  call->Unref();
  MaybeTryDirect();
  DropUnusedStubs();
}

void GrpcPeerLink::Ended(Call* call) {
  absl::MutexLock lock(&mu_);
  calls_.erase(call);
  if (bitfield_ == call) bitfield_ = nullptr;
  ended_.SignalAll();
}

template <class Match>
int GrpcPeerLink::CancelIf(Match match) {
  std::vector<Call*> picked;
  {
    absl::MutexLock lock(&mu_);
    for (Call* c : calls_) {
      if (match(c)) {
        c->Ref();
        picked.push_back(c);
      }
    }
  }
  for (Call* c : picked) {
    c->ctx.TryCancel();
    c->Unref();
  }
  return static_cast<int>(picked.size());
}

void GrpcPeerLink::CancelPiece(uint32_t piece) {
  std::vector<Waiting> dropped;
  {
    absl::MutexLock lock(&mu_);
    auto carries = [piece](const Waiting& w) {
      return std::find(w.pieces.begin(), w.pieces.end(), piece) != w.pieces.end();
    };
    auto first = std::stable_partition(waiting_.begin(), waiting_.end(),
                                       [&](const Waiting& w) { return !carries(w); });
    dropped.assign(std::make_move_iterator(first), std::make_move_iterator(waiting_.end()));
    waiting_.erase(first, waiting_.end());
  }
  Drop(std::move(dropped), absl::CancelledError("cancelled"));
  CancelIf([piece](Call* c) { return c->Carries(piece); });
}

int GrpcPeerLink::CancelStalled(absl::Time before) {
  return CancelIf([before](Call* c) { return c->StalledSince(before); });
}

bool GrpcPeerLink::Waits(uint32_t piece, absl::Time since) {
  absl::MutexLock lock(&mu_);
  for (const Waiting& w : waiting_) {
    if (std::find(w.pieces.begin(), w.pieces.end(), piece) != w.pieces.end()) return true;
  }
  for (Call* c : calls_) {
    if (c->Carries(piece)) return c->StalledSince(since);
  }
  return false;
}

void GrpcPeerLink::Close() {
  std::vector<Waiting> dropped;
  {
    absl::MutexLock lock(&mu_);
    closed_ = true;
    dropped.swap(waiting_);
  }
  Drop(std::move(dropped), absl::CancelledError("the link is closed"));
  CancelIf([](Call*) { return true; });
}

}  // namespace groupshare::peer
