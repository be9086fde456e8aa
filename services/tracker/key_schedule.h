// Keys that take turns, as the ticket keys and the peer CAs do: each signs
// from its `signs_from` on, until the next one does; a replaced key is still
// trusted for `ttl` after its successor signs (what it signed lives that
// long). A key is any struct with an absl::Time `signs_from`; lists are
// sorted by it, oldest first.
#ifndef GROUPSHARE_SERVICES_TRACKER_KEY_SCHEDULE_H_
#define GROUPSHARE_SERVICES_TRACKER_KEY_SCHEDULE_H_

#include <algorithm>
#include <cstddef>
#include <vector>

#include "absl/time/time.h"

namespace groupshare::tracker {

// Whether nothing key i signed can still be valid at `now`.
template <typename K>
bool Retired(const std::vector<K>& keys, size_t i, absl::Time now, absl::Duration ttl) {
  return i + 1 < keys.size() && keys[i + 1].signs_from + ttl <= now;
}

// `keys` without the retired ones.
template <typename K>
std::vector<K> Unretired(const std::vector<K>& keys, absl::Time now, absl::Duration ttl) {
  std::vector<K> kept;
  for (size_t i = 0; i < keys.size(); ++i) {
    if (!Retired(keys, i, now, ttl)) kept.push_back(keys[i]);
  }
  return kept;
}

// When a key added to `keys` (not empty) at `now` signs: `lead` later, in
// whole seconds (as stored), and never before a key announced earlier.
template <typename K>
absl::Time NextSignsFrom(const std::vector<K>& keys, absl::Time now, absl::Duration lead) {
  const absl::Time at = absl::FromUnixSeconds(absl::ToUnixSeconds(now + lead) + 1);
  return std::max(at, keys.back().signs_from + absl::Seconds(1));
}

// The key that signs at `now` (not empty; the oldest before any does).
template <typename K>
const K& SigningAt(const std::vector<K>& keys, absl::Time now) {
  const K* signing = &keys.front();
  for (const K& k : keys) {
    if (k.signs_from <= now) signing = &k;
  }
  return *signing;
}

}  // namespace groupshare::tracker

#endif  // GROUPSHARE_SERVICES_TRACKER_KEY_SCHEDULE_H_
