// A ListFilesResponse written in protobuf's wire form straight from the
// store's listing: no message is built, and no string is copied but into
// the output (as a message on an arena, each file's name and SHA1 were
// allocations of their own, a fifth of the call).
#ifndef GROUPSHARE_SERVICES_TRACKER_LIST_FILES_WIRE_H_
#define GROUPSHARE_SERVICES_TRACKER_LIST_FILES_WIRE_H_

#include <string>

#include "absl/strings/string_view.h"
#include "services/tracker/store.h"

namespace groupshare::tracker {

// Byte for byte what protobuf serializes of a groupshare.tracker.v1.
// ListFilesResponse of `files` (FileSummary: 1 name, 2 size, 3 sha1,
// 4 online_seeders, 5 online_partial) and `next_page_token` (field 2).
std::string ListFilesResponseWire(const FileListing& files, absl::string_view next_page_token);

}  // namespace groupshare::tracker

#endif  // GROUPSHARE_SERVICES_TRACKER_LIST_FILES_WIRE_H_
