#include "services/tracker/login_guard.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "core/status_macros.h"

namespace groupshare::tracker {
namespace {

// Entries kept at most; past it, those no longer blocking are dropped.
constexpr size_t kMaxTracked = 100000;

}  // namespace

absl::Status LoginGuard::Check(const std::string& key, absl::string_view what,
                               absl::Time now) {
  auto it = failures_.find(key);
  if (it == failures_.end() || it->second.blocked_until <= now) return absl::OkStatus();
  const int64_t wait = absl::ToInt64Seconds(absl::Ceil(it->second.blocked_until - now,
                                                       absl::Seconds(1)));
  return absl::ResourceExhaustedError(absl::StrCat(
      "too many failed logins ", what, "; wait ", wait, " s before trying again"));
}

namespace {

std::string ClientKey(const LoginGuard::Attempt& a) { return a.user_id + "\nc:" + a.client_id; }
std::string SourceKey(const LoginGuard::Attempt& a) { return a.user_id + "\ns:" + a.source; }

}  // namespace

bool LoginGuard::Known(const Attempt& a) const {
  return KnownClient(a) || known_.contains(SourceKey(a));
}

bool LoginGuard::KnownClient(const Attempt& a) const {
  return !a.client_id.empty() && (a.known_client || known_.contains(ClientKey(a)));
}

// The backoff of a known client's own failures: its client id's when that
// is known, else its address's.
std::string LoginGuard::OwnKey(const Attempt& a) const {
  return "k:" + (KnownClient(a) ? ClientKey(a) : SourceKey(a));
}

absl::Status LoginGuard::Admit(const Attempt& a, absl::Time now) {
  absl::MutexLock lock(&mu_);
  const std::string user = "u:" + a.user_id, source = "s:" + a.source;
  if (Known(a)) {
    // Held by its own failures only.
    RETURN_IF_ERROR(Check(OwnKey(a), absl::StrCat("for '", a.user_id, "' here"), now));
  } else {
    RETURN_IF_ERROR(Check(user, absl::StrCat("for '", a.user_id, "'"), now));
    RETURN_IF_ERROR(Check(source, "from this address", now));
    if (in_flight_[user] >= options_.max_in_flight_per_user ||
        in_flight_[source] >= options_.max_in_flight_per_source) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "too many logins under way for '", a.user_id,
          "' or from this address; try again in a second"));
    }
  }
  ++in_flight_[user];
  ++in_flight_[source];
  return absl::OkStatus();
}

void LoginGuard::Fail(const std::string& key, int free, absl::Time now) {
  Failures& f = failures_[key];
  if (now - f.last > options_.forget_after) f = Failures();
  f.last = now;
  if (++f.count > free) {
    const int doublings = std::min(f.count - free - 1, 20);
    f.blocked_until = now + std::min(absl::Seconds(1) * (int64_t{1} << doublings),
                                     options_.max_backoff);
  }
}

void LoginGuard::Record(const Attempt& a, Outcome outcome, absl::Time now) {
  absl::MutexLock lock(&mu_);
  for (const std::string& key : {"u:" + a.user_id, "s:" + a.source}) {
    if (auto it = in_flight_.find(key); it != in_flight_.end() && --it->second <= 0) {
      in_flight_.erase(it);
    }
  }
  if (outcome == Outcome::kAbandoned) return;
  if (outcome == Outcome::kSucceeded) {
    failures_.erase("u:" + a.user_id);
    failures_.erase(OwnKey(a));
    if (known_.size() >= kMaxTracked) known_.clear();
    known_.insert(SourceKey(a));
    if (!a.client_id.empty()) known_.insert(ClientKey(a));
    return;
  }
  if (failures_.size() >= kMaxTracked) {
    absl::erase_if(failures_, [&](const auto& entry) {
      return entry.second.blocked_until <= now;
    });
  }
  if (Known(a)) {
    Fail(OwnKey(a), options_.free_failures_per_user, now);
    return;
  }
  Fail("u:" + a.user_id, options_.free_failures_per_user, now);
  Fail("s:" + a.source, options_.free_failures_per_source, now);
}

LoginGuard::LoginGuard(LoginGuardOptions options) : options_(options) {
  for (int i = 0; i < options_.hash_slots; ++i) slots_.emplace_back([this] { HashLoop(); });
}

LoginGuard::~LoginGuard() {
  {
    absl::MutexLock lock(&slots_mu_);
    stop_ = true;
  }
  for (std::thread& t : slots_) t.join();
}

namespace {

absl::Status Busy() {
  return absl::UnavailableError(
      "the tracker is busy checking passwords; try again in a few seconds");
}

}  // namespace

void LoginGuard::Hash(bool first, std::function<void(absl::Status slot)> work) {
  {
    absl::MutexLock lock(&slots_mu_);
    std::deque<Waiting>& waiting = first ? waiting_first_ : waiting_;
    // Up to max_waiting wait for the slots; the checks under way are not
    // counted, as they hold a slot.
    if (!stop_ && static_cast<int>(waiting.size()) < options_.max_waiting) {
      waiting.push_back({absl::Now() + options_.slot_wait, std::move(work)});
      return;
    }
  }
  work(Busy());
}

void LoginGuard::HashLoop() {
  for (;;) {
    Waiting next;
    {
      absl::MutexLock lock(&slots_mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(slots_mu_) {
        return stop_ || !waiting_first_.empty() || !waiting_.empty();
      };
      slots_mu_.Await(absl::Condition(&ready));
      std::deque<Waiting>& from = !waiting_first_.empty() ? waiting_first_ : waiting_;
      if (from.empty()) return;  // stopping, and nothing waits
      next = std::move(from.front());
      from.pop_front();
      if (stop_) next.deadline = absl::InfinitePast();
    }
    next.work(absl::Now() <= next.deadline ? absl::OkStatus() : Busy());
  }
}

bool LoginGuard::IsKnown(const Attempt& attempt) {
  absl::MutexLock lock(&mu_);
  return Known(attempt);
}

absl::Status LoginGuard::AdmitSignup(const std::string& source, absl::Time now) {
  if (!options_.signup_open) {
    return absl::PermissionDeniedError(
        "this tracker takes no new accounts; ask its operator for one");
  }
  absl::MutexLock lock(&mu_);
  if (now - signup_hour_ >= absl::Hours(1)) {
    signup_hour_ = now;
    signups_by_source_.clear();
    signups_ = 0;
  }
  const int64_t wait = absl::ToInt64Minutes(absl::Ceil(signup_hour_ + absl::Hours(1) - now,
                                                       absl::Minutes(1)));
  int& mine = signups_by_source_[source];
  if (mine >= options_.signups_per_source) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "too many accounts created from this address; try again in ", wait, " min"));
  }
  if (signups_ >= options_.signups) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "too many accounts created this hour; try again in ", wait, " min"));
  }
  ++mine;
  ++signups_;
  return absl::OkStatus();
}

}  // namespace groupshare::tracker
