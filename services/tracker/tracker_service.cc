#include "services/tracker/tracker_service.h"

#include <algorithm>
#include <limits>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/crypto.h"
#include "core/ids.h"
#include "core/log.h"
#include "core/status_macros.h"
#include "core/tracker_info.h"
#include "services/common/file_info.h"
#include "services/common/grpc_status.h"
#include "services/common/server_setup.h"
#include "services/tracker/list_files_wire.h"
#include "services/tracker/reachability.h"
#include "services/tracker/request_checks.h"

namespace groupshare::tracker {
namespace {

absl::Status ValidateUser(const std::string& id) { return ValidateId("user id", id); }
absl::Status ValidateGroup(const std::string& id) { return ValidateId("group id", id); }

tv1::Relation ToProto(Relation r) {
  switch (r) {
    case Relation::kNone: return tv1::RELATION_NONE;
    case Relation::kPending: return tv1::RELATION_PENDING;
    case Relation::kMember: return tv1::RELATION_MEMBER;
    case Relation::kOwner: return tv1::RELATION_OWNER;
    case Relation::kRejected: return tv1::RELATION_REJECTED;
  }
  return tv1::RELATION_UNSPECIFIED;
}

void ToProto(const FileRecord& f, tv1::FileInfo* out) {
  out->set_name(f.name);
  out->set_size(f.size);
  out->set_piece_size(f.piece_size);
  out->set_sha1(f.sha1);
  for (const std::string& p : f.piece_sha1) out->add_piece_sha1(p);
  for (const std::string& c : f.sha1_chain) out->add_sha1_chain(c);
}

// Logs one line for the request and converts its status. A keep-alive that
// worked, which every client sends every few seconds, is logged at debug.
grpc::Status Finish(const char* method, const std::string& user, absl::Time start,
                    const absl::Status& status) {
  const bool routine = status.ok() && absl::string_view(method) == "KeepAlive";
  if (log::Enabled(routine ? log::kDebug : log::kInfo)) {
    log::Line(routine ? log::kDebug : log::kInfo)
        << method << " user=" << (user.empty() ? "-" : absl::CHexEscape(user))
        << " code=" << absl::StatusCodeToString(status.code())
        << " ms=" << absl::ToDoubleMilliseconds(absl::Now() - start);
  }
  if (!status.ok()) GS_LOG(kDebug) << method << " error: " << status.message();
  return ToGrpcStatus(status);
}

}  // namespace

TicketKeyTimes KeyTimes(const TrackerOptions& options) {
  // Every tracker has read a new key within `refresh`, and every live
  // client has heard of it from a keep-alive within a session's lifetime
  // after that: only then does it sign.
  const absl::Duration refresh = absl::Seconds(5);
  return {options.ticket_ttl, options.session_ttl + refresh, refresh};
}

PeerCaTimes CaTimes(const TrackerOptions& options) {
  const TicketKeyTimes keys = KeyTimes(options);
  return {options.peer_certificate_ttl, keys.lead, keys.refresh};
}

absl::StatusOr<std::unique_ptr<TrackerServiceImpl>> TrackerServiceImpl::Create(
    Store* store, TrackerOptions options) {
  ASSIGN_OR_RETURN(auto keys, TicketKeys::Load(store, KeyTimes(options), options.now()));
  ASSIGN_OR_RETURN(auto authority, PeerAuthority::Load(store, CaTimes(options), options.now()));
  return std::unique_ptr<TrackerServiceImpl>(new TrackerServiceImpl(
      store, std::move(options), std::move(keys), std::move(authority)));
}

TrackerServiceImpl::TrackerServiceImpl(Store* store, TrackerOptions options,
                                       std::unique_ptr<TicketKeys> keys,
                                       std::unique_ptr<PeerAuthority> authority)
    : store_(store),
      options_(std::move(options)),
      keys_(std::move(keys)),
      authority_(std::move(authority)),
      dummy_hash_(HashPassword("not a password", options_.password_iterations)
                      .value_or(std::string())),
      login_guard_(options_.login),
      read_threads_(options_.read_threads > 0 ? std::make_unique<WorkQueue>(options_.read_threads)
                                              : nullptr) {}

grpc::ServerUnaryReactor* TrackerServiceImpl::Serve(grpc::CallbackServerContext* ctx,
                                                    std::function<grpc::Status()> answer,
                                                    bool may_wait) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  if (read_threads_ == nullptr || !may_wait) {
    reactor->Finish(answer());
  } else {
    read_threads_->Run([reactor, answer = std::move(answer)] { reactor->Finish(answer()); });
  }
  return reactor;
}

