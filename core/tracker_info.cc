#include "core/tracker_info.h"


#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "core/read_file.h"

namespace groupshare {

std::string HostPort::ToString() const { return absl::StrCat(host, ":", port); }

absl::StatusOr<HostPort> ParseHostPort(absl::string_view text,
                                       bool allow_port_zero) {
  auto bad = [&](absl::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", text, "' is not a host:port address (", why, ")"));
  };
  size_t colon = text.rfind(':');
  if (colon == absl::string_view::npos) return bad("no ':port'");
  absl::string_view host = text.substr(0, colon);
  absl::string_view port_text = text.substr(colon + 1);
  if (host.empty()) return bad("no host");
  if (host.size() > kMaxHostBytes) {  // said without the text, which may be huge
    return absl::InvalidArgumentError(absl::StrCat("a host:port address has a host of at most ",
                                                   kMaxHostBytes, " characters, not ",
                                                   host.size()));
  }
  if (host.front() == '[') {
    if (host.back() != ']' || host.size() < 3) return bad("unclosed '['");
  } else if (host.find(':') != absl::string_view::npos) {
    return bad("an IPv6 address needs brackets, as in [::1]:5000");
  }
  for (unsigned char c : host) {
    if (!absl::ascii_isalnum(c) && c != '.' && c != '-' && c != '_' &&
        c != '[' && c != ']' && c != ':') {
      return bad("bad character in host");
    }
  }
  int port = 0;
  if (port_text.empty() || !absl::SimpleAtoi(port_text, &port) ||
      port_text.find_first_not_of("0123456789") != absl::string_view::npos ||
      port < 0 || port > 65535) {
    return bad("port must be a number from 1 to 65535");
  }
  if (port == 0 && !allow_port_zero) {
    return bad("port must be a number from 1 to 65535");
  }
  return HostPort{std::string(host), port};
}

absl::StatusOr<std::vector<TrackerAddress>> ParseTrackerInfo(absl::string_view text,
                                                             absl::string_view kind) {
  std::vector<TrackerAddress> out;
  int line_no = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_no;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line.front() == '#') continue;
    auto bad = [&](absl::string_view why) {
      return absl::InvalidArgumentError(absl::StrCat(kind, "_info line ", line_no, ": ", why));
    };
    std::vector<absl::string_view> fields =
        absl::StrSplit(line, absl::ByAnyChar(" \t"), absl::SkipEmpty());
    if (fields.size() > 2) return bad("write 'host:port' or 'host:port sha256=<fingerprint>'");
    auto address = ParseHostPort(fields[0], /*allow_port_zero=*/true);
    if (!address.ok()) return bad(address.status().message());
    TrackerAddress entry;
    static_cast<HostPort&>(entry) = *std::move(address);
    if (fields.size() == 2) {
      absl::string_view pin = fields[1];
      if (!absl::ConsumePrefix(&pin, "sha256=")) {
        return bad(absl::StrCat("'", fields[1], "' is not a pin; write sha256=<fingerprint>"));
      }
      std::string hex = absl::AsciiStrToLower(absl::StrReplaceAll(pin, {{":", ""}}));
      if (hex.size() != 64 || hex.find_first_not_of("0123456789abcdef") != std::string::npos) {
        return bad("the sha256= fingerprint must be 64 hex digits, as printed at start");
      }
      entry.sha256 = std::move(hex);
    }
    out.push_back(std::move(entry));
  }
  if (out.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(kind, "_info holds no ", kind,
                                                   " address; write one host:port a line"));
  }
  return out;
}

absl::StatusOr<std::vector<TrackerAddress>> ReadTrackerInfo(const std::string& path,
                                                            absl::string_view kind) {
  absl::StatusOr<std::string> text = ReadFileText(path, absl::StrCat(kind, "_info file"));
  if (!text.ok()) return text.status();
  auto parsed = ParseTrackerInfo(*text, kind);
  if (!parsed.ok()) {
    return absl::Status(parsed.status().code(),
                        absl::StrCat(path, ": ", parsed.status().message()));
  }
  return parsed;
}

}  // namespace groupshare
