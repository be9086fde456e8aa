// Hashing and randomness, all through OpenSSL 3's EVP API: SHA1 of pieces
// and files, SHA-256 of session tokens, random tokens, and salted,
// stretched password hashes (PBKDF2-HMAC-SHA256).
#ifndef GROUPSHARE_CORE_CRYPTO_H_
#define GROUPSHARE_CORE_CRYPTO_H_

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

#include "absl/status/statusor.h"

namespace groupshare {

using Sha1Digest = std::array<uint8_t, 20>;

// Incremental SHA1. Not thread-safe; one instance per stream of bytes.
class Sha1 {
 public:
  Sha1();
  ~Sha1();
  Sha1(const Sha1&) = delete;
  Sha1& operator=(const Sha1&) = delete;

  void Update(const void* data, size_t size);
  void Update(absl::string_view data) { Update(data.data(), data.size()); }
  // Returns the digest and resets the hasher for a new stream.
  Sha1Digest Finish();

 private:
  struct Ctx;
  std::unique_ptr<Ctx> ctx_;
};

Sha1Digest Sha1Of(absl::string_view data);
Sha1Digest Sha1Of(absl::Span<const absl::string_view> parts);  // of the parts one after another
std::string Sha256Of(absl::string_view data);  // 32 raw bytes

// Lower-case hex of raw bytes, and back (nullopt on odd length or a
// non-hex character).
std::string HexEncode(absl::string_view bytes);
std::string HexEncode(const Sha1Digest& digest);
std::optional<std::string> HexDecode(absl::string_view hex);
// True for exactly 40 lower-case hex characters.
bool IsSha1Hex(absl::string_view hex);
// The 20 bytes of a hex SHA1; nullopt unless IsSha1Hex.
std::optional<Sha1Digest> HexDecodeSha1(absl::string_view hex);

// Lists of SHA1 digests kept compactly: hex digests to their raw 20 bytes
// back to back, and back.
std::string PackSha1Hex(const std::vector<std::string>& hex);
std::vector<std::string> UnpackSha1Hex(absl::string_view raw);

// `n` bytes from OpenSSL's CSPRNG; INTERNAL if it fails.
absl::StatusOr<std::string> RandomBytes(size_t n);

// Salted PBKDF2-HMAC-SHA256, stored as "pbkdf2-sha256$<iterations>$<salt
// hex>$<hash hex>" so the cost can grow without breaking old hashes.
inline constexpr int kDefaultPasswordIterations = 200000;
absl::StatusOr<std::string> HashPassword(
    absl::string_view password, int iterations = kDefaultPasswordIterations);
// True when `password` matches a value made by HashPassword. Compares in
// constant time.
bool VerifyPassword(absl::string_view password, absl::string_view stored);

}  // namespace groupshare

#endif  // GROUPSHARE_CORE_CRYPTO_H_