absl::StatusOr<std::string> TrackerServiceImpl::TokenHash(grpc::ServerContextBase* ctx) const {
  const auto& metadata = ctx->client_metadata();
  auto it = metadata.find("authorization");
  if (it == metadata.end()) {
    return absl::UnauthenticatedError(
        "not logged in: log in first (send 'authorization: Bearer <token>')");
  }
  ASSIGN_OR_RETURN(absl::string_view token,
                   ParseBearer(absl::string_view(it->second.data(), it->second.size())));
  return Sha256Of(token);
}

grpc::Status TrackerServiceImpl::Authed(
    grpc::ServerContextBase* ctx, const char* method,
    const std::function<absl::Status(const Session&)>& body) {
  absl::Time start = absl::Now();
  std::string user = "-";
  absl::Status status = [&]() -> absl::Status {
    ASSIGN_OR_RETURN(std::string token_hash, TokenHash(ctx));
    ASSIGN_OR_RETURN(Session session, store_->GetSession(token_hash));
    user = session.user_id;
    const absl::Time now = options_.now();
    if (now - session.expires >= kSessionComeback) {
      // As if purged already: a day offline ends a session.
      store_->DeleteSession(token_hash).IgnoreError();
      return absl::UnauthenticatedError(
          "the session ended after a day without a call; log in again");
    }
    if (session.expires <= now) {
      // The client could not reach a tracker for a while (trackers
      // restarting, a fail-over, its network): time offline does not end a
      // session, so it is live again from its next call.
      GS_LOG(kInfo) << "session of " << absl::CHexEscape(user) << " is back, "
                    << absl::FormatDuration(now - session.expires) << " after it expired";
      session.expires = now + options_.session_ttl;
      RETURN_IF_ERROR(store_->ExtendSession(token_hash, session.expires, std::nullopt));
    }
    return body(session);
  }();
  return Finish(method, user, start, status);
}

absl::Status TrackerServiceImpl::Once(
    grpc::ServerContext* ctx, const char* method, const std::string& caller,
    const google::protobuf::Message& request, google::protobuf::Message* response,
    const std::function<absl::Status(Store& store)>& body) {
  auto it = ctx->client_metadata().find("request-id");
  if (it == ctx->client_metadata().end()) return body(*store_);
  const absl::string_view id(it->second.data(), it->second.size());
  if (!IsRequestId(id)) {
    return absl::InvalidArgumentError(
        "request-id must be 1 to 64 of the characters A-Z a-z 0-9 . _ -");
  }
  // The request is part of the key: the same id on another request (two
  // callers without a session that picked the same id, say) is another call.
  const std::string key = Sha256Of(
      absl::StrCat(caller, "\n", method, "\n", id, "\n", request.SerializeAsString()));
  // The change and its recorded answer commit together; a retry gets the
  // first call's answer (status and response), not a second application.
  ASSIGN_OR_RETURN(RequestOutcome outcome,
                   store_->RunOnce(key, options_.now(), [&](Store& tx, std::string* serialized) {
                     absl::Status status = body(tx);
                     if (status.ok()) *serialized = response->SerializeAsString();
                     return status;
                   }));
  if (!response->ParseFromString(outcome.response)) {
    return absl::InternalError("a recorded answer does not parse");
  }
  return absl::Status(static_cast<absl::StatusCode>(outcome.code), outcome.message);
}

