#include "core/text.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace groupshare {

std::optional<char32_t> NextCodePoint(absl::string_view text, size_t* at) {
  const auto byte = [&](size_t i) { return static_cast<unsigned char>(text[i]); };
  const unsigned char lead = byte(*at);
  size_t length;
  char32_t c;
  if (lead < 0x80) {
    ++*at;
    return lead;
  } else if (lead >= 0xc2 && lead <= 0xdf) {
    length = 2;
    c = lead & 0x1f;
  } else if (lead >= 0xe0 && lead <= 0xef) {
    length = 3;
    c = lead & 0x0f;
  } else if (lead >= 0xf0 && lead <= 0xf4) {
    length = 4;
    c = lead & 0x07;
  } else {
    ++*at;
    return std::nullopt;
  }
  if (*at + length > text.size()) {
    ++*at;
    return std::nullopt;
  }
  for (size_t i = 1; i < length; ++i) {
    const unsigned char next = byte(*at + i);
    if ((next & 0xc0) != 0x80) {
      ++*at;
      return std::nullopt;
    }
    c = (c << 6) | (next & 0x3f);
  }
  const char32_t least = length == 2 ? 0x80 : length == 3 ? 0x800 : 0x10000;
  if (c < least || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff)) {
    ++*at;
    return std::nullopt;
  }
  *at += length;
  return c;
}

bool IsUnsafeToShow(char32_t c) {
  return c < 0x20 || (c >= 0x7f && c <= 0x9f) ||  // C0, DEL, C1
         c == 0xad ||                              // soft hyphen
         c == 0x61c ||                             // Arabic letter mark
         c == 0x180e ||                            // Mongolian vowel separator
         (c >= 0x200b && c <= 0x200f) ||           // zero-width, LRM, RLM
         (c >= 0x2028 && c <= 0x202e) ||           // separators, embeddings, overrides
         (c >= 0x2060 && c <= 0x206f) ||           // word joiner, invisibles, isolates
         c == 0xfeff ||                            // byte order mark
         (c >= 0xfff9 && c <= 0xfffb);             // interlinear annotations
}

std::string EscapeForTerminal(absl::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t at = 0; at < text.size();) {
    const size_t start = at;
    std::optional<char32_t> c = NextCodePoint(text, &at);
    if (!c.has_value()) {
      absl::StrAppendFormat(&out, "\\x%02x", static_cast<unsigned char>(text[start]));
    } else if (*c == 0x1b) {
      out += "\\e";
    } else if (*c < 0x80 && IsUnsafeToShow(*c)) {
      absl::StrAppendFormat(&out, "\\x%02x", static_cast<unsigned>(*c));
    } else if (IsUnsafeToShow(*c)) {
      absl::StrAppendFormat(&out, "\\u{%04x}", static_cast<unsigned>(*c));
    } else {
      out.append(text.data() + start, at - start);
    }
  }
  return out;
}

std::string Abbreviated(absl::string_view text, size_t max_bytes) {
  if (text.size() <= max_bytes) return std::string(text);
  size_t end = 0;
  for (size_t at = 0; at <= max_bytes;) {
    end = at;
    if (at == text.size()) break;
    NextCodePoint(text, &at);
  }
  return absl::StrCat(text.substr(0, end), "...");
}

}  // namespace groupshare
