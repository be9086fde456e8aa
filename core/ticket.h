// Download tickets: the tracker signs, for one user, group and file and one
// peer, a permission to pull the file's pieces from that peer until an
// expiry; every peer verifies the signature with the tracker's public key,
// and that the ticket names it, before serving a byte. Ed25519 through
// OpenSSL's EVP API.
//
// A ticket travels as text: base64url(claims) "." base64url(signature),
// where claims is
// "gs-ticket-v2\n<user>\n<group>\n<file sha1>\n<peer address>\n<expiry>"
// (expiry in Unix seconds). Ids and addresses hold no whitespace, so the
// claims are unambiguous.
#ifndef GROUPSHARE_CORE_TICKET_H_
#define GROUPSHARE_CORE_TICKET_H_

#include <memory>
#include <string>
#include <vector>
#include "absl/strings/string_view.h"

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace groupshare {

// How far the clocks of a tracker and a peer may differ: a time the one
// set is held to by the other with this much slack (certificates' start,
// tickets' expiry), as Kerberos allows its tickets.
inline constexpr absl::Duration kClockSlack = absl::Minutes(5);

struct Ticket {
  std::string user_id;
  std::string group_id;
  std::string file_sha1;  // lower-case hex
  std::string peer;       // host:port of the one peer that accepts it
  absl::Time expires;     // whole seconds, on the tracker's clock

  // Whether a peer whose clock says `now` takes it as expired.
  bool ExpiredAt(absl::Time now) const { return now >= expires + kClockSlack; }
};

// Holds the tracker's private key. Thread-safe after construction.
class TicketSigner {
 public:
  // A new random key.
  static absl::StatusOr<std::unique_ptr<TicketSigner>> Generate();
  // From a 32-byte raw private key (as PrivateKey() returns it).
  static absl::StatusOr<std::unique_ptr<TicketSigner>> FromPrivateKey(
      absl::string_view raw);
  ~TicketSigner();

  std::string PrivateKey() const;  // 32 raw bytes
  std::string PublicKey() const;   // 32 raw bytes
  absl::StatusOr<std::string> Sign(const Ticket& ticket) const;

 private:
  struct Key;
  explicit TicketSigner(std::unique_ptr<Key> key);
  std::unique_ptr<Key> key_;
};

inline constexpr size_t kMaxVerifierKeys = 4;

// Holds the tracker's public keys. Thread-safe after construction.
class TicketVerifier {
 public:
  // From a 32-byte raw public key; INVALID_ARGUMENT when it is not one.
  static absl::StatusOr<std::unique_ptr<TicketVerifier>> Create(
      absl::string_view public_key);
  // Accepting tickets signed with any of 1 to kMaxVerifierKeys keys (the
  // tracker's keys around a rotation).
  static absl::StatusOr<std::unique_ptr<TicketVerifier>> Create(
      const std::vector<std::string>& public_keys);
  ~TicketVerifier();

  // The ticket's claims when `text` is a ticket this key signed and it has
  // not expired at `now`; PERMISSION_DENIED otherwise, saying why.
  absl::StatusOr<Ticket> Verify(absl::string_view text, absl::Time now) const;

 private:
  struct Key;
  explicit TicketVerifier(std::unique_ptr<Key> key);
  std::unique_ptr<Key> key_;
};

}  // namespace groupshare

#endif  // GROUPSHARE_CORE_TICKET_H_
