// The client's connection to the trackers of tracker_info.txt: it sends each
// call to the current tracker and fails over to the next one when a tracker
// does not answer; after Login it adds the bearer token to every call and
// keeps the session alive from a background thread.
//
// Thread-safe: the shell, the downloader and the keep-alive thread share one.
#ifndef GROUPSHARE_SERVICES_PEER_TRACKER_CLIENT_H_
#define GROUPSHARE_SERVICES_PEER_TRACKER_CLIENT_H_

#include <algorithm>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "core/tracker_info.h"
#include "services/peer/tracker_trust.h"
#include "groupshare/tracker/v1/tracker.grpc.pb.h"
#include "services/common/grpc_status.h"

namespace groupshare::peer {

namespace tv1 = ::groupshare::tracker::v1;

class TrackerClient {
 public:
  template <typename Req, typename Resp>
  using Rpc = grpc::Status (tv1::TrackerService::Stub::*)(grpc::ClientContext*, const Req&,
                                                         Resp*);

  // Plaintext unless `credentials` say otherwise.
  explicit TrackerClient(std::vector<HostPort> trackers,
                         std::shared_ptr<grpc::ChannelCredentials> credentials = nullptr,
                         absl::Duration call_timeout = absl::Seconds(5));
  // Over TLS, each tracker known as `trust` says.
  TrackerClient(const std::vector<TrackerAddress>& trackers, std::shared_ptr<TrackerTrust> trust,
                absl::Duration call_timeout = absl::Seconds(5));
  ~TrackerClient();
  TrackerClient(const TrackerClient&) = delete;
  TrackerClient& operator=(const TrackerClient&) = delete;

  // Calls `rpc` with the session token (when logged in) on the current
  // tracker, moving on to the next one while a tracker is UNAVAILABLE or
  // times out. UNAVAILABLE, naming every tracker, when none answers. Every
  // attempt carries the same request-id, so a call that changes state and
  // is tried again is applied once; pass `request_id` to send a call again
  // later (a fresh one when empty).
  template <typename Req, typename Resp>
  absl::StatusOr<Resp> Call(Rpc<Req, Resp> rpc, const Req& request,
                            std::string request_id = "") ABSL_LOCKS_EXCLUDED(mu_);

  // Logs in and starts keeping the session alive. FAILED_PRECONDITION when
  // a session is open already.
  // With a `peer_public_key` the tracker certifies it (see tracker.proto).
  absl::StatusOr<tv1::LoginResponse> Login(const std::string& user_id,
                                           const std::string& password,
                                           const std::string& peer_address,
                                           const std::string& client_id = "",
                                           const std::string& peer_public_key = "")
      ABSL_LOCKS_EXCLUDED(mu_);
  // Ends the session at the tracker and here. The local session ends even
  // when no tracker answers. FAILED_PRECONDITION when not logged in.
  absl::Status Logout() ABSL_LOCKS_EXCLUDED(mu_);

  // The logged-in user, if any. A session the tracker no longer knows
  // (expired, tracker state lost) ends here too at the next keep-alive.
  std::optional<std::string> user() const ABSL_LOCKS_EXCLUDED(mu_);

  // Called (from the keep-alive thread) when the tracker ended the session
  // on its own, so that the client stops sharing as at a logout. Once this
  // returns, the callback it replaced is not running and will not run: the
  // owner of what that callback touches may go.
  void SetSessionLostCallback(std::function<void()> callback) ABSL_LOCKS_EXCLUDED(mu_);
  // Called (from the keep-alive thread) with each keep-alive's answer: the
  // ticket keys, so that peers follow a key rotation, and the notices not
  // seen yet (acknowledged at the next keep-alive). Replaced as
  // SetSessionLostCallback.
  using KeepAliveCallback = std::function<void(const tv1::KeepAliveResponse& response)>;
  void SetKeepAliveCallback(KeepAliveCallback callback) ABSL_LOCKS_EXCLUDED(mu_);
  // Asked before each keep-alive to fill in what the client tells of
  // itself: the public key to have certified again (peer_public_key, while
  // the certificate lasts ""), the relay it waits at.
  void SetKeepAliveFields(std::function<void(tv1::KeepAliveRequest*)> fill)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Sends the next keep-alive now (what it tells changed).
  void KeepAliveNow() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Attempt {
    tv1::TrackerService::Stub* stub;
    size_t index;
    std::string token;
  };
  Attempt Current() ABSL_LOCKS_EXCLUDED(mu_);
  // Moves past tracker `index` unless another call did so already.
  void Advance(size_t index) ABSL_LOCKS_EXCLUDED(mu_);
  void KeepAliveLoop(std::string token, absl::Duration interval) ABSL_LOCKS_EXCLUDED(mu_);
  void StopKeepAlive() ABSL_LOCKS_EXCLUDED(mu_);