namespace {

// Answers a callback call through its default reactor, logging as Finish
// does; `done` may be called on any thread, once.
class Answer {
 public:
  Answer(grpc::CallbackServerContext* ctx, const char* method, std::string user)
      : reactor_(ctx->DefaultReactor()), method_(method), user_(std::move(user)) {}
  grpc::ServerUnaryReactor* done(const absl::Status& status) const {
    reactor_->Finish(Finish(method_, user_, start_, status));
    return reactor_;
  }
  grpc::ServerUnaryReactor* reactor() const { return reactor_; }

 private:
  grpc::ServerUnaryReactor* reactor_;
  const char* method_;
  std::string user_;
  absl::Time start_ = absl::Now();
};

absl::Status Cancelled() { return absl::CancelledError("the caller went away"); }

}  // namespace

grpc::ServerUnaryReactor* TrackerServiceImpl::CreateUser(grpc::CallbackServerContext* ctx,
                                                         const tv1::CreateUserRequest* req,
                                                         tv1::CreateUserResponse*) {
  Answer answer(ctx, "CreateUser", req->user_id());
  absl::Status admitted = ValidateUser(req->user_id());
  if (admitted.ok()) admitted = ValidatePassword(req->password());
  if (admitted.ok()) {
    admitted = login_guard_.AdmitSignup(SourceAddress(ctx->peer()), options_.now());
  }
  if (!admitted.ok()) return answer.done(admitted);
  // Hashed before the write transaction, which must not wait on it.
  login_guard_.Hash(/*first=*/false, [this, ctx, req, answer](absl::Status slot) {
    if (slot.ok() && ctx->IsCancelled()) slot = Cancelled();
    if (!slot.ok()) {
      answer.done(slot);
      return;
    }
    absl::StatusOr<std::string> hash = HashPassword(req->password(), options_.password_iterations);
    // Never answered from the record of an earlier call, whatever its
    // request-id: that record could only be keyed without the password (a
    // fast hash of it would give it away), and then an account made by
    // someone else would pass for the caller's. A retry whose first try
    // landed gets ALREADY_EXISTS, which says to log in.
    answer.done(hash.ok() ? store_->CreateUser(req->user_id(), *hash, options_.now())
                          : hash.status());
  });
  return answer.reactor();
}

absl::StatusOr<LoginGuard::Attempt> TrackerServiceImpl::AdmitLogin(
    const grpc::CallbackServerContext& ctx, const tv1::LoginRequest& req) {
  RETURN_IF_ERROR(ValidateUser(req.user_id()));
  RETURN_IF_ERROR(ValidatePassword(req.password()));
  if (!req.peer_address().empty()) {
    RETURN_IF_ERROR(ParseHostPort(req.peer_address()).status());
  }
  if (!req.client_id().empty() && !IsRequestId(req.client_id())) {
    return absl::InvalidArgumentError(
        "client_id must be up to 64 of the characters A-Z a-z 0-9 . _ -");
  }
  LoginGuard::Attempt attempt{req.user_id(), SourceAddress(ctx.peer()), req.client_id()};
  absl::Status admitted = login_guard_.Admit(attempt, options_.now());
  if (admitted.code() == absl::StatusCode::kResourceExhausted && !attempt.client_id.empty()) {
    // Held back: unless the database knows this client as the user's.
    // (Asked only then: a login reads the database once, as before.)
    attempt.known_client = store_->IsKnownClient(req.user_id(), req.client_id()).value_or(false);
    if (attempt.known_client) admitted = login_guard_.Admit(attempt, options_.now());
  }
  RETURN_IF_ERROR(admitted);
  return attempt;
}

