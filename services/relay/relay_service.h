// The relay's gRPC service (proto/groupshare/relay/v1/relay.proto): holders
// that nobody reaches wait in Join; members ask for a session with one in
// Connect. The callback API holds every waiting holder without a thread.
//
// Thread-safe.
#ifndef GROUPSHARE_SERVICES_RELAY_RELAY_SERVICE_H_
#define GROUPSHARE_SERVICES_RELAY_RELAY_SERVICE_H_

#include <map>
#include <string>
#include <utility>

#include "absl/synchronization/mutex.h"
#include "groupshare/relay/v1/relay.grpc.pb.h"
#include "services/relay/sessions.h"

namespace groupshare::relay {

struct RelayOptions {
  std::string session_address;  // host:port of the session port, as told
  int max_holders = 1000;       // holders waiting at once
  int max_holders_per_user = 16;
  // Callers without a member certificate are named by their address
  // (--plaintext); otherwise they are refused.
  bool plaintext = false;
};

class RelayServiceImpl final : public v1::RelayService::CallbackService {
 public:
  RelayServiceImpl(Sessions* sessions, RelayOptions options);
  ~RelayServiceImpl() override;

  grpc::ServerWriteReactor<v1::JoinResponse>* Join(grpc::CallbackServerContext* context,
                                                   const v1::JoinRequest* request) override;
  grpc::ServerUnaryReactor* Connect(grpc::CallbackServerContext* context,
                                    const v1::ConnectRequest* request,
                                    v1::ConnectResponse* response) override;

  // Ends every Join call (before the server shuts down).
  void Stop() ABSL_LOCKS_EXCLUDED(mu_);
  int holders() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  class Holder;
  // The user (empty over plaintext) and the address it advertises.
  using HolderKey = std::pair<std::string, std::string>;
  void Left(const HolderKey& key, const std::string& caller, Holder* holder)
      ABSL_LOCKS_EXCLUDED(mu_);

  Sessions* const sessions_;
  const RelayOptions options_;
  mutable absl::Mutex mu_;
  std::map<HolderKey, Holder*> holders_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, int> holders_by_user_ ABSL_GUARDED_BY(mu_);
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace groupshare::relay

#endif  // GROUPSHARE_SERVICES_RELAY_RELAY_SERVICE_H_
