// The trackers' download-ticket keys, kept in the store so that every
// tracker over one database signs with the same key, and rotated without a
// refused ticket: a new key is announced (peers learn it with their
// keep-alives) a lead time before it signs, and the key it replaces is
// still accepted for one ticket lifetime after.
//
// Thread-safe.
#ifndef GROUPSHARE_SERVICES_TRACKER_TICKET_KEYS_H_
#define GROUPSHARE_SERVICES_TRACKER_TICKET_KEYS_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "core/ticket.h"
#include "services/tracker/store.h"

namespace groupshare::tracker {

struct TicketKeyTimes {
  // How long a ticket is valid: a replaced key is accepted this long more.
  absl::Duration ticket_ttl = absl::Minutes(3);
  // How long before it signs a new key is announced: long enough for every
  // tracker to read it and every live client to hear of it from a
  // keep-alive (a session's lifetime and `refresh`).
  absl::Duration lead = absl::Seconds(30);
  // How often a tracker reads the keys again (another may have rotated).
  absl::Duration refresh = absl::Seconds(5);
};

class TicketKeys {
 public:
  // Reads the keys from `store`, making the first one on a new database
  // (and adopting the single key of a database from before rotation).
  static absl::StatusOr<std::unique_ptr<TicketKeys>> Load(Store* store, TicketKeyTimes times,
                                                          absl::Time now);
  // Adds a new key that signs from now + lead, and drops keys no ticket
  // can need any more. Returns when the new key signs.
  static absl::StatusOr<absl::Time> Rotate(Store* store, TicketKeyTimes times, absl::Time now);

  // The signer of tickets issued at `now`.
  std::shared_ptr<const TicketSigner> Signer(absl::Time now) ABSL_LOCKS_EXCLUDED(mu_);
  // The public keys peers must accept at `now`, newest first.
  std::vector<std::string> PublicKeys(absl::Time now) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Key {
    absl::Time signs_from;
    std::shared_ptr<const TicketSigner> signer;
  };
  TicketKeys(Store* store, TicketKeyTimes times) : store_(store), times_(times) {}
  absl::Status Read(absl::Time now) ABSL_LOCKS_EXCLUDED(mu_);
  // Reads again when `refresh` has passed; keeps the old keys on failure.
  void MaybeRefresh(absl::Time now) ABSL_LOCKS_EXCLUDED(mu_);

  Store* const store_;
  const TicketKeyTimes times_;
  absl::Mutex mu_;
  std::vector<Key> keys_ ABSL_GUARDED_BY(mu_);  // oldest first
  absl::Time read_at_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
};

}  // namespace groupshare::tracker

#endif  // GROUPSHARE_SERVICES_TRACKER_TICKET_KEYS_H_
