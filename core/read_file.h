// A whole (small) file as a string: certificates, keys, tracker_info.txt.
#ifndef GROUPSHARE_CORE_READ_FILE_H_
#define GROUPSHARE_CORE_READ_FILE_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace groupshare {

// NOT_FOUND, saying "cannot read <what> '<path>': <why>", when the file
// cannot be read.
absl::StatusOr<std::string> ReadFileText(const std::string& path, absl::string_view what);

}  // namespace groupshare

#endif  // GROUPSHARE_CORE_READ_FILE_H_
