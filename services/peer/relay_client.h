// The client's side of the relays (proto/groupshare/relay/v1/relay.proto).
//
// - Relays: the relays the tracker announced, how this client knows them
//   (a pin in the list, or trust on first use recorded in its state folder)
//   and how it shows itself to them (its member certificate). It routes
//   links: directly to a holder that answers, through the holder's relay
//   to one that does not.
// - RelayWait: a holder that other members cannot reach waits at a relay,
//   and splices each session the relay invites it to onto its own peer
//   service, which runs the TLS with the member at the other end.
//
// Thread-safe.
#ifndef GROUPSHARE_SERVICES_PEER_RELAY_CLIENT_H_
#define GROUPSHARE_SERVICES_PEER_RELAY_CLIENT_H_

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "core/tracker_info.h"
#include "core/work_queue.h"
#include "groupshare/relay/v1/relay.grpc.pb.h"
#include "groupshare/tracker/v1/tracker.pb.h"
#include "services/common/splicer.h"
#include "services/peer/peer_identity.h"
#include "services/peer/peer_link.h"
#include "services/peer/tracker_trust.h"

namespace groupshare::peer {

class Relays {
 public:
  // `identity`: what this client shows (null: plaintext, to relays run
  // with --plaintext). `known_path`: fingerprints of relays trusted on
  // first use.
  static absl::StatusOr<std::unique_ptr<Relays>> Create(const std::string& known_path,
                                                        PeerIdentity* identity);

  // The relays the tracker announced (lines "host:port [sha256=<hex>]");
  // unreadable lines are skipped.
  void Set(const std::vector<std::string>& lines) ABSL_LOCKS_EXCLUDED(mu_);
  std::vector<TrackerAddress> List() const ABSL_LOCKS_EXCLUDED(mu_);

  // A stub for `relay` (host:port). UNAVAILABLE before this client has a
  // certificate.
  absl::StatusOr<std::unique_ptr<relay::v1::RelayService::Stub>> Stub(const std::string& relay)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Why `relay`'s certificate was refused last, if it was.
  std::string Refusal(const std::string& relay) const { return trust_->Refusal(relay); }

  // How a link reaches `holder`: directly when it waits at no relay or
  // answers at its address (tried again a minute after it did not), else
  // through a session at its relay. With `direct_only`, UNAVAILABLE rather
  // than a relay session.
  absl::StatusOr<LinkRoute> Route(const tracker::v1::Peer& holder, bool direct_only)
      ABSL_LOCKS_EXCLUDED(mu_);

 private:
  Relays(std::shared_ptr<TrackerTrust> trust, PeerIdentity* identity)
      : trust_(std::move(trust)), identity_(identity) {}
  bool TryDirect(const std::string& address) ABSL_LOCKS_EXCLUDED(mu_);

  const std::shared_ptr<TrackerTrust> trust_;
  PeerIdentity* const identity_;
  mutable absl::Mutex mu_;
  std::vector<TrackerAddress> relays_ ABSL_GUARDED_BY(mu_);
  // Holders that did not answer directly, and when.
  std::map<std::string, absl::Time> unreachable_ ABSL_GUARDED_BY(mu_);
};

class RelayWait {
 public:
  // Told when this client starts waiting at `relay` (why empty), or stops
  // (relay empty, why says what happened).
  using OnChange = std::function<void(const std::string& relay, const std::string& why)>;

  // Waits at the relays of `relays` in turn, as `advertised`, and splices
  // sessions to `local` (this client's peer service).
  RelayWait(Relays* relays, std::string advertised, std::string local, OnChange on_change);
  // Stops waiting; sessions under way end.
  ~RelayWait();

 private:
  void Run();
  void Accept(const relay::v1::Invitation& invitation);

  Relays* const relays_;
  const std::string advertised_;
  const std::string local_;
  const OnChange on_change_;
  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  grpc::ClientContext* call_ ABSL_GUARDED_BY(mu_) = nullptr;
  Splicer splicer_{Splicer::Options{.idle_timeout = absl::Minutes(10)}};
  WorkQueue accepting_{2};
  std::thread thread_;
};

// Joining a relay session on `fd`, a connection to the relay's session
// port, in two halves: each side asks for its key's session, then waits
// until the other side is there too ("HTTP/1.1 200").
absl::Status RequestSession(int fd, const std::string& key);
absl::Status AwaitSession(int fd, absl::Time deadline);

}  // namespace groupshare::peer

#endif  // GROUPSHARE_SERVICES_PEER_RELAY_CLIENT_H_
