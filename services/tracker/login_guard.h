// What stands between a storm of password guesses and the tracker: a
// backoff per user id and per source address after failed logins, a bound
// on the logins checked at once for one user id or from one address (a
// guess counts when it starts, so a burst of concurrent guesses gets no
// more tries than a sequence), and a small bounded pool for password
// hashing, so that guesses cannot take the cores other calls need.
//
// A client that logged in as the user before (its client id, as the
// database or this tracker remembers it, or its address) is known: the
// user's backoff, which an attacker elsewhere sets off, never holds it; its
// own failures back it off alone.
//
// Thread-safe.
#ifndef GROUPSHARE_SERVICES_TRACKER_LOGIN_GUARD_H_
#define GROUPSHARE_SERVICES_TRACKER_LOGIN_GUARD_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace groupshare::tracker {

struct LoginGuardOptions {
  // Passwords hashed at once, each on a thread of the guard's own; the
  // rest wait up to `slot_wait`, at most `max_waiting` of them (the others
  // are refused at once). A waiting check holds no thread, so password
  // checks never take the threads the session calls need. Logins of known
  // clients wait apart, as many again, and go first.
  int hash_slots = 1;
  absl::Duration slot_wait = absl::Seconds(3);
  int max_waiting = 16;
  // Accounts created in an hour, at most, from one address and in all
  // (CreateUser); false closes sign-up (a private tracker).
  bool signup_open = true;
  int signups_per_source = 60;
  int signups = 1000;
  // Failures allowed before a backoff starts, per user id and per source
  // address (one address may be many people behind one NAT).
  int free_failures_per_user = 5;
  int free_failures_per_source = 30;
  // Logins checked at once for one user id, and from one address.
  int max_in_flight_per_user = 2;
  int max_in_flight_per_source = 8;
  // The backoff doubles from a second to this.
  absl::Duration max_backoff = absl::Seconds(60);
  // Failures are forgotten after this long without another.
  absl::Duration forget_after = absl::Minutes(15);
};

class LoginGuard {
 public:
  explicit LoginGuard(LoginGuardOptions options);
  // Runs what waits for a slot with UNAVAILABLE, and joins the threads.
  ~LoginGuard();
  LoginGuard(const LoginGuard&) = delete;
  LoginGuard& operator=(const LoginGuard&) = delete;

  // Who tries: the user id, the caller's address, and the client id it
  // sent ("" for none).
  struct Attempt {
    std::string user_id;
    std::string source;
    std::string client_id;
    // The tracker's database says the client opened a session of the user
    // before (kept across restarts, and shared by the trackers).
    bool known_client = false;
  };
  // OK, or RESOURCE_EXHAUSTED saying how long to wait when the user id or
  // the source failed too often or has too many logins under way. Costs no
  // hashing. Every admitted attempt must be Record()ed.
  absl::Status Admit(const Attempt& attempt, absl::Time now) ABSL_LOCKS_EXCLUDED(mu_);
  // Records how an admitted attempt went. A success clears the user's
  // failures (not the source's) and makes the client known; an attempt
  // abandoned before its password was checked (the tracker busy, its
  // database out of reach) counts neither way.
  enum class Outcome { kAbandoned, kFailed, kSucceeded };
  void Record(const Attempt& attempt, Outcome outcome, absl::Time now) ABSL_LOCKS_EXCLUDED(mu_);

  // Calls `work` once. With OK on a hashing slot, where it hashes (and may
  // go on to answer its call); before the others when `first` (a known
  // client's login). With UNAVAILABLE, to answer without hashing: at once,
  // on the caller's thread, when too many wait already; or on a slot's
  // thread, when it waited longer than `slot_wait` (the tracker is busy
  // checking passwords), or when the guard is destroyed.
  void Hash(bool first, std::function<void(absl::Status slot)> work)
      ABSL_LOCKS_EXCLUDED(slots_mu_);
  // Whether `attempt` comes from a client that logged in as its user
  // before.
  bool IsKnown(const Attempt& attempt) ABSL_LOCKS_EXCLUDED(mu_);

  // OK, or PERMISSION_DENIED when sign-up is closed, or RESOURCE_EXHAUSTED
  // past the hour's sign-ups from `source` or in all. Counts the sign-up.
  absl::Status AdmitSignup(const std::string& source, absl::Time now) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Failures {
    int count = 0;
    absl::Time last;
    absl::Time blocked_until;
  };
  absl::Status Check(const std::string& key, absl::string_view what, absl::Time now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Fail(const std::string& key, int free, absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool Known(const Attempt& attempt) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool KnownClient(const Attempt& attempt) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::string OwnKey(const Attempt& attempt) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const LoginGuardOptions options_;
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, Failures> failures_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, int> in_flight_ ABSL_GUARDED_BY(mu_);
  // "user\nc:client id" and "user\ns:address" of successful logins.
  absl::flat_hash_set<std::string> known_ ABSL_GUARDED_BY(mu_);
  struct Waiting {
    absl::Time deadline;
    std::function<void(absl::Status)> work;
  };
  void HashLoop() ABSL_LOCKS_EXCLUDED(slots_mu_);
  absl::Mutex slots_mu_;
  bool stop_ ABSL_GUARDED_BY(slots_mu_) = false;
  // Known clients' checks, then the others, oldest first.
  std::deque<Waiting> waiting_first_ ABSL_GUARDED_BY(slots_mu_);
  std::deque<Waiting> waiting_ ABSL_GUARDED_BY(slots_mu_);
  std::vector<std::thread> slots_;
  // Sign-ups of the current hour, by source and in all.
  absl::Time signup_hour_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  absl::flat_hash_map<std::string, int> signups_by_source_ ABSL_GUARDED_BY(mu_);
  int signups_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace groupshare::tracker

#endif  // GROUPSHARE_SERVICES_TRACKER_LOGIN_GUARD_H_
