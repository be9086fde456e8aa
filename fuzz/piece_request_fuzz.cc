// What a peer receives and sends: a GetPieceRequest from any member, and
// the PieceChunk messages a downloader parses without copying. The first
// byte picks which; for chunks, the next three cut the message into the
// buffers it arrives in, and where both the zero-copy parse and protobuf's
// own accept a message they must agree on it. (The zero-copy parse may
// accept a little more than protobuf, such as a tag in a longer varint
// than needed; whatever it accepts is checked again as a piece.)
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "core/piece_chunk.h"
#include "services/peer/peer_service.h"

namespace pv1 = ::groupshare::peer::v1;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 4) return 0;
  const absl::string_view rest(reinterpret_cast<const char*>(data) + 4, size - 4);
  if (data[0] & 1) {
    pv1::GetPieceRequest req;
    if (!req.ParseFromArray(rest.data(), static_cast<int>(rest.size()))) return 0;
    auto sorted = groupshare::peer::CheckPieceRequest(req, 64);
    if (sorted.ok() && (sorted->empty() || sorted->size() > 64)) std::abort();
    return 0;
  }
  std::vector<absl::string_view> buffers;
  size_t at = 0;
  for (int i = 1; i < 4; ++i) {
    size_t cut = std::min(rest.size(), at + data[i]);
    buffers.push_back(rest.substr(at, cut - at));
    at = cut;
  }
  buffers.push_back(rest.substr(at));
  auto view = groupshare::ParsePieceChunk(buffers);
  pv1::PieceChunk chunk;
  const bool parsed = chunk.ParseFromArray(rest.data(), static_cast<int>(rest.size()));
  if (!view.ok() || !parsed) return 0;
  if (chunk.piece() != view->piece || chunk.offset() != view->offset ||
      chunk.data().size() != view->size) {
    std::abort();
  }
  std::string joined;
  for (absl::string_view part : view->data) joined.append(part.data(), part.size());
  if (joined != chunk.data()) std::abort();
  return 0;
}
