#include "core/ids.h"

#include "absl/strings/str_cat.h"
#include "core/text.h"

namespace groupshare {
namespace {

bool IsControl(unsigned char c) { return c < 0x20 || c == 0x7f; }

// OK when `text` is UTF-8 with nothing unsafe to show (core/text.h) and
// none of `forbidden`; else INVALID_ARGUMENT naming `what` and `rule`.
absl::Status CheckShown(absl::string_view what, absl::string_view text,
                        absl::string_view forbidden, absl::string_view rule) {
  for (size_t at = 0; at < text.size();) {
    std::optional<char32_t> c = NextCodePoint(text, &at);
    if (!c.has_value()) return absl::InvalidArgumentError(absl::StrCat(what, " is not UTF-8"));
    if (IsUnsafeToShow(*c) || (*c < 0x80 && forbidden.find(static_cast<char>(*c)) !=
                                                   absl::string_view::npos)) {
      return absl::InvalidArgumentError(absl::StrCat(what, " must not contain ", rule));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateId(absl::string_view what, absl::string_view id) {
  if (id.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(what, " is empty"));
  }
  if (id.size() > kMaxIdBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, " is ", id.size(), " bytes long; the limit is ", kMaxIdBytes));
  }
  return CheckShown(what, id, " ",
                    "spaces, control characters, or invisible or bidirectional marks");
}

absl::Status ValidatePassword(absl::string_view password) {
  if (password.empty()) return absl::InvalidArgumentError("password is empty");
  if (password.size() > kMaxPasswordBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("password is longer than ", kMaxPasswordBytes, " bytes"));
  }
  for (unsigned char c : password) {
    if (IsControl(c)) {
      return absl::InvalidArgumentError(
          "password must not contain control characters");
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateFileName(absl::string_view name) {
  if (name.empty()) return absl::InvalidArgumentError("file name is empty");
  if (name.size() > kMaxFileNameBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "file name is longer than ", kMaxFileNameBytes, " bytes"));
  }
  if (name == "." || name == "..") {
    return absl::InvalidArgumentError(
        absl::StrCat("'", name, "' is not a file name"));
  }
  return CheckShown("file name", name, "/\\",
                    "'/', '\\', control characters, or invisible or bidirectional marks");
}

}  // namespace groupshare