grpc::ServerUnaryReactor* TrackerServiceImpl::Login(grpc::CallbackServerContext* ctx,
                                                    const tv1::LoginRequest* req,
                                                    tv1::LoginResponse* resp) {
  Answer answer(ctx, "Login", req->user_id());
  absl::StatusOr<LoginGuard::Attempt> attempt = AdmitLogin(*ctx, *req);
  if (!attempt.ok()) return answer.done(attempt.status());
  const bool first = login_guard_.IsKnown(*attempt);
  login_guard_.Hash(first, [this, ctx, req, resp, answer, attempt = *attempt](absl::Status slot) {
    LoginGuard::Outcome outcome = LoginGuard::Outcome::kAbandoned;
    if (slot.ok() && ctx->IsCancelled()) slot = Cancelled();
    if (slot.ok()) slot = CheckPasswordAndOpenSession(*req, resp, &outcome);
    login_guard_.Record(attempt, outcome, options_.now());
    answer.done(slot);
  });
  return answer.reactor();
}

absl::Status TrackerServiceImpl::CheckPasswordAndOpenSession(const tv1::LoginRequest& req,
                                                             tv1::LoginResponse* resp,
                                                             LoginGuard::Outcome* outcome) {
  // An unknown user costs the same hash as a wrong password and gets the
  // same answer, so that neither the code nor the time tells which
  // accounts exist.
  absl::StatusOr<std::string> hash = store_->GetPasswordHash(req.user_id());
  if (!hash.ok() && hash.status().code() != absl::StatusCode::kNotFound) return hash.status();
  const bool known = hash.ok();
  const bool verified = VerifyPassword(req.password(), known ? *hash : dummy_hash_) && known;
  *outcome = verified ? LoginGuard::Outcome::kSucceeded : LoginGuard::Outcome::kFailed;
  if (!verified) {
    return absl::UnauthenticatedError(absl::StrCat(
        "wrong user id or password for '", req.user_id(),
        "'; check both, or create the account first (CreateUser)"));
  }
  ASSIGN_OR_RETURN(std::string raw, RandomBytes(32));
  std::string token = HexEncode(raw);
  absl::Time now = options_.now();
  const Session session{req.user_id(), req.peer_address(), now + options_.session_ttl,
                        req.client_id()};
  // Before the session opens: a key that is not one opens none.
  RETURN_IF_ERROR(Certify(session, req.peer_public_key(), resp));
  RETURN_IF_ERROR(store_->CreateSession(Sha256Of(token), session, now));
  ASSIGN_OR_RETURN(auto shares, store_->ListShares(req.user_id(), req.client_id()));
  resp->set_token(token);
  resp->set_session_ttl_seconds(
      static_cast<uint32_t>(absl::ToInt64Seconds(options_.session_ttl)));
  resp->set_ticket_public_key(keys_->Signer(now)->PublicKey());
  for (const std::string& relay : options_.relays) resp->add_relays(relay);
  for (std::string& key : keys_->PublicKeys(now)) resp->add_ticket_public_keys(std::move(key));
  for (const ShareView& s : shares) {
    tv1::Share* out = resp->add_shares();
    out->set_group_id(s.group_id);
    out->set_file_name(s.file_name);
    out->set_sha1(s.sha1);
    out->set_size(s.size);
    out->set_complete(s.complete);
  }
  return absl::OkStatus();
}

template <typename Response>
absl::Status TrackerServiceImpl::Certify(const Session& session,
                                         const std::string& public_key_pem,
                                         Response* resp) {
  for (std::string& ca : authority_->CaCertificates(options_.now())) {
    resp->add_peer_ca_certificates(std::move(ca));
  }
  if (public_key_pem.empty()) return absl::OkStatus();
  ASSIGN_OR_RETURN(PeerCertificate cert, authority_->Issue(session.user_id, session.client_id,
                                                           public_key_pem, options_.now()));
  resp->set_peer_certificate(std::move(cert.pem));
  resp->set_peer_certificate_expires_at(absl::ToUnixSeconds(cert.expires));
  return absl::OkStatus();
}

