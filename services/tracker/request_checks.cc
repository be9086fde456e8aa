#include "services/tracker/request_checks.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/crypto.h"
#include "core/ids.h"
#include "core/status_macros.h"

namespace groupshare::tracker {
namespace {

namespace tv1 = ::groupshare::tracker::v1;

} // namespace

absl::StatusOr<absl::string_view> ParseBearer(absl::string_view value) {
  const absl::string_view kUse =
      "; send 'authorization: Bearer <the token Login returned>'";
  value = absl::StripTrailingAsciiWhitespace(value);
  const size_t space = value.find(' ');
  const absl::string_view scheme = value.substr(0, space);
  if (!absl::EqualsIgnoreCase(scheme, "Bearer")) {
    return absl::UnauthenticatedError(
        absl::StrCat("the authorization header's scheme is '",
                     absl::CHexEscape(scheme), "', not Bearer", kUse));
  }
  absl::string_view token =
      space == absl::string_view::npos
          ? ""
          : absl::StripLeadingAsciiWhitespace(value.substr(space));
  if (token.empty()) {
    return absl::UnauthenticatedError(absl::StrCat(
        "the authorization header has no token after Bearer", kUse));
  }
  // RFC 6750's b64token: these characters, then any number of '='.
  const size_t end = token.find_first_not_of(
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/");
  if (end == 0 ||
      (end != absl::string_view::npos &&
       token.find_first_not_of('=', end) != absl::string_view::npos)) {
    return absl::UnauthenticatedError(absl::StrCat(
        "the token in the authorization header has characters no token has",
        kUse));
  }
  return token;
}

absl::Status ValidateFileInfo(const tv1::FileInfo &f) {
  RETURN_IF_ERROR(ValidateFileName(f.name()));
  uint32_t ps = f.piece_size();
  if (ps < kMinPieceSize || ps > kMaxPieceSize || (ps & (ps - 1)) != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "piece_size ", ps, " must be a power of two from 16 KiB to 16 MiB"));
  }
  if (!IsSha1Hex(f.sha1())) {
    return absl::InvalidArgumentError("sha1 must be 40 lower-case hex digits");
  }
  // Without overflow, for sizes near 2^64 too.
  const uint64_t pieces = f.size() / ps + (f.size() % ps != 0);
  if (pieces > kMaxPieceCount) {
    return absl::InvalidArgumentError(absl::StrCat(
        "a file of ", f.size(), " bytes in pieces of ", ps, " bytes has ", pieces,
        " pieces; a shared file has at most ", kMaxPieceCount, " (larger pieces for larger files)"));
  }
  if (static_cast<uint64_t>(f.piece_sha1_size()) != pieces) {
    return absl::InvalidArgumentError(
        absl::StrCat("a file of ", f.size(), " bytes in pieces of ", ps,
                     " bytes has ", pieces, " pieces, but ",
                     f.piece_sha1_size(), " piece hashes were given"));
  }
  for (int i = 0; i < f.piece_sha1_size(); ++i) {
    if (!IsSha1Hex(f.piece_sha1(i))) {
      return absl::InvalidArgumentError(
          absl::StrCat("piece_sha1[", i, "] must be 40 lower-case hex digits"));
    }
  }
  if (f.sha1_chain_size() != 0 && static_cast<uint64_t>(f.sha1_chain_size()) + 1 != pieces) {
    return absl::InvalidArgumentError(absl::StrCat(
        "a file of ", pieces, " pieces has ", pieces == 0 ? 0 : pieces - 1,
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

bool IsRequestId(absl::string_view id) {
  if (id.empty() || id.size() > 64)
    return false;
  for (char c : id) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '.' &&
        c != '_' && c != '-') {
      return false;
    }
  }
  return true;
}

std::string PageToken(const std::string &last) {
  return absl::WebSafeBase64Escape(last);
}

absl::StatusOr<PageRequest> ReadPage(uint32_t size, const std::string &token,
                                     int64_t default_size, int64_t max_size) {
  PageRequest page;
  page.size = size == 0 ? default_size : std::min<int64_t>(size, max_size);
  if (!token.empty() && !absl::WebSafeBase64Unescape(token, &page.after)) {
    return absl::InvalidArgumentError("page_token is not one this tracker "
                                      "gave; pass next_page_token as it came");
  }
  return page;
}

} // namespace groupshare::tracker
