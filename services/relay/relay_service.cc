#include "services/relay/relay_service.h"

#include <deque>
#include <optional>

#include "absl/strings/str_cat.h"
#include "core/log.h"
#include "core/tracker_info.h"
#include "services/common/grpc_status.h"
#include "services/common/server_setup.h"
#include "services/peer/peer_identity.h"

namespace groupshare::relay {
namespace {

// The member a call comes from: the user its certificate names, or (with
// --plaintext only) its address. PERMISSION_DENIED otherwise.
absl::StatusOr<std::string> Caller(const grpc::CallbackServerContext& context, bool plaintext) {
  std::optional<std::string> user = peer::PeerIdentity::CertifiedUser(context);
  if (user.has_value() && !user->empty()) return *user;
  if (plaintext && !user.has_value()) return SourceAddress(context.peer());
  return absl::PermissionDeniedError(
      "only members with a certificate from the trackers may use this relay: log in first");
}

}  // namespace

// One holder waiting in Join: the invitations for it, written one at a
// time. Deletes itself when gRPC is done with the call.
class RelayServiceImpl::Holder final : public grpc::ServerWriteReactor<v1::JoinResponse> {
 public:
  // `caller`: whom the holder counts against (its user, or its address
  // over plaintext).
  Holder(RelayServiceImpl* service, HolderKey key, std::string caller)
      : service_(service), key_(std::move(key)), caller_(std::move(caller)) {}

  void Send(v1::JoinResponse message) ABSL_LOCKS_EXCLUDED(mu_) {
    const v1::JoinResponse* next = nullptr;
    {
      absl::MutexLock lock(&mu_);
      if (finished_) return;
      queue_.push_back(std::move(message));
      if (writing_) return;
      writing_ = true;
      next = &queue_.front();
    }
    StartWrite(next);
  }

  // Ends the call with `status` (once).
  void End(const grpc::Status& status) ABSL_LOCKS_EXCLUDED(mu_) {
    {
      absl::MutexLock lock(&mu_);
      if (finished_) return;
      finished_ = true;
      // A write under way finishes first; OnWriteDone ends the call then.
      if (writing_) {
        end_status_ = status;
        return;
      }
    }
    Finish(status);
  }

  void OnWriteDone(bool ok) override ABSL_LOCKS_EXCLUDED(mu_) {
    const v1::JoinResponse* next = nullptr;
    std::optional<grpc::Status> end;
    {
      absl::MutexLock lock(&mu_);
      queue_.pop_front();
      if (!ok) {
        writing_ = false;
        if (finished_) return;
        finished_ = true;
        end = grpc::Status(grpc::StatusCode::UNAVAILABLE, "the holder went away");
      } else if (finished_) {
        writing_ = false;
        end = end_status_;
      } else if (!queue_.empty()) {
        next = &queue_.front();
      } else {
        writing_ = false;
      }
    }
    if (end.has_value()) {
      Finish(*end);
    } else if (next != nullptr) {
      StartWrite(next);
    }
  }

  void OnCancel() override { End(grpc::Status::CANCELLED); }

  void OnDone() override {
    service_->Left(key_, caller_, this);
    delete this;
  }

