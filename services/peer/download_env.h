// What a download needs from outside itself: the time and a way to wait
// for it, its part file, and links to peers. After leveldb's Env: a client
// runs its downloads on a SystemDownloadEnv (the system clock, files on
// disk, gRPC links), and a test gives them an Env of its own, or wraps the
// system one (DownloadEnvWrapper) to change one part: a clock it moves, a
// part file that fails, links it drives. A clock that is not the system's
// needs links of its own too: a GrpcPeerLink times its calls by the system
// clock.
//
// Thread-safe.
#ifndef GROUPSHARE_SERVICES_PEER_DOWNLOAD_ENV_H_
#define GROUPSHARE_SERVICES_PEER_DOWNLOAD_ENV_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include <grpcpp/security/credentials.h>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "core/part_file.h"
#include "core/work_queue.h"
#include "groupshare/tracker/v1/tracker.pb.h"
#include "services/peer/peer_link.h"

namespace groupshare::peer {

class DownloadEnv {
 public:
  virtual ~DownloadEnv() = default;

  virtual absl::Time Now() = 0;
  // Waits on `cv`, with `mu` held, until it is signalled or Now() reaches
  // `deadline`; it may return early.
  virtual void WaitUntil(absl::CondVar* cv, absl::Mutex* mu, absl::Time deadline)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) = 0;

  // Opens the part file at `path`, of `size` bytes (see OpenPartFile).
  virtual absl::StatusOr<PartFileOpened> OpenPartFile(const std::string& path, uint64_t size,
                                                      bool ours) = 0;
  // A link to `holder` (as the tracker listed it), for `owner`.
  virtual std::unique_ptr<PeerLink> NewLink(PeerLink::Owner* owner, uint32_t id,
                                            const tracker::v1::Peer& holder,
                                            const PeerLink::Target& target) = 0;
};

// How links reach `holder`: directly or through a relay, over TLS that
// accepts only the member the tracker listed. With `direct_only` (a link
// through a relay trying its holder directly again), a direct route if the
// holder answers at its address, else an error.
using LinkRouter =
    std::function<absl::StatusOr<LinkRoute>(const tracker::v1::Peer& holder, bool direct_only)>;

// The system clock, part files on disk and gRPC links, routed by `router`
// (directly and in plaintext when null).
class SystemDownloadEnv final : public DownloadEnv {
 public:
  explicit SystemDownloadEnv(LinkRouter router = nullptr) : router_(std::move(router)) {}

  absl::Time Now() override { return absl::Now(); }
  void WaitUntil(absl::CondVar* cv, absl::Mutex* mu, absl::Time deadline) override
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    cv->WaitWithDeadline(mu, deadline);
  }
  absl::StatusOr<PartFileOpened> OpenPartFile(const std::string& path, uint64_t size,
                                              bool ours) override {
    return groupshare::OpenPartFile(path, size, ours);
  }
  // A link is made at once, and reaches its holder on a thread of its own:
  // a channel's first call sets up its connection (and its TLS) on the
  // calling thread, which must not be the download's.
  std::unique_ptr<PeerLink> NewLink(PeerLink::Owner* owner, uint32_t id,
                                    const tracker::v1::Peer& holder,
                                    const PeerLink::Target& target) override {
    auto find = [router = router_, holder](bool direct_only) {
      if (router == nullptr) return LinkRoute();
      absl::StatusOr<LinkRoute> found = router(holder, direct_only);
      if (found.ok()) return *std::move(found);
      // Without one (logged out, or no relay answers) the link fails its
      // calls with the reason, as an unreachable peer would.
      LinkRoute none;
      none.failure = found.status().ToString();
      return none;
    };
    return std::make_unique<GrpcPeerLink>(owner, id, holder.user_id(), holder.address(), target,
                                          std::move(find),
                                          holder.relay().empty() ? &connecting_ : &routing_);
  }

 private:
  const LinkRouter router_;
  // Connects the links to holders reached directly, a few at a time.
  WorkQueue connecting_{2};
  // Finds the routes of links to holders behind relays (a direct try, a
  // relay's answer, which may take seconds), a few at a time.
  WorkQueue routing_{4};
};

// Forwards every call to `target`, which must outlive it; a test overrides
// what it changes.
class DownloadEnvWrapper : public DownloadEnv {
 public:
  explicit DownloadEnvWrapper(DownloadEnv* target) : target_(target) {}

  absl::Time Now() override { return target_->Now(); }
  void WaitUntil(absl::CondVar* cv, absl::Mutex* mu, absl::Time deadline) override
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    target_->WaitUntil(cv, mu, deadline);
  }
  absl::StatusOr<PartFileOpened> OpenPartFile(const std::string& path, uint64_t size,
                                              bool ours) override {
    return target_->OpenPartFile(path, size, ours);
  }
  std::unique_ptr<PeerLink> NewLink(PeerLink::Owner* owner, uint32_t id,
                                    const tracker::v1::Peer& holder,
                                    const PeerLink::Target& target) override {
    return target_->NewLink(owner, id, holder, target);
  }

 private:
  DownloadEnv* const target_;
};

}  // namespace groupshare::peer

#endif  // GROUPSHARE_SERVICES_PEER_DOWNLOAD_ENV_H_
