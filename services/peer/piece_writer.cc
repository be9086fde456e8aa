#include "services/peer/piece_writer.h"

namespace groupshare::peer {

absl::Status PieceWriter::Write(uint32_t index, absl::Span<const absl::string_view> data) {
  if (index >= expected_.size()) return absl::DataLossError("no such piece");
  Sha1 sha1;
  for (absl::string_view part : data) sha1.Update(part);
  if (sha1.Finish() != expected_[index]) return absl::DataLossError("its SHA1 check failed");
  absl::Status written = file_->Write(layout_.PieceOffset(index), data);
  if (written.ok()) hasher_.Add(index, data);
  return written;
}

bool PieceWriter::Kept(uint32_t index) {
  if (index >= expected_.size()) return false;
  std::string data(layout_.PieceLength(index), '\0');
  if (!file_->Read(layout_.PieceOffset(index), data.data(), data.size()).ok() ||
      Sha1Of(data) != expected_[index]) {
    return false;
  }
  hasher_.Add(index, {});  // read back when its turn comes
  return true;
}

}  // namespace groupshare::peer