grpc::Status TrackerServiceImpl::Logout(grpc::ServerContext* ctx, const tv1::LogoutRequest*,
                                        tv1::LogoutResponse*) {
  return Authed(ctx, "Logout", [&](const Session&) -> absl::Status {
    ASSIGN_OR_RETURN(std::string token_hash, TokenHash(ctx));
    return store_->DeleteSession(token_hash);
  });
}

grpc::Status TrackerServiceImpl::CheckReachable(grpc::ServerContext* ctx,
                                                const tv1::CheckReachableRequest*,
                                                tv1::CheckReachableResponse* resp) {
  return Authed(ctx, "CheckReachable", [&](const Session& session) -> absl::Status {
    // A connection that nothing answers ties up this call's thread for the
    // timeout: a short one.
    Reachability found =
        tracker::CheckReachable(session.peer_address, SourceAddress(ctx->peer()),
                                absl::Seconds(2));
    resp->set_reachable(found.reachable);
    resp->set_address(session.peer_address);
    resp->set_detail(found.detail);
    return absl::OkStatus();
  });
}

grpc::Status TrackerServiceImpl::GetPeerAuthorities(grpc::ServerContext* ctx,
                                                    const tv1::GetPeerAuthoritiesRequest*,
                                                    tv1::GetPeerAuthoritiesResponse* resp) {
  const absl::Time start = absl::Now();
  for (std::string& ca : authority_->CaCertificates(options_.now())) {
    resp->add_peer_ca_certificates(std::move(ca));
  }
  GS_LOG(kDebug) << "GetPeerAuthorities from " << ctx->peer();
  return Finish("GetPeerAuthorities", "", start, absl::OkStatus());
}

bool TrackerServiceImpl::IsKnownRelay(const std::string& address) const {
  for (const std::string& line : options_.relays) {
    if (line == address || absl::StartsWith(line, absl::StrCat(address, " "))) return true;
  }
  return false;
}

grpc::Status TrackerServiceImpl::KeepAlive(grpc::ServerContext* ctx,
                                           const tv1::KeepAliveRequest* req,
                                           tv1::KeepAliveResponse* resp) {
  return Authed(ctx, "KeepAlive", [&](const Session& session) -> absl::Status {
    ASSIGN_OR_RETURN(std::string token_hash, TokenHash(ctx));
    const absl::Time now = options_.now();
    // Only a relay of the trackers' list: members dial what is named here.
    if (!req->relay().empty() && !IsKnownRelay(req->relay())) {
      return absl::InvalidArgumentError(absl::StrCat(
          "relay '", req->relay(), "' is not one of the relays this tracker announces"));
    }
    RETURN_IF_ERROR(store_->ExtendSession(token_hash, now + options_.session_ttl, req->relay()));
    RETURN_IF_ERROR(Certify(session, req->peer_public_key(), resp));
    for (std::string& key : keys_->PublicKeys(now)) resp->add_ticket_public_keys(std::move(key));
    resp->set_session_ttl_seconds(
        static_cast<uint32_t>(absl::ToInt64Seconds(options_.session_ttl)));
    const int64_t seen = static_cast<int64_t>(
        std::min<uint64_t>(req->notices_seen(), std::numeric_limits<int64_t>::max()));
    ASSIGN_OR_RETURN(std::vector<NoticeView> notices,
                     store_->TakeNotices(session.user_id, seen, 50));
    for (const NoticeView& n : notices) {
      tv1::Notice* out = resp->add_notices();
      out->set_seq(static_cast<uint64_t>(n.seq));
      out->set_kind(tv1::Notice::Kind_IsValid(n.kind) ? static_cast<tv1::Notice::Kind>(n.kind)
                                                      : tv1::Notice::KIND_UNSPECIFIED);
      out->set_group_id(n.group_id);
      out->set_user_id(n.user_id);
    }
    return absl::OkStatus();
  });
}

