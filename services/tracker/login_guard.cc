#include "services/tracker/login_guard.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

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

absl::Status LoginGuard::Admit(const std::string& user_id, const std::string& source,
                               absl::Time now) {
  absl::MutexLock lock(&mu_);
  if (absl::Status s = Check("u:" + user_id, absl::StrCat("for '", user_id, "'"), now);
      !s.ok()) {
    return s;
  }
  return Check("s:" + source, "from this address", now);
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

void LoginGuard::Record(const std::string& user_id, const std::string& source, bool ok,
                        absl::Time now) {
  absl::MutexLock lock(&mu_);
  if (ok) {
    failures_.erase("u:" + user_id);
    return;
  }
  if (failures_.size() >= kMaxTracked) {
    absl::erase_if(failures_, [&](const auto& entry) {
      return entry.second.blocked_until <= now;
    });
  }
  Fail("u:" + user_id, options_.free_failures_per_user, now);
  Fail("s:" + source, options_.free_failures_per_source, now);
}

absl::Status LoginGuard::Hash(const std::function<void()>& hash) {
  {
    absl::MutexLock lock(&slots_mu_);
    auto free = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(slots_mu_) {
      return busy_slots_ < options_.hash_slots;
    };
    if (!slots_mu_.AwaitWithTimeout(absl::Condition(&free), options_.slot_wait)) {
      return absl::UnavailableError(
          "the tracker is busy checking passwords; try again in a few seconds");
    }
    ++busy_slots_;
  }
  hash();
  absl::MutexLock lock(&slots_mu_);
  --busy_slots_;
  return absl::OkStatus();
}

}  // namespace groupshare::tracker
