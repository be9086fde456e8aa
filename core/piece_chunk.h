// Reads a groupshare.peer.v1.PieceChunk from its wire form without copying
// its data: the message arrives as a list of buffers (gRPC's slices), and
// the data field comes back as views into them, to be hashed and written
// from where the network put it.
#ifndef GROUPSHARE_CORE_PIECE_CHUNK_H_
#define GROUPSHARE_CORE_PIECE_CHUNK_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace groupshare {

// A piece travels in messages whose data is at most this long (a 512 KiB
// piece is one message). Senders split at it; receivers refuse more.
constexpr uint32_t kMaxChunkBytes = 1 << 20;

struct PieceChunkView {
  uint32_t piece = 0;
  uint32_t offset = 0;
  std::vector<absl::string_view> data;  // views into the parsed buffers
  uint64_t size = 0;                    // of data, in all
};

// Parses the protobuf wire form spread over `buffers` (fields: 1 piece
// varint, 2 offset varint, 3 data bytes; unknown fields are skipped).
// INVALID_ARGUMENT for a malformed message.
absl::StatusOr<PieceChunkView> ParsePieceChunk(absl::Span<const absl::string_view> buffers);

}  // namespace groupshare

#endif  // GROUPSHARE_CORE_PIECE_CHUNK_H_