grpc::Status TrackerServiceImpl::CreateGroup(grpc::ServerContext* ctx,
                                             const tv1::CreateGroupRequest* req,
                                             tv1::CreateGroupResponse* resp) {
  return Authed(ctx, "CreateGroup", [&](const Session& session) -> absl::Status {
    const std::string& user = session.user_id;
    RETURN_IF_ERROR(ValidateGroup(req->group_id()));
    return Once(ctx, "CreateGroup", user, *req, resp, [&](Store& store) {
      return store.CreateGroup(user, req->group_id(), options_.now());
    });
  });
}

grpc::Status TrackerServiceImpl::ListGroups(grpc::ServerContext* ctx,
                                            const tv1::ListGroupsRequest* req,
                                            tv1::ListGroupsResponse* resp) {
  return Authed(ctx, "ListGroups", [&](const Session& session) -> absl::Status {
    const std::string& user = session.user_id;
    ASSIGN_OR_RETURN(PageRequest page, ReadPage(req->page_size(), req->page_token(),
                                                options_.page_size, options_.max_page_size));
    ASSIGN_OR_RETURN(auto groups, store_->ListGroups(user, page));
    if (static_cast<int64_t>(groups.size()) == page.size) {
      resp->set_next_page_token(PageToken(groups.back().group_id));
    }
    for (const GroupView& g : groups) {
      tv1::Group* out = resp->add_groups();
      out->set_group_id(g.group_id);
      out->set_owner(g.owner);
      out->set_member_count(static_cast<uint32_t>(g.member_count));
      out->set_relation(ToProto(g.relation));
    }
    return absl::OkStatus();
  });
}

grpc::Status TrackerServiceImpl::JoinGroup(grpc::ServerContext* ctx,
                                           const tv1::JoinGroupRequest* req,
                                           tv1::JoinGroupResponse* resp) {
  return Authed(ctx, "JoinGroup", [&](const Session& session) -> absl::Status {
    const std::string& user = session.user_id;
    RETURN_IF_ERROR(ValidateGroup(req->group_id()));
    return Once(ctx, "JoinGroup", user, *req, resp, [&](Store& store) {
      return store.RequestJoin(user, req->group_id(), options_.now());
    });
  });
}

grpc::Status TrackerServiceImpl::LeaveGroup(grpc::ServerContext* ctx,
                                            const tv1::LeaveGroupRequest* req,
                                            tv1::LeaveGroupResponse* resp) {
  return Authed(ctx, "LeaveGroup", [&](const Session& session) -> absl::Status {
    const std::string& user = session.user_id;
    RETURN_IF_ERROR(ValidateGroup(req->group_id()));
    return Once(ctx, "LeaveGroup", user, *req, resp, [&](Store& store) -> absl::Status {
      ASSIGN_OR_RETURN(LeaveResult result, store.LeaveGroup(user, req->group_id()));
      resp->set_new_owner(result.new_owner);
      resp->set_group_deleted(result.group_deleted);
      return absl::OkStatus();
    });
  });
}

grpc::Status TrackerServiceImpl::ListRequests(grpc::ServerContext* ctx,
                                              const tv1::ListRequestsRequest* req,
                                              tv1::ListRequestsResponse* resp) {
  return Authed(ctx, "ListRequests", [&](const Session& session) -> absl::Status {
    const std::string& user = session.user_id;
    RETURN_IF_ERROR(ValidateGroup(req->group_id()));
    ASSIGN_OR_RETURN(auto requests, store_->ListRequests(user, req->group_id()));
    for (const JoinRequestView& r : requests) {
      tv1::JoinRequest* out = resp->add_requests();
      out->set_user_id(r.user_id);
      out->set_requested_at(absl::ToUnixSeconds(r.requested_at));
    }
    return absl::OkStatus();
  });
}

