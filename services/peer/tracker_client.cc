#include "services/peer/tracker_client.h"

#include <algorithm>
#include <initializer_list>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "core/bitfield.h"
#include "core/log.h"

namespace groupshare::peer {

namespace {

bool Contains(const std::string& text, std::initializer_list<const char*> any) {
  for (const char* needle : any) {
    if (text.find(needle) != std::string::npos) return true;
  }
  return false;
}

// gRPC's words for a connection that was up and broke off.
constexpr std::initializer_list<const char*> kBrokenConnection = {
    "Socket closed", "Connection reset", "Broken pipe", "GOAWAY", "keepalive watchdog",
    "Empty update"};

}  // namespace

TrackerClient::TrackerClient(std::vector<HostPort> trackers,
                             std::shared_ptr<grpc::ChannelCredentials> credentials,
                             absl::Duration call_timeout)
    : trackers_(std::move(trackers)), call_timeout_(call_timeout) {
  if (credentials == nullptr) credentials = grpc::InsecureChannelCredentials();
  Connect(std::vector<std::shared_ptr<grpc::ChannelCredentials>>(trackers_.size(), credentials));
}

TrackerClient::TrackerClient(const std::vector<TrackerAddress>& trackers,
                             std::shared_ptr<TrackerTrust> trust, absl::Duration call_timeout)
    : trackers_(trackers.begin(), trackers.end()),
      call_timeout_(call_timeout),
      trust_(std::move(trust)) {
  std::vector<std::shared_ptr<grpc::ChannelCredentials>> credentials;
  for (const TrackerAddress& t : trackers) credentials.push_back(trust_->CredentialsFor(t));
  Connect(credentials);
}

void TrackerClient::Connect(
    const std::vector<std::shared_ptr<grpc::ChannelCredentials>>& credentials) {
  // gRPC's reconnect backoff grows towards two minutes; a tracker that was
  // down for a while should be reached within a second of coming back.
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 250);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 250);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  // A GetFilePeers reply holds a file's hashes, and its peers within
  // gRPC's default of 4 MiB.
  args.SetMaxReceiveMessageSize(kMaxFileInfoBytes + (4 << 20));
  absl::MutexLock lock(&mu_);
  for (size_t i = 0; i < trackers_.size(); ++i) {
    stubs_.push_back(tv1::TrackerService::NewStub(
        grpc::CreateCustomChannel(trackers_[i].ToString(), credentials[i], args)));
  }
}

std::string TrackerClient::Unreachable(const grpc::Status& first_round) const {
  std::string refused;
  if (trust_ != nullptr) {
    for (const HostPort& t : trackers_) {
      if (std::string why = trust_->Refusal(t.ToString()); !why.empty()) {
        absl::StrAppend(&refused, refused.empty() ? "" : " ", why);
      }
    }
  }
  if (!refused.empty()) return refused;
  std::string why = DescribeUnreachable(first_round);
  // A connection that closes at once is what TLS and plaintext make of
  // each other.
  const std::string& raw = first_round.error_message();
  if (Contains(raw, kBrokenConnection) || Contains(raw, {"Handshake", "handshake"})) {
    absl::StrAppend(&why, trust_ == nullptr
                              ? "; this client runs --plaintext: a tracker serving TLS (the "
                                "default) closes such connections"
                              : "; a tracker run with --plaintext closes TLS connections: give "
                                "this client --plaintext too, or run the tracker without it");
  }
  return why + "; check that a tracker runs and try again";
}

void TrackerClient::SetKeepAliveFields(std::function<void(tv1::KeepAliveRequest*)> fill) {
  absl::MutexLock lock(&mu_);
  fill_keep_alive_ = std::move(fill);
}

void TrackerClient::KeepAliveNow() {
  absl::MutexLock lock(&mu_);
  keepalive_now_ = true;
}


bool IsTransportFailure(const grpc::Status& status) {
  if (status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) return true;
  if (status.error_code() != grpc::StatusCode::UNAVAILABLE) return false;
  // gRPC's own words; a tracker's own UNAVAILABLE says something else.
  const std::string& m = status.error_message();
  return m.empty() || Contains(m, kBrokenConnection) ||
         Contains(m, {"failed to connect", "Failed to connect", "DNS resolution failed"});
}

std::string DescribeUnreachable(const grpc::Status& status) {
  const std::string& raw = status.error_message();
  if (status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
    return "none answered in time";
  }
  if (raw.find("Connection refused") != std::string::npos) {
    return "nothing listens at those addresses";
  }
  if (raw.find("No route to host") != std::string::npos ||
      raw.find("Network is unreachable") != std::string::npos) {
    return "this machine has no route to them";
  }
  if (raw.find("DNS") != std::string::npos || raw.find("resolve") != std::string::npos) {
    return "their names do not resolve";
  }
  if (Contains(raw, kBrokenConnection)) return "the connection broke off and none answers again";
  return raw;
}

std::string NewRequestId() {
  // Unique enough among one user's calls of the last hour; not a secret.
  thread_local absl::BitGen gen;
  return absl::StrCat(absl::Hex(absl::Uniform<uint64_t>(gen), absl::kZeroPad16),
                      absl::Hex(absl::Uniform<uint64_t>(gen), absl::kZeroPad16));
}

TrackerClient::~TrackerClient() { StopKeepAlive(); }

TrackerClient::Attempt TrackerClient::Current() {
  absl::MutexLock lock(&mu_);
  return {stubs_[current_].get(), current_, token_};
}

