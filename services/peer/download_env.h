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
  // A link to the peer `user_id` at `address`, for `owner`.
  virtual std::unique_ptr<PeerLink> NewLink(PeerLink::Owner* owner, uint32_t id,
                                            const std::string& user_id,
                                            const std::string& address,
                                            const PeerLink::Target& target) = 0;
};

// How links reach a peer that must be `user_id`.
using LinkCredentials =
    std::function<absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>>(
        const std::string& user_id)>;

// The system clock, part files on disk and gRPC links, over `credentials`
// (plaintext when null).
class SystemDownloadEnv final : public DownloadEnv {
 public:
  explicit SystemDownloadEnv(LinkCredentials credentials = nullptr)
      : credentials_(std::move(credentials)) {}

  absl::Time Now() override { return absl::Now(); }
  void WaitUntil(absl::CondVar* cv, absl::Mutex* mu, absl::Time deadline) override
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    cv->WaitWithDeadline(mu, deadline);
  }
  absl::StatusOr<PartFileOpened> OpenPartFile(const std::string& path, uint64_t size,
                                              bool ours) override {
    return groupshare::OpenPartFile(path, size, ours);
  }
  std::unique_ptr<PeerLink> NewLink(PeerLink::Owner* owner, uint32_t id,
                                    const std::string& user_id, const std::string& address,
                                    const PeerLink::Target& target) override {
    std::shared_ptr<grpc::ChannelCredentials> credentials;
    if (credentials_ != nullptr) {
      absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> made = credentials_(user_id);
      // Without one (logged out) a link fails as an unreachable peer would.
      credentials = made.ok() ? *std::move(made) : grpc::InsecureChannelCredentials();
    }
    return std::make_unique<GrpcPeerLink>(owner, id, user_id, address, target,
                                          std::move(credentials));
  }

 private:
  const LinkCredentials credentials_;
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
                                    const std::string& user_id, const std::string& address,
                                    const PeerLink::Target& target) override {
    return target_->NewLink(owner, id, user_id, address, target);
  }

 private:
  DownloadEnv* const target_;
};

}  // namespace groupshare::peer

#endif  // GROUPSHARE_SERVICES_PEER_DOWNLOAD_ENV_H_
