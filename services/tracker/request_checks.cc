#include "services/tracker/request_checks.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace groupshare::tracker {
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