 private:
  RelayServiceImpl* const service_;
  const HolderKey key_;
  const std::string caller_;
  absl::Mutex mu_;
  std::deque<v1::JoinResponse> queue_ ABSL_GUARDED_BY(mu_);  // the front one is being written
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  grpc::Status end_status_ ABSL_GUARDED_BY(mu_);
};

RelayServiceImpl::RelayServiceImpl(Sessions* sessions, RelayOptions options)
    : sessions_(sessions), options_(std::move(options)) {}

RelayServiceImpl::~RelayServiceImpl() { Stop(); }

grpc::ServerWriteReactor<v1::JoinResponse>* RelayServiceImpl::Join(
    grpc::CallbackServerContext* context, const v1::JoinRequest* request) {
  absl::StatusOr<std::string> user = Caller(*context, options_.plaintext);
  // Over plaintext nothing names the user: members find a holder by its
  // address alone.
  HolderKey key{user.ok() && !options_.plaintext ? *user : "", request->peer_address()};
  auto* holder = new Holder(this, key, user.ok() ? *user : "");
  if (!user.ok()) {
    holder->End(ToGrpcStatus(user.status()));
    return holder;
  }
  if (!ParseHostPort(request->peer_address()).ok()) {
    holder->End(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                             "peer_address must be the host:port this client advertises"));
    return holder;
  }
  {
    // A holder found in holders_ under mu_ is alive: OnDone leaves holders_
    // (under mu_) before it deletes one.
    absl::MutexLock lock(&mu_);
    auto it = holders_.find(key);
    if (it != holders_.end()) {
      // The same client joined again (a new connection).
      it->second->End(grpc::Status(grpc::StatusCode::ABORTED, "joined again on another call"));
      it->second = holder;
    } else if (const bool full = static_cast<int>(holders_.size()) >= options_.max_holders;
               stopped_ || full || holders_by_user_[*user] >= options_.max_holders_per_user) {
      holder->End(grpc::Status(
          grpc::StatusCode::RESOURCE_EXHAUSTED,
          stopped_ ? "this relay is stopping"
                   : absl::StrCat("this relay holds as many waiting clients as it may (",
                                  full ? options_.max_holders : options_.max_holders_per_user,
                                  full ? " in all" : " per user", "); try another relay")));
      return holder;
    } else {
      holders_[key] = holder;
      ++holders_by_user_[*user];
    }
  }
  GS_LOG(kInfo) << "relay: " << *user << " at " << request->peer_address() << " waits here";
  v1::JoinResponse joined;
  joined.set_joined(true);
  holder->Send(std::move(joined));
  return holder;
}

void RelayServiceImpl::Left(const HolderKey& key, const std::string& caller, Holder* holder) {
  absl::MutexLock lock(&mu_);
  auto it = holders_.find(key);
  if (it == holders_.end() || it->second != holder) return;
  holders_.erase(it);
  auto user = holders_by_user_.find(caller);
  if (user != holders_by_user_.end() && --user->second <= 0) holders_by_user_.erase(user);
}

grpc::ServerUnaryReactor* RelayServiceImpl::Connect(grpc::CallbackServerContext* context,
                                                    const v1::ConnectRequest* request,
                                                    v1::ConnectResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::Status status = [&]() -> absl::Status {
    absl::StatusOr<std::string> user = Caller(*context, options_.plaintext);
    if (!user.ok()) return user.status();
    absl::StatusOr<Sessions::Keys> keys;
    {
      absl::MutexLock lock(&mu_);
      auto it = holders_.find(
          {options_.plaintext ? "" : request->user_id(), request->peer_address()});
      if (it == holders_.end()) {
        return absl::NotFoundError(absl::StrCat(request->user_id(), " at ",
                                                request->peer_address(),
                                                " does not wait at this relay"));
      }
      keys = sessions_->Open(*user);
      if (!keys.ok()) return keys.status();
      v1::JoinResponse invitation;
      invitation.mutable_invitation()->set_key(keys->holder);
      invitation.mutable_invitation()->set_session_address(options_.session_address);
      it->second->Send(std::move(invitation));
    }
    response->mutable_invitation()->set_key(keys->member);
    response->mutable_invitation()->set_session_address(options_.session_address);
    GS_LOG(kDebug) << "relay: session of " << *user << " with " << request->user_id();
    return absl::OkStatus();
  }();
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

void RelayServiceImpl::Stop() {
  absl::MutexLock lock(&mu_);
  stopped_ = true;
  // Under mu_: see Join.
  for (auto& [key, holder] : holders_) {
    holder->End(grpc::Status(grpc::StatusCode::UNAVAILABLE, "the relay is stopping"));
  }
}

int RelayServiceImpl::holders() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(holders_.size());
}

}  // namespace groupshare::relay
