// Tickets come from any caller of a peer. Verify must refuse what it did
// not sign without crashing, and whatever it signed must verify back to the
// same claims.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "core/ticket.h"

namespace {

using groupshare::Ticket;
using groupshare::TicketSigner;
using groupshare::TicketVerifier;

const TicketSigner& Signer() {
  static const auto* signer =
      TicketSigner::FromPrivateKey(std::string(32, '\x42')).value().release();
  return *signer;
}

const TicketVerifier& Verifier() {
  static const auto* verifier = TicketVerifier::Create(Signer().PublicKey()).value().release();
  return *verifier;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  const absl::Time now = absl::FromUnixSeconds(1'800'000'000);
  // As a ticket of its own.
  (void)Verifier().Verify(input, now);
  // As claims to sign: the signed ticket verifies to the same claims.
  std::vector<std::string> fields = absl::StrSplit(input, absl::MaxSplits('\n', 3));
  fields.resize(4);
  Ticket claims{fields[0], fields[1], fields[2], fields[3], now + absl::Seconds(60)};
  auto signed_ticket = Signer().Sign(claims);
  if (!signed_ticket.ok()) return 0;
  auto back = Verifier().Verify(*signed_ticket, now);
  if (back.ok() && (back->user_id != claims.user_id || back->group_id != claims.group_id ||
                    back->file_sha1 != claims.file_sha1 || back->peer != claims.peer ||
                    back->expires != claims.expires)) {
    std::abort();  // it verified, but to other claims
  }
  return 0;
}
