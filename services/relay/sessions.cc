#include "services/relay/sessions.h"

#include <netdb.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "core/crypto.h"
#include "core/log.h"
#include "core/tracker_info.h"
#include "services/common/connection_guard.h"

namespace groupshare::relay {
namespace {

constexpr size_t kMaxRequestBytes = 2048;
constexpr char kOk[] = "HTTP/1.1 200 Connection established\r\n\r\n";
constexpr char kUnknown[] = "HTTP/1.1 404 No such session\r\n\r\n";
constexpr uint64_t kWakeTag = ~uint64_t{0};
constexpr uint64_t kListenTag = ~uint64_t{0} - 1;

void SendAll(int fd, absl::string_view text) {
  // A few bytes to a connection that sent its request and waits: they fit
  // in any socket buffer.
  [[maybe_unused]] ssize_t n = send(fd, text.data(), text.size(), MSG_NOSIGNAL);
}

// The key of "CONNECT <key>:<port> HTTP/1.x", or empty.
std::string KeyOf(absl::string_view request) {
  absl::string_view line = request.substr(0, request.find("\r\n"));
  std::vector<absl::string_view> words = absl::StrSplit(line, ' ', absl::SkipEmpty());
  if (words.size() != 3 || words[0] != "CONNECT" || !absl::StartsWith(words[2], "HTTP/1.")) {
    return "";
  }
  absl::string_view target = words[1];
  target = target.substr(0, target.rfind(':'));
  if (target.size() != 32) return "";
  for (char c : target) {
    if (!absl::ascii_isxdigit(c) || absl::ascii_isupper(c)) return "";
  }
  return std::string(target);
}

}  // namespace

struct Sessions::Session {
  std::string user;
  std::string keys[2];
  int fds[2] = {-1, -1};  // who arrived, by key
  absl::Time expires;
};

struct Sessions::Waiting {
  int fd = -1;
  std::string source;
  std::string request;
  absl::Time deadline;
};

Sessions::Sessions(SessionLimits limits) : limits_(limits), splicer_(limits.splice) {}

Sessions::~Sessions() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (thread_.joinable()) {
    const uint64_t one = 1;
    [[maybe_unused]] ssize_t n = write(wake_fd_, &one, sizeof one);
    thread_.join();
  }
  for (auto& [fd, w] : waiting_) close(fd);
  absl::MutexLock lock(&mu_);
  for (auto& [key, session] : by_key_) {
    for (int& fd : session->fds) {
      if (fd >= 0) close(fd);
      fd = -1;
    }
  }
  for (int fd : {listen_fd_, epoll_fd_, wake_fd_}) {
    if (fd >= 0) close(fd);
  }
}

absl::StatusOr<int> Sessions::Listen(const std::string& address) {
  absl::StatusOr<HostPort> parsed = ParseHostPort(address, /*allow_port_zero=*/true);
  if (!parsed.ok()) return parsed.status();
  std::string host = parsed->host;
  if (absl::StartsWith(host, "[")) host = host.substr(1, host.size() - 2);
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* found = nullptr;
  if (getaddrinfo(host.c_str(), std::to_string(parsed->port).c_str(), &hints, &found) != 0 ||
      found == nullptr) {
    return absl::UnavailableError(absl::StrCat("cannot resolve ", address));
  }
  const int fd = socket(found->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  const int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  const bool bound = fd >= 0 && bind(fd, found->ai_addr, found->ai_addrlen) == 0 &&
                     listen(fd, 128) == 0;
  const int error = errno;
  freeaddrinfo(found);
  if (!bound) {
    if (fd >= 0) close(fd);
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", address, ": ", strerror(error)));
  }
  sockaddr_storage local{};
  socklen_t length = sizeof local;
  getsockname(fd, reinterpret_cast<sockaddr*>(&local), &length);
  const int port = ntohs(local.ss_family == AF_INET6
                             ? reinterpret_cast<sockaddr_in6*>(&local)->sin6_port
                             : reinterpret_cast<sockaddr_in*>(&local)->sin_port);
  listen_fd_ = fd;
  epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  for (auto [watched, tag] : {std::pair{listen_fd_, kListenTag}, std::pair{wake_fd_, kWakeTag}}) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = tag;
    epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, watched, &ev);
  }
  thread_ = std::thread([this] { Run(); });
  return port;
}

absl::StatusOr<Sessions::Keys> Sessions::Open(const std::string& user) {
  Keys keys;
  for (std::string* key : {&keys.member, &keys.holder}) {
    absl::StatusOr<std::string> random = RandomBytes(16);
    if (!random.ok()) return random.status();
    *key = HexEncode(*random);
  }
  absl::MutexLock lock(&mu_);
  if (open_ >= limits_.max_sessions) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "this relay is full (", limits_.max_sessions, " sessions); try another relay"));
  }
  int& mine = open_by_user_[user];
  if (mine >= limits_.max_sessions_per_user) {
    return absl::ResourceExhaustedError(
        absl::StrCat("you have ", mine, " sessions open at this relay, its limit per user"));
  }
  ++mine;
  ++open_;
  auto session = std::make_shared<Session>();
  session->user = user;
  session->keys[0] = keys.member;
  session->keys[1] = keys.holder;
  session->expires = absl::Now() + limits_.join_timeout;
  by_key_[keys.member] = session;
  by_key_[keys.holder] = session;
  return keys;
}

int Sessions::open_sessions() const {
  absl::MutexLock lock(&mu_);
  return open_;
}

