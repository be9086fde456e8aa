#include "services/peer/peer_service.h"

#include <algorithm>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "core/log.h"
#include "core/status_macros.h"
#include "services/common/grpc_status.h"

namespace groupshare::peer {
namespace {

// Pieces go out in chunks of at most this much, well under gRPC's default
// 4 MiB message limit.
constexpr uint32_t kChunkBytes = 1 << 20;

}  // namespace

void PeerServiceImpl::SetTicketVerifier(std::shared_ptr<const TicketVerifier> verifier) {
  absl::MutexLock lock(&mu_);
  verifier_ = std::move(verifier);
  verified_.clear();
}

void PeerServiceImpl::SetMaxUploadRate(uint64_t bytes_per_second) {
  absl::MutexLock lock(&mu_);
  max_rate_ = bytes_per_second;
}

void PeerServiceImpl::Throttle(uint64_t bytes) {
  absl::Time send_at;
  {
    absl::MutexLock lock(&mu_);
    if (max_rate_ == 0) return;
    // Each send books its share of the cap after the ones before it.
    send_at = std::max(next_free_, absl::Now());
    next_free_ = send_at + absl::Seconds(static_cast<double>(bytes) / max_rate_);
  }
  absl::SleepFor(send_at - absl::Now());
}

void PeerServiceImpl::Shutdown() {
  absl::MutexLock lock(&mu_);
  shutdown_ = true;
}

bool PeerServiceImpl::shutting_down() const {
  absl::MutexLock lock(&mu_);
  return shutdown_;
}

absl::StatusOr<ShareKey> PeerServiceImpl::Authorize(const std::string& ticket,
                                                    const std::string& group_id,
                                                    const std::string& file_sha1) {
  constexpr size_t kMaxCachedTickets = 1024;
  std::shared_ptr<const TicketVerifier> verifier;
  std::optional<Ticket> cached;
  {
    absl::MutexLock lock(&mu_);
    verifier = verifier_;
    if (auto it = verified_.find(ticket); it != verified_.end()) cached = it->second;
  }
  if (verifier == nullptr) {
    return absl::UnavailableError("this peer is logged out and shares nothing now");
  }
  Ticket t;
  if (cached.has_value() && absl::Now() < cached->expires) {
    t = *std::move(cached);
  } else {
    ASSIGN_OR_RETURN(t, verifier->Verify(ticket, absl::Now()));
    absl::MutexLock lock(&mu_);
    if (verifier_ == verifier) {
      if (verified_.size() >= kMaxCachedTickets) verified_.clear();
      verified_[ticket] = t;
    }
  }
  if (t.group_id != group_id || t.file_sha1 != file_sha1) {
    return absl::PermissionDeniedError(
        "download ticket refused: it is for another group or file");
  }
  return ShareKey{group_id, file_sha1};
}

grpc::Status PeerServiceImpl::GetBitfield(grpc::ServerContext* ctx,
                                          const pv1::GetBitfieldRequest* req,
                                          grpc::ServerWriter<pv1::BitfieldUpdate>* writer) {
  auto key = Authorize(req->ticket(), req->group_id(), req->file_sha1());
  if (!key.ok()) {
    GS_LOG(kDebug) << "GetBitfield refused: " << key.status();
    return ToGrpcStatus(key.status());
  }
  auto snapshot = store_->Get(*key);
  if (!snapshot.ok()) return ToGrpcStatus(snapshot.status());
  const uint32_t count = snapshot->layout.PieceCount();
  pv1::BitfieldUpdate full;
  full.set_bitfield(snapshot->have.ToBytes());
  full.set_piece_count(count);
  if (!writer->Write(full)) return grpc::Status::CANCELLED;
  size_t cursor = snapshot->cursor;
  while (!ctx->IsCancelled() && !shutting_down()) {
    auto added = store_->WaitForNew(*key, &cursor, absl::Milliseconds(500));
    if (!added.ok()) return grpc::Status::OK;  // stopped sharing: the stream ends
    for (uint32_t piece : *added) {
      pv1::BitfieldUpdate have;
      have.set_have(piece);
      have.set_piece_count(count);
      if (!writer->Write(have)) return grpc::Status::CANCELLED;
    }
  }
  return grpc::Status::OK;
}

grpc::Status PeerServiceImpl::GetPiece(grpc::ServerContext* ctx, const pv1::GetPieceRequest* req,
                                       grpc::ServerWriter<pv1::PieceChunk>* writer) {
  auto key = Authorize(req->ticket(), req->group_id(), req->file_sha1());
  if (!key.ok()) {
    GS_LOG(kDebug) << "GetPiece refused: " << key.status();
    return ToGrpcStatus(key.status());
  }
  // Pieces are read into a buffer this server thread keeps between calls,
  // so reading one costs no allocation and no clearing; it is lent to the
  // message while that is written.
  static thread_local std::string buffer;
  pv1::PieceChunk chunk;
  for (uint32_t piece : req->pieces()) {
    if (ctx->IsCancelled()) return grpc::Status::CANCELLED;
    if (absl::Status s = store_->ReadPiece(*key, piece, &buffer); !s.ok()) {
      return ToGrpcStatus(s);
    }
    chunk.set_piece(piece);
    for (uint32_t offset = 0; offset < buffer.size(); offset += kChunkBytes) {
      chunk.set_offset(offset);
      bool whole = offset == 0 && buffer.size() <= kChunkBytes;
      if (whole) {
        chunk.mutable_data()->swap(buffer);
      } else {
        chunk.set_data(buffer.substr(offset, kChunkBytes));
      }
      Throttle(chunk.data().size());
      bool sent = writer->Write(chunk);
      if (whole) chunk.mutable_data()->swap(buffer);
      if (!sent) return grpc::Status::CANCELLED;
    }
  }
  return grpc::Status::OK;
}

}  // namespace groupshare::peer
