#include "core/ids.h"

#include <unicode/uchar.h>
#include <unicode/unorm2.h>
#include <unicode/uspoof.h>
#include <unicode/ustring.h>

#include <memory>

#include "absl/strings/str_cat.h"
#include "core/status_macros.h"
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

// Code points an id must not hold though they show: any whitespace (NBSP,
// ideographic space), invisible ones (U+3164, tags, variation selectors),
// private-use and unassigned ones.
bool IsUnfitForId(char32_t c) {
  const UChar32 u = static_cast<UChar32>(c);
  const int8_t type = u_charType(u);
  return u_isUWhiteSpace(u) || u_hasBinaryProperty(u, UCHAR_DEFAULT_IGNORABLE_CODE_POINT) ||
         type == U_UNASSIGNED || type == U_PRIVATE_USE_CHAR || type == U_SURROGATE;
}

std::optional<std::u16string> ToUtf16(absl::string_view text) {
  std::u16string out(text.size(), u'\0');
  int32_t length = 0;
  UErrorCode error = U_ZERO_ERROR;
  u_strFromUTF8(reinterpret_cast<UChar*>(out.data()), static_cast<int32_t>(out.size()), &length,
                text.data(), static_cast<int32_t>(text.size()), &error);
  if (U_FAILURE(error)) return std::nullopt;
  out.resize(static_cast<size_t>(length));
  return out;
}

bool IsNfc(absl::string_view text) {
  UErrorCode error = U_ZERO_ERROR;
  const UNormalizer2* nfc = unorm2_getNFCInstance(&error);
  std::optional<std::u16string> utf16 = ToUtf16(text);
  if (U_FAILURE(error) || !utf16.has_value()) return false;
  const bool normalized = unorm2_isNormalized(nfc, reinterpret_cast<const UChar*>(utf16->data()),
                                              static_cast<int32_t>(utf16->size()), &error);
  return U_SUCCESS(error) && normalized;
}

// Full-width and other compatibility forms as their plain letters (NFKC):
// "ａｌｉｃｅ" as "alice".
std::optional<std::u16string> Folded(absl::string_view text) {
  UErrorCode error = U_ZERO_ERROR;
  const UNormalizer2* fold = unorm2_getNFKCInstance(&error);
  std::optional<std::u16string> utf16 = ToUtf16(text);
  if (U_FAILURE(error) || !utf16.has_value()) return std::nullopt;
  std::u16string out(utf16->size() * 4 + 16, u'\0');
  const int32_t length = unorm2_normalize(
      fold, reinterpret_cast<const UChar*>(utf16->data()), static_cast<int32_t>(utf16->size()),
      reinterpret_cast<UChar*>(out.data()), static_cast<int32_t>(out.size()), &error);
  if (U_FAILURE(error)) return std::nullopt;
  out.resize(static_cast<size_t>(length));
  return out;
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
  RETURN_IF_ERROR(CheckShown(what, id, " ",
                             "spaces, control characters, or invisible or bidirectional marks"));
  for (size_t at = 0; at < id.size();) {
    std::optional<char32_t> c = NextCodePoint(id, &at);
    if (c.has_value() && IsUnfitForId(*c)) {
      return absl::InvalidArgumentError(absl::StrCat(
          what, " must not contain spaces, or invisible, private-use or unassigned characters "
                "(U+", absl::Hex(static_cast<uint32_t>(*c), absl::kZeroPad4), ")"));
    }
  }
  if (!IsNfc(id)) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, " must be in Unicode's composed form (NFC): write é as one character, "
              "not e and a combining accent"));
  }
  return absl::OkStatus();
}

std::string IdSkeleton(absl::string_view id) {
  UErrorCode error = U_ZERO_ERROR;
  struct Closer {
    void operator()(USpoofChecker* checker) const { uspoof_close(checker); }
  };
  thread_local std::unique_ptr<USpoofChecker, Closer> checker(uspoof_open(&error));
  std::optional<std::u16string> folded = Folded(id);
  if (checker == nullptr || U_FAILURE(error) || !folded.has_value()) return std::string(id);
  std::u16string skeleton(folded->size() * 4 + 16, u'\0');
  const int32_t length = uspoof_getSkeleton(
      checker.get(), 0, reinterpret_cast<const UChar*>(folded->data()),
      static_cast<int32_t>(folded->size()), reinterpret_cast<UChar*>(skeleton.data()),
      static_cast<int32_t>(skeleton.size()), &error);
  if (U_FAILURE(error)) return std::string(id);
  std::string out(static_cast<size_t>(length) * 3 + 4, '\0');
  int32_t bytes = 0;
  u_strToUTF8(out.data(), static_cast<int32_t>(out.size()), &bytes,
              reinterpret_cast<const UChar*>(skeleton.data()), length, &error);
  if (U_FAILURE(error)) return std::string(id);
  out.resize(static_cast<size_t>(bytes));
  return out;
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
