#include "services/peer/relay_client.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include <grpcpp/create_channel.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/log.h"
#include "core/status_macros.h"
#include "services/common/grpc_status.h"
#include "services/common/sockets.h"

namespace groupshare::peer {
namespace {

namespace rv1 = ::groupshare::relay::v1;

// How long a holder that did not answer directly is reached through its
// relay before a new link tries directly again.
constexpr absl::Duration kRetryDirect = absl::Minutes(1);
// How long a direct connection may take before the relay is used.
constexpr absl::Duration kDirectTimeout = absl::Seconds(1);
// A session's other side comes within the relay's join timeout.
constexpr absl::Duration kSessionTimeout = absl::Seconds(10);

}  // namespace

absl::Status RequestSession(int fd, const std::string& key) {
  const std::string request =
      absl::StrCat("CONNECT ", key, ":1 HTTP/1.1\r\nHost: ", key, ":1\r\n\r\n");
  if (send(fd, request.data(), request.size(), MSG_NOSIGNAL) !=
      static_cast<ssize_t>(request.size())) {
    return absl::UnavailableError("the relay's session port closed");
  }
  return absl::OkStatus();
}

absl::Status AwaitSession(int fd, absl::Time deadline) {
  std::string answer;
  while (!absl::EndsWith(answer, "\r\n\r\n")) {
    if (answer.size() > 1024 || !WaitForReady(fd, POLLIN, deadline)) {
      return absl::DeadlineExceededError("the relay did not open the session");
    }
    char c;
    if (recv(fd, &c, 1, 0) != 1) return absl::UnavailableError("the relay closed the session");
    answer.push_back(c);
  }
  if (!absl::StartsWith(answer, "HTTP/1.1 200") && !absl::StartsWith(answer, "HTTP/1.0 200")) {
    return absl::UnavailableError(absl::StrCat("the relay refused the session: ",
                                               answer.substr(0, answer.find('\r'))));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Relays>> Relays::Create(const std::string& known_path,
                                                       PeerIdentity* identity) {
  ASSIGN_OR_RETURN(std::shared_ptr<TrackerTrust> trust,
                   TrackerTrust::Create(known_path, "", "relay", "the trackers' relay list"));
  return std::unique_ptr<Relays>(new Relays(std::move(trust), identity));
}

void Relays::Set(const std::vector<std::string>& lines) {
  std::vector<TrackerAddress> relays;
  for (const std::string& line : lines) {
    absl::StatusOr<std::vector<TrackerAddress>> parsed = ParseTrackerInfo(line, "relay");
    if (parsed.ok() && parsed->size() == 1) {
      relays.push_back((*parsed)[0]);
    } else {
      GS_LOG(kWarning) << "the tracker announced a relay that is not one: " << line;
    }
  }
  absl::MutexLock lock(&mu_);
  relays_ = std::move(relays);
}

std::vector<TrackerAddress> Relays::List() const {
  absl::MutexLock lock(&mu_);
  return relays_;
}

absl::StatusOr<std::unique_ptr<rv1::RelayService::Stub>> Relays::Stub(const std::string& relay) {
  TrackerAddress address;
  {
    absl::MutexLock lock(&mu_);
    auto it = std::find_if(relays_.begin(), relays_.end(),
                           [&](const TrackerAddress& r) { return r.ToString() == relay; });
    if (it != relays_.end()) {
      address = *it;
    } else {
      ASSIGN_OR_RETURN(HostPort parsed, ParseHostPort(relay));
      static_cast<HostPort&>(address) = parsed;
    }
  }
  std::shared_ptr<grpc::ChannelCredentials> credentials = grpc::InsecureChannelCredentials();
  if (identity_ != nullptr) {
    ASSIGN_OR_RETURN(KeyAndCert mine, identity_->Current());
    credentials = trust_->CredentialsFor(address, &mine);
  }
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_ENABLE_HTTP_PROXY, 0);
  // A waiting holder learns within a minute that its relay is gone.
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 30000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 20000);
  return rv1::RelayService::NewStub(
      grpc::CreateCustomChannel(address.ToString(), credentials, args));
}

bool Relays::TryDirect(const std::string& address) {
  {
    absl::MutexLock lock(&mu_);
    auto it = unreachable_.find(address);
    if (it != unreachable_.end() && absl::Now() - it->second < kRetryDirect) return false;
  }
  absl::StatusOr<int> fd = DialTcp(address, kDirectTimeout);
  absl::MutexLock lock(&mu_);
  if (fd.ok()) {
    close(*fd);
    unreachable_.erase(address);
    return true;
  }
  unreachable_[address] = absl::Now();
  return false;
}

absl::StatusOr<LinkRoute> Relays::Route(const tracker::v1::Peer& holder, bool direct_only) {
  LinkRoute route;
  if (identity_ != nullptr) {
    ASSIGN_OR_RETURN(route.credentials, identity_->LinkCredentials(holder.user_id()));
  }
  if (holder.relay().empty() || TryDirect(holder.address())) return route;
  if (direct_only) {
    return absl::UnavailableError(absl::StrCat(holder.address(), " does not answer directly"));
  }
  ASSIGN_OR_RETURN(auto stub, Stub(holder.relay()));
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
  rv1::ConnectRequest request;
  request.set_user_id(holder.user_id());
  request.set_peer_address(holder.address());
  rv1::ConnectResponse response;
  grpc::Status status = stub->Connect(&context, request, &response);
  if (!status.ok()) {
    std::string refusal = Refusal(holder.relay());
    return absl::UnavailableError(absl::StrCat(
        "not reachable directly, and its relay ", holder.relay(), " gave no session: ",
        refusal.empty() ? status.error_message() : refusal));
  }
  route.relay_session = response.invitation().session_address();
  route.session_key = response.invitation().key();
  GS_LOG(kInfo) << "reaching " << holder.user_id() << " at " << holder.address()
                << " through relay " << holder.relay();
  return route;
}

RelayWait::RelayWait(Relays* relays, std::string advertised, std::string local,
                     OnChange on_change)
    : relays_(relays),
      advertised_(std::move(advertised)),
      local_(std::move(local)),
      on_change_(std::move(on_change)) {
  thread_ = std::thread([this] { Run(); });
}

RelayWait::~RelayWait() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    if (call_ != nullptr) call_->TryCancel();
  }
  thread_.join();
}

