// A file's description, as a sharer registers it at a tracker and as a
// tracker gives it to a downloader: both sides hold it to the same rules.
#ifndef GROUPSHARE_SERVICES_COMMON_FILE_INFO_H_
#define GROUPSHARE_SERVICES_COMMON_FILE_INFO_H_

#include "absl/status/status.h"
#include "groupshare/tracker/v1/tracker.pb.h"

namespace groupshare {

// A name that is a file name and no path, a power-of-two piece size from
// 16 KiB to 16 MiB, at most kMaxPieceCount pieces, and well-formed SHA1s:
// the file's, one a piece, and a SHA1 chain of one fewer, or none.
// INVALID_ARGUMENT naming what is wrong.
absl::Status ValidateFileInfo(const tracker::v1::FileInfo& f);

}  // namespace groupshare

#endif  // GROUPSHARE_SERVICES_COMMON_FILE_INFO_H_
