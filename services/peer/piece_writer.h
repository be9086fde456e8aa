// A download's pieces on their way to its part file: each is checked
// against its SHA1, written in place, and added to the whole file's SHA1,
// which is computed as the pieces come. Pieces verified on disk already (a
// resumed download) are checked again and added likewise.
//
// Thread-safe: the download's workers write pieces at once.
#ifndef GROUPSHARE_SERVICES_PEER_PIECE_WRITER_H_
#define GROUPSHARE_SERVICES_PEER_PIECE_WRITER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "core/bitfield.h"
#include "core/crypto.h"
#include "core/part_file.h"
#include "core/whole_file_hasher.h"

namespace groupshare::peer {

class PieceWriter {
 public:
  // `expected` holds each piece's SHA1; `file` must outlive the writer.
  PieceWriter(FileLayout layout, std::vector<Sha1Digest> expected, PartFile* file)
      : layout_(layout), expected_(std::move(expected)), file_(file), hasher_(layout, file) {}

  // Writes piece `index` (its bytes in parts): DATA_LOSS, writing nothing,
  // when its SHA1 fails; the write's error when that fails. A second copy
  // of a piece is written again (the same bytes) and hashed once. A piece
  // next in file order joins the whole file's SHA1 as it is checked, before
  // the write: a copy that comes after a failed write is then not hashed
  // again (its bytes are the same).
  absl::Status Write(uint32_t index, absl::Span<const absl::string_view> data);
  // Whether piece `index` is on disk already, whole and right; if so it
  // joins the whole file's SHA1.
  bool Kept(uint32_t index);
  // The whole file's SHA1 (lower-case hex) once every piece is in.
  absl::StatusOr<std::string> WholeFileSha1() { return hasher_.Finish(); }
  // Pieces the whole file's SHA1 read back from the part file so far.
  uint32_t pieces_read_back() const { return hasher_.read_back(); }

 private:
  // Whether `data` is piece `index`. A piece next in file order is checked
  // in the whole file's pass and joins it (`*joined`); another is checked
  // alone, and the caller adds it to the whole file's SHA1.
  bool Check(uint32_t index, absl::Span<const absl::string_view> data, bool* joined);

  const FileLayout layout_;
  const std::vector<Sha1Digest> expected_;
  PartFile* const file_;
  WholeFileHasher hasher_;
};

}  // namespace groupshare::peer

#endif  // GROUPSHARE_SERVICES_PEER_PIECE_WRITER_H_
