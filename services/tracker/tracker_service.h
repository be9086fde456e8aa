// groupshare.tracker.v1.TrackerService over a Store: checks the session
// token and the request's ids, calls the store, and maps the result to the
// response. Logs one line per request (method, user, code, duration).
//
// Thread-safe: gRPC calls the handlers from many threads at once.
#ifndef GROUPSHARE_SERVICES_TRACKER_TRACKER_SERVICE_H_
#define GROUPSHARE_SERVICES_TRACKER_TRACKER_SERVICE_H_

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/ticket.h"
#include "core/work_queue.h"
#include "groupshare/tracker/v1/tracker.grpc.pb.h"
#include "services/tracker/login_guard.h"
#include "services/tracker/store.h"
#include "services/tracker/ticket_keys.h"
#include "services/tracker/tls_authority.h"

namespace groupshare::tracker {

namespace tv1 = ::groupshare::tracker::v1;

struct TrackerOptions {
  // A session not kept alive for this long expires.
  absl::Duration session_ttl = absl::Seconds(30);
  // Download tickets are valid for this long.
  absl::Duration ticket_ttl = absl::Minutes(3);
  // PBKDF2 iterations for new password hashes.
  int password_iterations = 200000;
  // Listing pages: the size when the caller names none, and the most.
  int64_t page_size = 500;
  int64_t max_page_size = 1000;
  LoginGuardOptions login;
  // Peer certificates issued at login are valid this long; clients renew
  // theirs with their keep-alives.
  absl::Duration peer_certificate_ttl = absl::Hours(1);
  // The relays announced to clients, as lines of the relay list
  // ("host:port", with " sha256=<hex>" when pinned).
  std::vector<std::string> relays;
  // Threads for the calls answered through the callback API that read the
  // store (ListFiles), when its reads wait on a database server: a call
  // waits there, not on gRPC's threads. 0 (for SQLite, which reads local
  // files): they are answered on gRPC's thread as they come.
  int read_threads = 0;
  // The clock; tests substitute their own.
  std::function<absl::Time()> now = [] { return absl::Now(); };
};

// The times of the ticket keys that follow from the options: a replaced key
// lives a ticket lifetime more, a new one is announced a session's lifetime
// and a refresh before it signs.
TicketKeyTimes KeyTimes(const TrackerOptions& options);
// The same for the peer CAs: a certificate's lifetime, and the ticket keys'
// lead and refresh.
PeerCaTimes CaTimes(const TrackerOptions& options);

// CreateUser and Login are answered through the callback API: while they
// wait for a password-hashing slot they hold no thread, so that a storm of
// them cannot take the threads the other (synchronous) calls run on.
// ListFiles too, the call a crowd of members makes most: a synchronous
// call is handed from gRPC's thread to a worker and back, which cost more
// than the listing itself. Its answer is written in wire form
// (list_files_wire.h), not built as a message.
class TrackerServiceImpl final
    : public tv1::TrackerService::WithCallbackMethod_CreateUser<
          tv1::TrackerService::WithCallbackMethod_Login<
              tv1::TrackerService::WithRawCallbackMethod_ListFiles<
                  tv1::TrackerService::Service>>> {
 public:
  // Loads the ticket signing keys from the store, creating the first.
  // `store` must outlive the service.
  static absl::StatusOr<std::unique_ptr<TrackerServiceImpl>> Create(
      Store* store, TrackerOptions options);

  grpc::ServerUnaryReactor* CreateUser(grpc::CallbackServerContext* ctx,
                                       const tv1::CreateUserRequest* req,
                                       tv1::CreateUserResponse* resp) override;
  grpc::ServerUnaryReactor* Login(grpc::CallbackServerContext* ctx,
                                  const tv1::LoginRequest* req,
                                  tv1::LoginResponse* resp) override;
  grpc::Status Logout(grpc::ServerContext* ctx, const tv1::LogoutRequest* req,
                      tv1::LogoutResponse* resp) override;
  grpc::Status KeepAlive(grpc::ServerContext* ctx, const tv1::KeepAliveRequest* req,
                         tv1::KeepAliveResponse* resp) override;
  grpc::Status CheckReachable(grpc::ServerContext* ctx, const tv1::CheckReachableRequest* req,
                              tv1::CheckReachableResponse* resp) override;
  grpc::Status GetPeerAuthorities(grpc::ServerContext* ctx,
                                  const tv1::GetPeerAuthoritiesRequest* req,
                                  tv1::GetPeerAuthoritiesResponse* resp) override;
  grpc::Status CreateGroup(grpc::ServerContext* ctx, const tv1::CreateGroupRequest* req,
                           tv1::CreateGroupResponse* resp) override;
  grpc::Status ListGroups(grpc::ServerContext* ctx, const tv1::ListGroupsRequest* req,
                          tv1::ListGroupsResponse* resp) override;
  grpc::Status JoinGroup(grpc::ServerContext* ctx, const tv1::JoinGroupRequest* req,
                         tv1::JoinGroupResponse* resp) override;
  grpc::Status LeaveGroup(grpc::ServerContext* ctx, const tv1::LeaveGroupRequest* req,
                          tv1::LeaveGroupResponse* resp) override;
  grpc::Status ListRequests(grpc::ServerContext* ctx, const tv1::ListRequestsRequest* req,
                            tv1::ListRequestsResponse* resp) override;
  grpc::Status AcceptRequest(grpc::ServerContext* ctx,
                             const tv1::AcceptRequestRequest* req,
                             tv1::AcceptRequestResponse* resp) override;
  grpc::Status RejectRequest(grpc::ServerContext* ctx,
                             const tv1::RejectRequestRequest* req,
                             tv1::RejectRequestResponse* resp) override;
  grpc::Status UploadFile(grpc::ServerContext* ctx, const tv1::UploadFileRequest* req,
                          tv1::UploadFileResponse* resp) override;
  grpc::ServerUnaryReactor* ListFiles(grpc::CallbackServerContext* ctx,
                                      const grpc::ByteBuffer* request,
                                      grpc::ByteBuffer* response) override;
  grpc::Status GetFilePeers(grpc::ServerContext* ctx, const tv1::GetFilePeersRequest* req,
                            tv1::GetFilePeersResponse* resp) override;
  grpc::Status StopShare(grpc::ServerContext* ctx, const tv1::StopShareRequest* req,
                         tv1::StopShareResponse* resp) override;
  grpc::Status AnnounceHolder(grpc::ServerContext* ctx,
                              const tv1::AnnounceHolderRequest* req,
                              tv1::AnnounceHolderResponse* resp) override;

  // Whether `address` (host:port) is a relay of options_.relays.
  bool IsKnownRelay(const std::string& address) const;

 private:
  TrackerServiceImpl(Store* store, TrackerOptions options, std::unique_ptr<TicketKeys> keys,
                     std::unique_ptr<PeerAuthority> authority);
  // Issues a peer certificate for `public_key_pem` (none when it is empty)
  // and lists the CA certificates, into a Login or KeepAlive response.
  template <typename Response>
  absl::Status Certify(const Session& session, const std::string& public_key_pem,
                       Response* resp);

  // Answers a callback call with `answer`'s status: on gRPC's thread, or
  // on read_threads_ when there are some and the answer may wait on the
  // database.
  grpc::ServerUnaryReactor* Serve(grpc::CallbackServerContext* ctx,
                                  std::function<grpc::Status()> answer, bool may_wait);
  // Runs `body` for an authenticated caller: reads the bearer token, finds
  // its live session, then calls body(user_id). Logs and converts the result.
  grpc::Status Authed(grpc::ServerContextBase* ctx, const char* method,
                      const std::function<absl::Status(const Session& session)>& body);
  // Runs `body`, which changes state through the store it is given and
  // fills `response`, once per request-id of `caller` and `request` (see
  // tracker.proto), in the transaction that records its answer; a call
  // without a request-id just runs, on store_.
  absl::Status Once(grpc::ServerContext* ctx, const char* method, const std::string& caller,
                    const google::protobuf::Message& request,
                    google::protobuf::Message* response,
                    const std::function<absl::Status(Store& store)>& body);
  // Login's checks before its password is: the request's form and the
  // guard's backoffs. The attempt admitted, which must be Record()ed.
  absl::StatusOr<LoginGuard::Attempt> AdmitLogin(const grpc::CallbackServerContext& ctx,
                                                 const tv1::LoginRequest& req);
  // Login's part on a hashing slot: checks the password and opens the
  // session. Sets `outcome` once the password was checked.
  absl::Status CheckPasswordAndOpenSession(const tv1::LoginRequest& req,
                                           tv1::LoginResponse* resp,
                                           LoginGuard::Outcome* outcome);
  absl::StatusOr<std::string> TokenHash(grpc::ServerContextBase* ctx) const;

  Store* const store_;
  const TrackerOptions options_;
  const std::unique_ptr<TicketKeys> keys_;
  const std::unique_ptr<PeerAuthority> authority_;
  // What an unknown user's password is checked against (see Login).
  const std::string dummy_hash_;
  LoginGuard login_guard_;
  const std::unique_ptr<WorkQueue> read_threads_;  // null: answers on gRPC's threads
};

}  // namespace groupshare::tracker

#endif  // GROUPSHARE_SERVICES_TRACKER_TRACKER_SERVICE_H_