  void Connect(const std::vector<std::shared_ptr<grpc::ChannelCredentials>>& credentials);
  // Why no tracker answered, with the trust's words for a refused one.
  std::string Unreachable(const grpc::Status& first_round) const;

  const std::vector<HostPort> trackers_;
  const absl::Duration call_timeout_;
  const std::shared_ptr<TrackerTrust> trust_;  // null for plaintext or --tls_ca

  mutable absl::Mutex mu_;
  std::vector<std::unique_ptr<tv1::TrackerService::Stub>> stubs_ ABSL_GUARDED_BY(mu_);
  size_t current_ ABSL_GUARDED_BY(mu_) = 0;
  std::string token_ ABSL_GUARDED_BY(mu_);
  std::string user_ ABSL_GUARDED_BY(mu_);
  bool keepalive_stop_ ABSL_GUARDED_BY(mu_) = false;
  std::function<void()> on_session_lost_ ABSL_GUARDED_BY(mu_);
  KeepAliveCallback on_keep_alive_ ABSL_GUARDED_BY(mu_);
  std::function<void(tv1::KeepAliveRequest*)> fill_keep_alive_ ABSL_GUARDED_BY(mu_);
  bool keepalive_now_ ABSL_GUARDED_BY(mu_) = false;
  bool calling_ ABSL_GUARDED_BY(mu_) = false;  // a callback runs
  // Waits until no callback runs, unless this is the keep-alive thread.
  void AwaitNoCallback() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::thread keepalive_;  // joined only by the thread that runs Login/Logout
};

// Why no tracker answered, as a person would say it (gRPC's own text names
// its internals: "failed to connect to all addresses; last error: ...").
std::string DescribeUnreachable(const grpc::Status& status);
// True when `status` says that no answer came (no connection, no reply in
// time), false for an answer of a tracker, UNAVAILABLE ones included.
bool IsTransportFailure(const grpc::Status& status);

// How long a call waits for a tracker's channel to connect once every
// tracker failed fast: a little more than the longest reconnect backoff.
inline constexpr absl::Duration kReconnectWait = absl::Milliseconds(1300);

// A fresh random request-id.
std::string NewRequestId();

template <typename Req, typename Resp>
absl::StatusOr<Resp> TrackerClient::Call(Rpc<Req, Resp> rpc, const Req& request,
                                         std::string request_id) {
  grpc::Status last, first_round, answered;
  if (request_id.empty()) request_id = NewRequestId();
  // A first round fails fast on trackers that are down. When all are, a
  // second round waits a moment for each to connect: a tracker that has
  // just come back is reached once its channel's reconnect backoff (at
  // most a second) runs out, rather than at the next command.
  const size_t attempts = 2 * trackers_.size();
  for (size_t tried = 0; tried < attempts; ++tried) {
    const bool waiting = tried >= trackers_.size();
    if (waiting && (last.error_code() != grpc::StatusCode::UNAVAILABLE || !answered.ok())) break;
    Attempt attempt = Current();
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() +
                     absl::ToChronoMilliseconds(waiting ? std::min(call_timeout_, kReconnectWait)
                                                        : call_timeout_));
    ctx.set_wait_for_ready(waiting);
    if (!attempt.token.empty()) ctx.AddMetadata("authorization", "Bearer " + attempt.token);
    ctx.AddMetadata("request-id", request_id);
    Resp response;
    last = (attempt.stub->*rpc)(&ctx, request, &response);
    if (last.ok()) return response;
    if (last.error_code() != grpc::StatusCode::UNAVAILABLE &&
        last.error_code() != grpc::StatusCode::DEADLINE_EXCEEDED) {
      return FromGrpcStatus(last);
    }
    if (!waiting) first_round = last;
    if (!IsTransportFailure(last)) answered = last;
    Advance(attempt.index);
  }
  std::string names;
  for (const HostPort& t : trackers_) names += (names.empty() ? "" : ", ") + t.ToString();
  if (!answered.ok()) {
    // A tracker answered that it cannot serve (its database is out of
    // reach, say): its own words say what is wrong.
    return absl::UnavailableError("no tracker can serve this now (tried " + names +
                                  "): " + answered.error_message());
  }
  return absl::UnavailableError("no tracker answers (tried " + names +
                                "): " + Unreachable(first_round));
}

}  // namespace groupshare::peer

#endif  // GROUPSHARE_SERVICES_PEER_TRACKER_CLIENT_H_
