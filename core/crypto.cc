#include "core/crypto.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <algorithm>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace groupshare {

namespace {
// Fetched once: OpenSSL 3 looks an algorithm up by name on each use of
// EVP_sha1() and the like, a cost on every small digest (a session token's).
const EVP_MD* Sha1Md() {
  static EVP_MD* const md = EVP_MD_fetch(nullptr, "SHA1", nullptr);
  return md;
}
const EVP_MD* Sha256Md() {
  static EVP_MD* const md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  return md;
}
}  // namespace

struct Sha1::Ctx {
  EVP_MD_CTX* md = EVP_MD_CTX_new();
  ~Ctx() { EVP_MD_CTX_free(md); }
};

Sha1::Sha1() : ctx_(std::make_unique<Ctx>()) {
  EVP_DigestInit_ex(ctx_->md, Sha1Md(), nullptr);
}
Sha1::~Sha1() = default;

void Sha1::Update(const void* data, size_t size) {
  EVP_DigestUpdate(ctx_->md, data, size);
}

Sha1Digest Sha1::Finish() {
  Sha1Digest out{};
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx_->md, out.data(), &len);
  EVP_DigestInit_ex(ctx_->md, Sha1Md(), nullptr);
  return out;
}

Sha1Digest Sha1Of(absl::string_view data) {
  Sha1Digest out{};
  EVP_Digest(data.data(), data.size(), out.data(), nullptr, Sha1Md(), nullptr);
  return out;
}

Sha1Digest Sha1Of(absl::Span<const absl::string_view> parts) {
  Sha1 sha1;
  for (absl::string_view part : parts) sha1.Update(part);
  return sha1.Finish();
}

std::string Sha256Of(absl::string_view data) {
  std::string out(32, '\0');
  EVP_Digest(data.data(), data.size(), reinterpret_cast<unsigned char*>(out.data()),
             nullptr, Sha256Md(), nullptr);
  return out;
}

std::string HexEncode(absl::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out.push_back(kDigits[c >> 4]);
    out.push_back(kDigits[c & 15]);
  }
  return out;
}

std::string HexEncode(const Sha1Digest& digest) {
  return HexEncode(absl::string_view(reinterpret_cast<const char*>(digest.data()),
                                    digest.size()));
}

namespace {
int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}
}  // namespace

std::optional<std::string> HexDecode(absl::string_view hex) {
  if (hex.size() % 2 != 0) return std::nullopt;
  std::string out;
  out.reserve(hex.size() / 2);
  for (size_t i = 0; i < hex.size(); i += 2) {
    int hi = HexValue(hex[i]), lo = HexValue(hex[i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out.push_back(static_cast<char>(hi << 4 | lo));
  }
  return out;
}

bool IsSha1Hex(absl::string_view hex) {
  if (hex.size() != 40) return false;
  for (char c : hex) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

std::optional<Sha1Digest> HexDecodeSha1(absl::string_view hex) {
  if (!IsSha1Hex(hex)) return std::nullopt;
  const std::string raw = *HexDecode(hex);
  Sha1Digest out{};
  std::copy(raw.begin(), raw.end(), out.begin());
  return out;
}

std::string PackSha1Hex(const std::vector<std::string>& hex) {
  std::string out;
  out.reserve(hex.size() * 20);
  for (const std::string& h : hex) out += HexDecode(h).value_or(std::string(20, '\0'));
  return out;
}

std::vector<std::string> UnpackSha1Hex(absl::string_view raw) {
  std::vector<std::string> out;
  out.reserve(raw.size() / 20);
  for (size_t i = 0; i + 20 <= raw.size(); i += 20) out.push_back(HexEncode(raw.substr(i, 20)));
  return out;
}

absl::StatusOr<std::string> RandomBytes(size_t n) {
  std::string out(n, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(out.data()),
                 static_cast<int>(n)) != 1) {
    return absl::InternalError("the system's random generator failed");
  }
  return out;
}

namespace {
constexpr absl::string_view kPasswordScheme = "pbkdf2-sha256";

std::string Pbkdf2(absl::string_view password, absl::string_view salt,
                   int iterations) {
  std::string out(32, '\0');
  PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()),
                    reinterpret_cast<const unsigned char*>(salt.data()),
                    static_cast<int>(salt.size()), iterations, EVP_sha256(),
                    static_cast<int>(out.size()),
                    reinterpret_cast<unsigned char*>(out.data()));
  return out;
}
}  // namespace

absl::StatusOr<std::string> HashPassword(absl::string_view password,
                                         int iterations) {
  auto salt = RandomBytes(16);
  if (!salt.ok()) return salt.status();
  return absl::StrCat(kPasswordScheme, "$", iterations, "$", HexEncode(*salt),
                      "$", HexEncode(Pbkdf2(password, *salt, iterations)));
}

bool VerifyPassword(absl::string_view password, absl::string_view stored) {
  std::vector<absl::string_view> parts = absl::StrSplit(stored, '$');
  int iterations = 0;
  if (parts.size() != 4 || parts[0] != kPasswordScheme ||
      !absl::SimpleAtoi(parts[1], &iterations) || iterations < 1) {
    return false;
  }
  auto salt = HexDecode(parts[2]);
  auto expected = HexDecode(parts[3]);
  if (!salt || !expected) return false;
  std::string actual = Pbkdf2(password, *salt, iterations);
  return actual.size() == expected->size() &&
         CRYPTO_memcmp(actual.data(), expected->data(), actual.size()) == 0;
}

}  // namespace groupshare
