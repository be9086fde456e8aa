// Validation of the names that come from users and the network: user and
// group ids, passwords and file names. Everything the tracker stores or a
// client turns into a path passes through here first.
#ifndef GROUPSHARE_CORE_IDS_H_
#define GROUPSHARE_CORE_IDS_H_

#include <cstddef>
#include "absl/strings/string_view.h"

#include "absl/status/status.h"

namespace groupshare {

inline constexpr size_t kMaxIdBytes = 64;
inline constexpr size_t kMaxPasswordBytes = 1024;
inline constexpr size_t kMaxFileNameBytes = 255;

// OK when `id` is 1 to kMaxIdBytes bytes of UTF-8 in Unicode's NFC, with
// no whitespace of any script, no control, invisible (default-ignorable),
// private-use, unassigned or bidirectional code point; INVALID_ARGUMENT
// otherwise, with `what` ("user id", "group id") naming it in the message.
absl::Status ValidateId(absl::string_view what, absl::string_view id);

// The id as it looks: Unicode's UTS #39 skeleton of its NFKC form. Two ids
// with the same skeleton are confusable ("alice", Cyrillic "аlice",
// full-width "ａlice", "aIice").
// `id` must have passed ValidateId.
std::string IdSkeleton(absl::string_view id);

// OK for 1 to kMaxPasswordBytes bytes with no control bytes.
absl::Status ValidatePassword(absl::string_view password);

// OK for a plain file name that is safe to join to a folder: 1 to
// kMaxFileNameBytes bytes, no '/', '\\' or control bytes, not "." or "..".
absl::Status ValidateFileName(absl::string_view name);

}  // namespace groupshare

#endif  // GROUPSHARE_CORE_IDS_H_
