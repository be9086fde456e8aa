#include "services/common/file_info.h"

#include "absl/strings/str_cat.h"
#include "core/bitfield.h"
#include "core/crypto.h"
#include "core/ids.h"
#include "core/status_macros.h"

namespace groupshare {

absl::Status ValidateFileInfo(const tracker::v1::FileInfo& f) {
  RETURN_IF_ERROR(ValidateFileName(f.name()));
  uint32_t ps = f.piece_size();
  if (ps < kMinPieceSize || ps > kMaxPieceSize || (ps & (ps - 1)) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("piece_size ", ps, " must be a power of two from 16 KiB to 16 MiB"));
  }
  if (!IsSha1Hex(f.sha1())) {
    return absl::InvalidArgumentError("sha1 must be 40 lower-case hex digits");
  }
  // Without overflow, for sizes near 2^64 too.
  const uint64_t pieces = f.size() / ps + (f.size() % ps != 0);
  if (pieces > kMaxPieceCount) {
    return absl::InvalidArgumentError(
        absl::StrCat("a file of ", f.size(), " bytes in pieces of ", ps, " bytes has ", pieces,
                     " pieces; a shared file has at most ", kMaxPieceCount,
                     " (larger pieces for larger files)"));
  }
  if (static_cast<uint64_t>(f.piece_sha1_size()) != pieces) {
    return absl::InvalidArgumentError(
        absl::StrCat("a file of ", f.size(), " bytes in pieces of ", ps, " bytes has ", pieces,
                     " pieces, but ", f.piece_sha1_size(), " piece hashes were given"));
  }
  for (int i = 0; i < f.piece_sha1_size(); ++i) {
    if (!IsSha1Hex(f.piece_sha1(i))) {
      return absl::InvalidArgumentError(
          absl::StrCat("piece_sha1[", i, "] must be 40 lower-case hex digits"));
    }
  }
  if (f.sha1_chain_size() != 0 && static_cast<uint64_t>(f.sha1_chain_size()) + 1 != pieces) {
    return absl::InvalidArgumentError(
        absl::StrCat("a file of ", pieces, " pieces has ", pieces == 0 ? 0 : pieces - 1,
                     " sha1_chain entries (one after each piece but the last) or none, but ",
                     f.sha1_chain_size(), " were given"));
  }
  for (int i = 0; i < f.sha1_chain_size(); ++i) {
    if (!IsSha1Hex(f.sha1_chain(i))) {
      return absl::InvalidArgumentError(
          absl::StrCat("sha1_chain[", i, "] must be 40 lower-case hex digits"));
    }
  }
  return absl::OkStatus();
}

}  // namespace groupshare
