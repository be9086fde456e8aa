#include "core/ids.h"

#include "absl/strings/str_cat.h"

namespace groupshare {
namespace {

bool IsControl(unsigned char c) { return c < 0x20 || c == 0x7f; }

}  // namespace

absl::Status ValidateId(absl::string_view what, absl::string_view id) {
  if (id.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(what, " is empty"));
  }
  if (id.size() > kMaxIdBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, " is ", id.size(), " bytes long; the limit is ", kMaxIdBytes));
  }
  for (unsigned char c : id) {
    if (c == ' ' || IsControl(c)) {
      return absl::InvalidArgumentError(absl::StrCat(
          what, " must not contain spaces or control characters"));
    }
  }
  return absl::OkStatus();
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
  for (unsigned char c : name) {
    if (c == '/' || c == '\\' || IsControl(c)) {
      return absl::InvalidArgumentError(
          "file name must not contain '/', '\\' or control characters");
    }
  }
  return absl::OkStatus();
}

}  // namespace groupshare