void TrackerClient::Advance(size_t index) {
  absl::MutexLock lock(&mu_);
  if (current_ == index && stubs_.size() > 1) {
    current_ = (current_ + 1) % stubs_.size();
    GS_LOG(kWarning) << "tracker " << trackers_[index].ToString()
                     << " does not answer; trying " << trackers_[current_].ToString();
  }
}

void TrackerClient::AwaitNoCallback() {
  // Waits out a call under way, unless this is that call.
  if (std::this_thread::get_id() != keepalive_.get_id()) {
    auto idle = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !calling_; };
    mu_.Await(absl::Condition(&idle));
  }
}

void TrackerClient::SetSessionLostCallback(std::function<void()> callback) {
  absl::MutexLock lock(&mu_);
  AwaitNoCallback();
  on_session_lost_ = std::move(callback);
}

void TrackerClient::SetKeepAliveCallback(KeepAliveCallback callback) {
  absl::MutexLock lock(&mu_);
  AwaitNoCallback();
  on_keep_alive_ = std::move(callback);
}

std::optional<std::string> TrackerClient::user() const {
  absl::MutexLock lock(&mu_);
  if (token_.empty()) return std::nullopt;
  return user_;
}

absl::StatusOr<tv1::LoginResponse> TrackerClient::Login(const std::string& user_id,
                                                        const std::string& password,
                                                        const std::string& peer_address,
                                                        const std::string& client_id,
                                                        const std::string& peer_public_key) {
  {
    absl::MutexLock lock(&mu_);
    if (!token_.empty()) {
      return absl::FailedPreconditionError("already logged in as " + user_ +
                                           "; logout first");
    }
  }
  StopKeepAlive();  // a loop left from a session that expired
  tv1::LoginRequest request;
  request.set_user_id(user_id);
  request.set_password(password);
  request.set_peer_address(peer_address);
  request.set_client_id(client_id);
  request.set_peer_public_key(peer_public_key);
  auto response = Call(&tv1::TrackerService::Stub::Login, request);
  if (!response.ok()) return response.status();
  absl::Duration interval =
      std::max(absl::Seconds(response->session_ttl_seconds()) / 3, absl::Seconds(1));
  {
    absl::MutexLock lock(&mu_);
    token_ = response->token();
    user_ = user_id;
    keepalive_stop_ = false;
  }
  keepalive_ = std::thread(&TrackerClient::KeepAliveLoop, this, response->token(), interval);
  return response;
}

absl::Status TrackerClient::Logout() {
  if (!user().has_value()) {
    return absl::FailedPreconditionError("not logged in");
  }
  auto response = Call(&tv1::TrackerService::Stub::Logout, tv1::LogoutRequest());
  StopKeepAlive();
  absl::MutexLock lock(&mu_);
  token_.clear();
  user_.clear();
  if (!response.ok() && response.status().code() != absl::StatusCode::kUnauthenticated) {
    GS_LOG(kWarning) << "logout did not reach the tracker: " << response.status();
  }
  return absl::OkStatus();
}

void TrackerClient::KeepAliveLoop(std::string token, absl::Duration interval) {
  // After a failure (no tracker answers) the next try comes sooner, from
  // half a second doubling back to the interval: the session lives on, and
  // is kept alive again within a second or so of a tracker's return.
  absl::Duration wait = interval;
  bool failing = false;
  tv1::KeepAliveRequest request;  // with the notices seen so far
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      auto woken = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return keepalive_stop_ || keepalive_now_;
      };
      mu_.AwaitWithTimeout(absl::Condition(&woken), wait);
      if (keepalive_stop_ || token_ != token) return;
      keepalive_now_ = false;
      request.clear_peer_public_key();
      request.clear_relay();
      if (fill_keep_alive_) fill_keep_alive_(&request);
    }
    auto response = Call(&tv1::TrackerService::Stub::KeepAlive, request);
    if (response.ok()) {
      if (failing) GS_LOG(kInfo) << "a tracker answers again; the session goes on";
      failing = false;
      wait = interval;
      KeepAliveCallback told;
      {
        absl::MutexLock lock(&mu_);
        if (token_ != token) return;
        told = on_keep_alive_;
        calling_ = told != nullptr;
      }
      if (told) {
        told(*response);
        for (const tv1::Notice& n : response->notices()) {
          request.set_notices_seen(std::max(request.notices_seen(), n.seq()));
        }
      }
      absl::MutexLock lock(&mu_);
      calling_ = false;
      continue;
    }
    if (response.status().code() != absl::StatusCode::kUnauthenticated) {
      wait = failing ? std::min(wait * 2, interval) : absl::Milliseconds(500);
      failing = true;
      GS_LOG(kWarning) << "keep-alive failed (next try in " << absl::FormatDuration(wait)
                       << "): " << response.status();
    } else {
      GS_LOG(kWarning) << "keep-alive refused: " << response.status();
      std::function<void()> lost;
      {
        absl::MutexLock lock(&mu_);
        if (token_ != token) return;
        token_.clear();
        user_.clear();
        lost = on_session_lost_;
        calling_ = lost != nullptr;
      }
      GS_LOG(kWarning) << "the tracker ended the session; log in again";
      if (lost) {
        lost();
        absl::MutexLock lock(&mu_);
        calling_ = false;
      }
      return;
    }
  }
}

void TrackerClient::StopKeepAlive() {
  {
    absl::MutexLock lock(&mu_);
    keepalive_stop_ = true;
  }
  if (keepalive_.joinable()) keepalive_.join();
}

}  // namespace groupshare::peer
