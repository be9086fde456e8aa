// A file's description as a tracker announces it (tracker.v1.FileInfo), for
// bytes a test holds.
#ifndef GROUPSHARE_TESTS_TESTING_FILE_DESCRIPTION_H_
#define GROUPSHARE_TESTS_TESTING_FILE_DESCRIPTION_H_

#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"
#include "core/bitfield.h"
#include "core/crypto.h"
#include "core/sha1_stream.h"
#include "groupshare/tracker/v1/tracker.pb.h"

namespace groupshare::testing {

// `content` shared as `name` in pieces of `piece_size`: its SHA1, each
// piece's, and its SHA1 chain as clients share it, or none (`unchained`),
// as older clients did.
inline tracker::v1::FileInfo DescribeFile(const std::string& name, absl::string_view content,
                                          uint32_t piece_size, bool unchained = false) {
  tracker::v1::FileInfo f;
  f.set_name(name);
  f.set_size(content.size());
  f.set_piece_size(piece_size);
  f.set_sha1(HexEncode(Sha1Of(content)));
  const FileLayout layout{content.size(), piece_size};
  Sha1Stream whole;
  for (uint32_t i = 0; i < layout.PieceCount(); ++i) {
    const absl::string_view piece = content.substr(layout.PieceOffset(i), layout.PieceLength(i));
    f.add_piece_sha1(HexEncode(Sha1Of(piece)));
    whole.Update(piece);
    if (!unchained && i + 1 < layout.PieceCount()) f.add_sha1_chain(HexEncode(whole.Chain()));
  }
  return f;
}

}  // namespace groupshare::testing

#endif  // GROUPSHARE_TESTS_TESTING_FILE_DESCRIPTION_H_