grpc::Status TrackerServiceImpl::AcceptRequest(grpc::ServerContext* ctx,
                                               const tv1::AcceptRequestRequest* req,
                                               tv1::AcceptRequestResponse* resp) {
  return Authed(ctx, "AcceptRequest", [&](const Session& session) -> absl::Status {
    const std::string& user = session.user_id;
    RETURN_IF_ERROR(ValidateGroup(req->group_id()));
    RETURN_IF_ERROR(ValidateUser(req->user_id()));
    return Once(ctx, "AcceptRequest", user, *req, resp, [&](Store& store) {
      return store.AnswerRequest(user, req->group_id(), req->user_id(), true, options_.now());
    });
  });
}

grpc::Status TrackerServiceImpl::RejectRequest(grpc::ServerContext* ctx,
                                               const tv1::RejectRequestRequest* req,
                                               tv1::RejectRequestResponse* resp) {
  return Authed(ctx, "RejectRequest", [&](const Session& session) -> absl::Status {
    const std::string& user = session.user_id;
    RETURN_IF_ERROR(ValidateGroup(req->group_id()));
    RETURN_IF_ERROR(ValidateUser(req->user_id()));
    return Once(ctx, "RejectRequest", user, *req, resp, [&](Store& store) {
      return store.AnswerRequest(user, req->group_id(), req->user_id(), false, options_.now());
    });
  });
}

grpc::Status TrackerServiceImpl::UploadFile(grpc::ServerContext* ctx,
                                            const tv1::UploadFileRequest* req,
                                            tv1::UploadFileResponse* resp) {
  return Authed(ctx, "UploadFile", [&](const Session& session) -> absl::Status {
    const std::string& user = session.user_id;
    RETURN_IF_ERROR(ValidateGroup(req->group_id()));
    RETURN_IF_ERROR(ValidateFileInfo(req->file()));
    const tv1::FileInfo& f = req->file();
    FileRecord record{f.name(), f.size(), f.piece_size(), f.sha1(),
                      {f.piece_sha1().begin(), f.piece_sha1().end()},
                      {f.sha1_chain().begin(), f.sha1_chain().end()}};
    return Once(ctx, "UploadFile", user, *req, resp, [&](Store& store) -> absl::Status {
      ASSIGN_OR_RETURN(bool created, store.AddFile(user, session.client_id, req->group_id(),
                                                   record, options_.now()));
      resp->set_created(created);
      return absl::OkStatus();
    });
  });
}

grpc::ServerUnaryReactor* TrackerServiceImpl::ListFiles(grpc::CallbackServerContext* ctx,
                                                        const grpc::ByteBuffer* request,
                                                        grpc::ByteBuffer* response) {
  tv1::ListFilesRequest req;
  grpc::ByteBuffer copy(*request);  // its slices, not their bytes
  if (!grpc::SerializationTraits<tv1::ListFilesRequest>::Deserialize(&copy, &req).ok()) {
    return Serve(ctx, [] {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          "the request is no groupshare.tracker.v1.ListFilesRequest");
    }, /*may_wait=*/false);
  }
  // Nearly every call finds the caller's session and the group's listing in
  // the store's caches; only the others go to a thread that may wait.
  bool may_wait = true;
  if (read_threads_ != nullptr) {
    absl::StatusOr<std::string> token_hash = TokenHash(ctx);
    may_wait = !token_hash.ok() ||
               !store_->CanListFilesFromCache(*token_hash, req.group_id(), options_.now());
  }
  return Serve(ctx, [this, ctx, req = std::move(req), response] {
    return Authed(ctx, "ListFiles", [&](const Session& session) -> absl::Status {
      RETURN_IF_ERROR(ValidateGroup(req.group_id()));
      ASSIGN_OR_RETURN(PageRequest page, ReadPage(req.page_size(), req.page_token(),
                                                  options_.page_size, options_.max_page_size));
      ASSIGN_OR_RETURN(FileListing files,
                       store_->ListFiles(session.user_id, req.group_id(), page, options_.now()));
      const std::string next_page_token = static_cast<int64_t>(files.size()) == page.size
                                              ? PageToken(std::string(files.back().name))
                                              : std::string();
      auto* wire = new std::string(ListFilesResponseWire(files, next_page_token));
      grpc::Slice slice(wire->data(), wire->size(),
                        [](void* owner) { delete static_cast<std::string*>(owner); }, wire);
      *response = grpc::ByteBuffer(&slice, 1);
      return absl::OkStatus();
    });
  }, may_wait);
}

