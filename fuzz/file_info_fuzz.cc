// A file's description comes from any member who shares it, and reaches
// downloaders from a tracker; both must refuse a malformed one with a
// message and keep the piece arithmetic right for every size.
#include <cstdint>
#include <cstdlib>

#include "services/common/file_info.h"

namespace tv1 = ::groupshare::tracker::v1;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  tv1::FileInfo file;
  if (!file.ParseFromArray(data, static_cast<int>(size))) return 0;
  if (!groupshare::ValidateFileInfo(file).ok()) return 0;
  // Accepted: one hash for each piece of the size given.
  const unsigned __int128 covered =
      static_cast<unsigned __int128>(file.piece_sha1_size()) * file.piece_size();
  if (covered < file.size() || covered - file.size() >= file.piece_size()) std::abort();
  return 0;
}
