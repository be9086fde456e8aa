// The relay's session port: plain TCP, where both sides of a session
// arrive with "CONNECT <key>:<port> HTTP/1.1" and a blank line (as to an
// HTTP proxy, which is how a gRPC channel of the member that asked for the
// session dials it). The two connections of one session are paired and
// spliced; the relay never reads past the request line.
//
// Bounds: sessions in all and per user, from Open until their splice ends;
// connections waiting to say their key (each for at most
// `request_timeout`); a session's keys last `join_timeout`; and the
// splicer's rates and idle timeout.
//
// Waiting connections are bounded in all and per source address. A new
// connection past a bound takes the place of the oldest waiting one from its
// own address, or else from the address that holds the most (the oldest of
// all when no address holds more than one more than its own). A member says
// its key as soon as it connects, so what waits longest is what never will:
// connections that stay silent, from however many addresses, do not keep
// members out, and a fast flood from some addresses displaces only its own.
//
// Thread-safe. No gRPC inside.
#ifndef GROUPSHARE_SERVICES_RELAY_SESSIONS_H_
#define GROUPSHARE_SERVICES_RELAY_SESSIONS_H_

#include <deque>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "services/common/splicer.h"

namespace groupshare::relay {

struct SessionLimits {
  int max_sessions = 100;
  int max_sessions_per_user = 10;
  int max_waiting = 256;
  int max_waiting_per_address = 16;
  absl::Duration request_timeout = absl::Seconds(5);
  absl::Duration join_timeout = absl::Seconds(10);
  Splicer::Options splice;
};

class Sessions {
 public:
  struct Keys {
    std::string member;  // for the member that asked
    std::string holder;  // for the holder it asked for
  };

  explicit Sessions(SessionLimits limits);
  ~Sessions();

  // Listens on "host:port" (port 0: any) and starts serving. Returns the
  // bound port; UNAVAILABLE when the address cannot be bound.
  absl::StatusOr<int> Listen(const std::string& address) ABSL_LOCKS_EXCLUDED(mu_);

  // A new session that `user` asked for, or RESOURCE_EXHAUSTED saying
  // which limit it met.
  absl::StatusOr<Keys> Open(const std::string& user) ABSL_LOCKS_EXCLUDED(mu_);

  int open_sessions() const ABSL_LOCKS_EXCLUDED(mu_);
  size_t spliced() const { return splicer_.pairs(); }
  uint64_t bytes_relayed() const { return splicer_.bytes_moved(); }

 private:
  struct Session;
  struct Waiting;
  void Run();
  void Accept();
  void Read(Waiting* w);
  // Stops watching a waiting connection and forgets it; closes it unless
  // it is handed on.
  void StopWaiting(int fd, bool close_it);
  void Arrived(int fd, const std::string& key) ABSL_LOCKS_EXCLUDED(mu_);
  void Release(const std::string& user) ABSL_LOCKS_EXCLUDED(mu_);
  void Expire(absl::Time now) ABSL_LOCKS_EXCLUDED(mu_);

  const SessionLimits limits_;
  Splicer splicer_;
  int listen_fd_ = -1;
  int epoll_fd_ = -1;
  int wake_fd_ = -1;
  mutable absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  int open_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<std::string, int> open_by_user_ ABSL_GUARDED_BY(mu_);
  // By either of its keys; a session is here until both sides arrived or
  // it expired.
  std::map<std::string, std::shared_ptr<Session>> by_key_ ABSL_GUARDED_BY(mu_);
  // Owned by the thread: connections that have not said their key yet.
  std::map<int, std::unique_ptr<Waiting>> waiting_;
  // The same, by source address, oldest first.
  std::map<std::string, std::deque<int>> waiting_by_source_;
  std::thread thread_;
};

}  // namespace groupshare::relay

#endif  // GROUPSHARE_SERVICES_RELAY_SESSIONS_H_