void RelayWait::Run() {
  size_t next = 0;
  absl::Duration backoff = absl::Seconds(1);
  while (true) {
    std::vector<TrackerAddress> relays = relays_->List();
    std::string relay;
    if (!relays.empty()) {
      relay = relays[next++ % relays.size()].ToString();
      absl::StatusOr<std::unique_ptr<relay::v1::RelayService::Stub>> stub = relays_->Stub(relay);
      if (stub.ok()) {
        grpc::ClientContext context;
        {
          absl::MutexLock lock(&mu_);
          if (stopping_) return;
          call_ = &context;
        }
        rv1::JoinRequest request;
        request.set_peer_address(advertised_);
        auto reader = (*stub)->Join(&context, request);
        rv1::JoinResponse message;
        bool joined = false;
        while (reader->Read(&message)) {
          if (message.joined() && !joined) {
            joined = true;
            backoff = absl::Seconds(1);
            on_change_(relay, "");
          } else if (message.has_invitation()) {
            accepting_.Run([this, invitation = message.invitation()] { Accept(invitation); });
          }
        }
        grpc::Status status = reader->Finish();
        {
          absl::MutexLock lock(&mu_);
          call_ = nullptr;
          if (stopping_) return;
        }
        const std::string refusal = relays_->Refusal(relay);
        const std::string why = refusal.empty() ? status.error_message() : refusal;
        if (joined) {
          on_change_("", why);
        } else {
          GS_LOG(kWarning) << "relay " << relay << " did not take this client: " << why;
        }
      } else {
        GS_LOG(kWarning) << "relay " << relay << ": " << stub.status().message();
      }
    }
    absl::MutexLock lock(&mu_);
    if (mu_.AwaitWithTimeout(absl::Condition(&stopping_), backoff)) return;
    backoff = std::min(backoff * 2, absl::Seconds(30));
  }
}

void RelayWait::Accept(const rv1::Invitation& invitation) {
  const absl::Time deadline = absl::Now() + kSessionTimeout;
  absl::StatusOr<int> relay = DialTcp(invitation.session_address(), absl::Seconds(5));
  if (!relay.ok()) {
    GS_LOG(kWarning) << "a relay session: " << relay.status().message();
    return;
  }
  absl::Status joined = RequestSession(*relay, invitation.key());
  if (joined.ok()) joined = AwaitSession(*relay, deadline);
  if (!joined.ok()) {
    GS_LOG(kWarning) << "a relay session: " << joined.message();
    close(*relay);
    return;
  }
  absl::StatusOr<int> local = DialTcp(local_, absl::Seconds(5));
  if (!local.ok()) {
    GS_LOG(kWarning) << "a relay session: this client's own peer service: "
                     << local.status().message();
    close(*relay);
    return;
  }
  splicer_.Add(*relay, *local);
}

}  // namespace groupshare::peer
