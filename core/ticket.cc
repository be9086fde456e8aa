#include "core/ticket.h"

#include <openssl/evp.h>

#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "core/crypto.h"
#include "core/ids.h"
#include "core/openssl_ptr.h"

namespace groupshare {
namespace {

constexpr absl::string_view kClaimsTag = "gs-ticket-v2";
constexpr size_t kKeyBytes = 32;

std::string RawKey(EVP_PKEY* key, bool is_private) {
  std::string out(kKeyBytes, '\0');
  size_t len = out.size();
  auto* buf = reinterpret_cast<unsigned char*>(out.data());
  if (is_private) {
    EVP_PKEY_get_raw_private_key(key, buf, &len);
  } else {
    EVP_PKEY_get_raw_public_key(key, buf, &len);
  }
  out.resize(len);
  return out;
}

std::string Claims(const Ticket& t) {
  return absl::StrCat(kClaimsTag, "\n", t.user_id, "\n", t.group_id, "\n",
                      t.file_sha1, "\n", t.peer, "\n", absl::ToUnixSeconds(t.expires));
}

}  // namespace

struct TicketSigner::Key {
  EvpPkeyPtr pkey;
};
struct TicketVerifier::Key {
  std::vector<EvpPkeyPtr> pkeys;
};

TicketSigner::TicketSigner(std::unique_ptr<Key> key) : key_(std::move(key)) {}
TicketSigner::~TicketSigner() = default;

absl::StatusOr<std::unique_ptr<TicketSigner>> TicketSigner::Generate() {
  auto raw = RandomBytes(kKeyBytes);
  if (!raw.ok()) return raw.status();
  return FromPrivateKey(*raw);
}

absl::StatusOr<std::unique_ptr<TicketSigner>> TicketSigner::FromPrivateKey(
    absl::string_view raw) {
  if (raw.size() != kKeyBytes) {
    return absl::InvalidArgumentError("an Ed25519 private key is 32 bytes");
  }
  EvpPkeyPtr pkey(EVP_PKEY_new_raw_private_key(
      EVP_PKEY_ED25519, nullptr,
      reinterpret_cast<const unsigned char*>(raw.data()), raw.size()));
  if (!pkey) return absl::InternalError("cannot load the Ed25519 private key");
  return std::unique_ptr<TicketSigner>(
      new TicketSigner(std::make_unique<Key>(Key{std::move(pkey)})));
}

std::string TicketSigner::PrivateKey() const {
  return RawKey(key_->pkey.get(), true);
}
std::string TicketSigner::PublicKey() const {
  return RawKey(key_->pkey.get(), false);
}

absl::StatusOr<std::string> TicketSigner::Sign(const Ticket& ticket) const {
  std::string claims = Claims(ticket);
  EvpMdCtxPtr ctx(EVP_MD_CTX_new());
  std::string sig(64, '\0');
  size_t sig_len = sig.size();
  if (!ctx ||
      EVP_DigestSignInit(ctx.get(), nullptr, nullptr, nullptr,
                         key_->pkey.get()) != 1 ||
      EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()),
                     &sig_len,
                     reinterpret_cast<const unsigned char*>(claims.data()),
                     claims.size()) != 1) {
    return absl::InternalError("cannot sign the download ticket");
  }
  sig.resize(sig_len);
  return absl::StrCat(absl::WebSafeBase64Escape(claims), ".",
                      absl::WebSafeBase64Escape(sig));
}

TicketVerifier::TicketVerifier(std::unique_ptr<Key> key)
    : key_(std::move(key)) {}
TicketVerifier::~TicketVerifier() = default;

absl::StatusOr<std::unique_ptr<TicketVerifier>> TicketVerifier::Create(
    absl::string_view public_key) {
  return Create(std::vector<std::string>{std::string(public_key)});
}

absl::StatusOr<std::unique_ptr<TicketVerifier>> TicketVerifier::Create(
    const std::vector<std::string>& public_keys) {
  if (public_keys.empty() || public_keys.size() > kMaxVerifierKeys) {
    return absl::InvalidArgumentError(
        absl::StrCat("a verifier takes 1 to ", kMaxVerifierKeys, " keys"));
  }
  auto key = std::make_unique<Key>();
  for (const std::string& public_key : public_keys) {
    if (public_key.size() != kKeyBytes) {
      return absl::InvalidArgumentError("an Ed25519 public key is 32 bytes");
    }
    EvpPkeyPtr pkey(EVP_PKEY_new_raw_public_key(
        EVP_PKEY_ED25519, nullptr, reinterpret_cast<const unsigned char*>(public_key.data()),
        public_key.size()));
    if (!pkey) return absl::InvalidArgumentError("not an Ed25519 public key");
    key->pkeys.push_back(std::move(pkey));
  }
  return std::unique_ptr<TicketVerifier>(new TicketVerifier(std::move(key)));
}

absl::StatusOr<Ticket> TicketVerifier::Verify(absl::string_view text,
                                              absl::Time now) const {
  auto denied = [](absl::string_view why) {
    return absl::PermissionDeniedError(
        absl::StrCat("download ticket refused: ", why,
                     "; ask the tracker for a new one (GetFilePeers)"));
  };
  if (text.empty()) return denied("no ticket");
  std::vector<absl::string_view> parts = absl::StrSplit(text, '.');
  std::string claims, sig;
  if (parts.size() != 2 || !absl::WebSafeBase64Unescape(parts[0], &claims) ||
      !absl::WebSafeBase64Unescape(parts[1], &sig)) {
    return denied("malformed");
  }
  // Any of the keys: around a rotation, tickets of the previous key and of
  // the next are both good.
  bool signed_by_one = false;
  for (const EvpPkeyPtr& pkey : key_->pkeys) {
    EvpMdCtxPtr ctx(EVP_MD_CTX_new());
    if (ctx &&
        EVP_DigestVerifyInit(ctx.get(), nullptr, nullptr, nullptr, pkey.get()) == 1 &&
        EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(sig.data()),
                         sig.size(), reinterpret_cast<const unsigned char*>(claims.data()),
                         claims.size()) == 1) {
      signed_by_one = true;
      break;
    }
  }
  if (!signed_by_one) return denied("bad signature");
  std::vector<std::string> fields = absl::StrSplit(claims, '\n');
  int64_t expiry = 0;
  if (fields.size() != 6 || fields[0] != kClaimsTag ||
      !absl::SimpleAtoi(fields[5], &expiry)) {
    return denied("malformed claims");
  }
  Ticket ticket{fields[1], fields[2], fields[3], fields[4], absl::FromUnixSeconds(expiry)};
  if (ticket.ExpiredAt(now)) return denied("expired");
  return ticket;
}

}  // namespace groupshare