void Sessions::Release(const std::string& user) {
  absl::MutexLock lock(&mu_);
  --open_;
  auto it = open_by_user_.find(user);
  if (it != open_by_user_.end() && --it->second <= 0) open_by_user_.erase(it);
}

void Sessions::Run() {
  std::vector<epoll_event> events(64);
  while (true) {
    const int n = epoll_wait(epoll_fd_, events.data(), static_cast<int>(events.size()), 1000);
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) return;
    }
    for (int i = 0; i < n; ++i) {
      const uint64_t tag = events[i].data.u64;
      if (tag == kWakeTag) continue;
      if (tag == kListenTag) {
        Accept();
        continue;
      }
      auto it = waiting_.find(static_cast<int>(tag));
      if (it != waiting_.end()) Read(it->second.get());
    }
    Expire(absl::Now());
  }
}

void Sessions::Accept() {
  while (true) {
    sockaddr_storage peer{};
    socklen_t length = sizeof peer;
    const int fd = accept4(listen_fd_, reinterpret_cast<sockaddr*>(&peer), &length,
                           SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;  // EAGAIN, or out of descriptors: the next round
    std::string source = SourceAddressOf(peer);
    auto mine = waiting_by_source_.find(source);
    const size_t held = mine == waiting_by_source_.end() ? 0 : mine->second.size();
    if (held >= static_cast<size_t>(limits_.max_waiting_per_address)) {
      StopWaiting(mine->second.front(), /*close_it=*/true);
    } else if (waiting_.size() >= static_cast<size_t>(limits_.max_waiting)) {
      auto most = std::max_element(
          waiting_by_source_.begin(), waiting_by_source_.end(),
          [](const auto& a, const auto& b) { return a.second.size() < b.second.size(); });
      if (most->second.size() > held + 1) {
        StopWaiting(most->second.front(), /*close_it=*/true);
      } else {  // as many sources as places: the oldest of all goes
        auto oldest = std::min_element(waiting_.begin(), waiting_.end(), [](const auto& a,
                                                                            const auto& b) {
          return a.second->deadline < b.second->deadline;
        });
        StopWaiting(oldest->first, /*close_it=*/true);
      }
    }
    auto w = std::make_unique<Waiting>();
    w->fd = fd;
    w->source = source;
    w->deadline = absl::Now() + limits_.request_timeout;
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = static_cast<uint64_t>(fd);
    epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev);
    waiting_[fd] = std::move(w);
    waiting_by_source_[std::move(source)].push_back(fd);
  }
}

void Sessions::StopWaiting(int fd, bool close_it) {
  auto it = waiting_.find(fd);
  if (it == waiting_.end()) return;
  auto source = waiting_by_source_.find(it->second->source);
  if (source != waiting_by_source_.end()) {
    std::deque<int>& fds = source->second;
    fds.erase(std::find(fds.begin(), fds.end(), fd));
    if (fds.empty()) waiting_by_source_.erase(source);
  }
  waiting_.erase(it);
  epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
  if (close_it) close(fd);
}

void Sessions::Read(Waiting* w) {
  const int fd = w->fd;
  char c;
  // Byte by byte up to the blank line: what follows it belongs to the
  // other side (a TLS ClientHello), and stays in the socket.
  while (true) {
    ssize_t got = recv(fd, &c, 1, 0);
    if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
    if (got <= 0 || w->request.size() >= kMaxRequestBytes) {
      StopWaiting(fd, /*close_it=*/true);
      return;
    }
    w->request.push_back(c);
    if (absl::EndsWith(w->request, "\r\n\r\n")) break;
  }
  const std::string key = KeyOf(w->request);
  StopWaiting(fd, /*close_it=*/false);
  Arrived(fd, key);
}

void Sessions::Arrived(int fd, const std::string& key) {
  std::shared_ptr<Session> session;
  {
    absl::MutexLock lock(&mu_);
    auto it = key.empty() ? by_key_.end() : by_key_.find(key);
    if (it != by_key_.end()) {
      session = it->second;
      const int side = session->keys[0] == key ? 0 : 1;
      by_key_.erase(it);  // single use
      session->fds[side] = fd;
      if (session->fds[1 - side] < 0) return;  // the other side comes later
    }
  }
  if (session == nullptr) {
    SendAll(fd, kUnknown);
    close(fd);
    return;
  }
  SendAll(session->fds[0], kOk);
  SendAll(session->fds[1], kOk);
  GS_LOG(kDebug) << "relay session of " << session->user << " spliced";
  splicer_.Add(session->fds[0], session->fds[1],
               [this, user = session->user] { Release(user); });
}

void Sessions::Expire(absl::Time now) {
  std::vector<int> late;
  for (const auto& [fd, w] : waiting_) {
    if (now >= w->deadline) late.push_back(fd);
  }
  for (int fd : late) StopWaiting(fd, /*close_it=*/true);
  std::vector<std::shared_ptr<Session>> expired;
  {
    absl::MutexLock lock(&mu_);
    for (auto it = by_key_.begin(); it != by_key_.end();) {
      if (now < it->second->expires) {
        ++it;
        continue;
      }
      expired.push_back(it->second);
      it = by_key_.erase(it);
    }
  }
  // A session is counted once however many of its keys were left.
  std::sort(expired.begin(), expired.end());
  expired.erase(std::unique(expired.begin(), expired.end()), expired.end());
  for (const auto& session : expired) {
    for (int fd : session->fds) {
      if (fd >= 0) close(fd);
    }
    Release(session->user);
  }
}

}  // namespace groupshare::relay