grpc::Status TrackerServiceImpl::GetFilePeers(grpc::ServerContext* ctx,
                                              const tv1::GetFilePeersRequest* req,
                                              tv1::GetFilePeersResponse* resp) {
  return Authed(ctx, "GetFilePeers", [&](const Session& session) -> absl::Status {
    const std::string& user = session.user_id;
    RETURN_IF_ERROR(ValidateGroup(req->group_id()));
    RETURN_IF_ERROR(ValidateFileName(req->file_name()));
    absl::Time now = options_.now();
    ASSIGN_OR_RETURN(FilePeers got, store_->GetFileAndPeers(user, session.client_id,
                                                            req->group_id(), req->file_name(),
                                                            now));
    const FileRecord& file = got.file;
    const std::vector<PeerView>& peers = got.peers;
    absl::Time expires = absl::FromUnixSeconds(absl::ToUnixSeconds(now + options_.ticket_ttl));
    ToProto(file, resp->mutable_file());
    const std::shared_ptr<const TicketSigner> signer = keys_->Signer(now);
    for (const PeerView& p : peers) {
      ASSIGN_OR_RETURN(std::string ticket,
                       signer->Sign({user, req->group_id(), file.sha1, p.address, expires}));
      tv1::Peer* out = resp->add_peers();
      out->set_user_id(p.user_id);
      out->set_address(p.address);
      out->set_complete(p.complete);
      out->set_ticket(std::move(ticket));
      out->set_relay(p.relay);
    }
    resp->set_ticket_expires_at(absl::ToUnixSeconds(expires));
    return absl::OkStatus();
  });
}

grpc::Status TrackerServiceImpl::StopShare(grpc::ServerContext* ctx,
                                           const tv1::StopShareRequest* req,
                                           tv1::StopShareResponse* resp) {
  return Authed(ctx, "StopShare", [&](const Session& session) -> absl::Status {
    const std::string& user = session.user_id;
    RETURN_IF_ERROR(ValidateGroup(req->group_id()));
    RETURN_IF_ERROR(ValidateFileName(req->file_name()));
    return Once(ctx, "StopShare", user, *req, resp, [&](Store& store) {
      return store.RemoveShare(user, session.client_id, req->group_id(), req->file_name());
    });
  });
}

grpc::Status TrackerServiceImpl::AnnounceHolder(grpc::ServerContext* ctx,
                                                const tv1::AnnounceHolderRequest* req,
                                                tv1::AnnounceHolderResponse*) {
  return Authed(ctx, "AnnounceHolder", [&](const Session& session) -> absl::Status {
    const std::string& user = session.user_id;
    RETURN_IF_ERROR(ValidateGroup(req->group_id()));
    RETURN_IF_ERROR(ValidateFileName(req->file_name()));
    const Store::Holding holding = req->complete()       ? Store::Holding::kAll
                                   : req->no_piece_yet() ? Store::Holding::kNothingYet
                                                         : Store::Holding::kSome;
    return store_->AddHolder(user, session.client_id, req->group_id(), req->file_name(),
                             holding);
  });
}

}  // namespace groupshare::tracker
