#include "services/common/splicer.h"

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <limits>
#include <utility>

namespace groupshare {
namespace {

constexpr double kUnlimited = std::numeric_limits<double>::infinity();
// How often a pair that ran out of rate is looked at again.
constexpr int kThrottledPollMs = 5;

void SetNonBlocking(int fd) {
  const int flags = fcntl(fd, F_GETFL, 0);
  if (flags >= 0) fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

}  // namespace

struct Splicer::Direction {
  int from = -1;
  int to = -1;
  std::vector<char> buffer;
  size_t start = 0, end = 0;  // bytes read from `from` not yet written to `to`
  bool eof = false;           // `from` closed its side
  bool shut = false;          // and `to` was told so, everything written
  double tokens = 0;

  size_t pending() const { return end - start; }
};

struct Splicer::Pair {
  int a = -1, b = -1;
  Direction ab, ba;
  std::function<void()> done;
  absl::Time active;
  bool failed = false;
};

Splicer::Splicer(Options options)
    : options_(options),
      epoll_fd_(epoll_create1(EPOLL_CLOEXEC)),
      wake_fd_(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = 0;  // the wake fd; pairs have their address here
  epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &ev);
  total_tokens_ = options_.total_rate == 0 ? kUnlimited : 0;
  thread_ = std::thread([this] { Run(); });
}

Splicer::~Splicer() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  Wake();
  thread_.join();
  close(wake_fd_);
  close(epoll_fd_);
}

void Splicer::Add(int a, int b, std::function<void()> done) {
  auto pair = std::make_unique<Pair>();
  pair->a = a;
  pair->b = b;
  pair->done = std::move(done);
  pairs_.fetch_add(1, std::memory_order_relaxed);
  {
    absl::MutexLock lock(&mu_);
    added_.push_back(std::move(pair));
  }
  Wake();
}

void Splicer::Wake() {
  const uint64_t one = 1;
  [[maybe_unused]] ssize_t n = write(wake_fd_, &one, sizeof one);
}

void Splicer::Refill(absl::Time now) {
  const double seconds = std::max(0.0, absl::ToDoubleSeconds(now - refilled_));
  refilled_ = now;
  // A burst of up to a tenth of a second's worth, and at least a buffer.
  auto burst = [&](uint64_t rate) {
    return std::max<double>(static_cast<double>(rate) / 10, options_.buffer_bytes);
  };
  if (options_.total_rate != 0) {
    total_tokens_ = std::min(burst(options_.total_rate),
                             total_tokens_ + seconds * static_cast<double>(options_.total_rate));
  }
  if (options_.pair_rate == 0) return;
  const double add = seconds * static_cast<double>(options_.pair_rate);
  for (auto& pair : live_) {
    for (Direction* d : {&pair->ab, &pair->ba}) {
      d->tokens = std::min(burst(options_.pair_rate), d->tokens + add);
    }
  }
}

bool Splicer::Move(Direction& d) {
  while (true) {
    if (d.pending() > 0) {
      ssize_t n = send(d.to, d.buffer.data() + d.start, d.pending(), MSG_NOSIGNAL);
      if (n < 0) return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
      d.start += static_cast<size_t>(n);
      if (d.pending() > 0) return true;  // `to` is full; wait until it drains
    }
    d.start = d.end = 0;
    if (d.eof) {
      if (!d.shut) {
        shutdown(d.to, SHUT_WR);
        d.shut = true;
      }
      return true;
    }
    const double allowed =
        std::min({static_cast<double>(d.buffer.size()), d.tokens, total_tokens_});
    if (allowed < 1) return true;  // out of rate; the loop comes back
    ssize_t n = recv(d.from, d.buffer.data(), static_cast<size_t>(allowed), 0);
    if (n < 0) return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
    if (n == 0) {
      d.eof = true;
      continue;
    }
    d.end = static_cast<size_t>(n);
    d.tokens -= static_cast<double>(n);
    total_tokens_ -= static_cast<double>(n);
    moved_.fetch_add(static_cast<uint64_t>(n), std::memory_order_relaxed);
  }
}

void Splicer::Service(Pair* pair, absl::Time now) {
  const uint64_t before = moved_.load(std::memory_order_relaxed);
  if (!Move(pair->ab) || !Move(pair->ba)) {
    pair->failed = true;
    return;
  }
  if (moved_.load(std::memory_order_relaxed) != before) pair->active = now;
}

void Splicer::Close(Pair* pair) {
  epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, pair->a, nullptr);
  epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, pair->b, nullptr);
  close(pair->a);
  close(pair->b);
  pairs_.fetch_sub(1, std::memory_order_relaxed);
  if (pair->done) pair->done();
}

void Splicer::Run() {
  std::vector<epoll_event> events(64);
  bool stopping = false;
  while (!stopping) {
    bool throttled = false;
    for (const auto& pair : live_) {
      for (const Direction* d : {&pair->ab, &pair->ba}) {
        if (!d->eof && d->pending() == 0 && (d->tokens < 1 || total_tokens_ < 1)) {
          throttled = true;
        }
      }
    }
    const int n = epoll_wait(epoll_fd_, events.data(), static_cast<int>(events.size()),
                             throttled ? kThrottledPollMs : 1000);
    const absl::Time now = absl::Now();
    Refill(now);
    std::vector<std::unique_ptr<Pair>> added;
    {
      absl::MutexLock lock(&mu_);
      added.swap(added_);
      stopping = stopping_;
    }
    for (auto& pair : added) {
      for (Direction* d : {&pair->ab, &pair->ba}) {
        d->buffer.resize(options_.buffer_bytes);
        d->tokens = options_.pair_rate == 0 ? kUnlimited
                                            : static_cast<double>(options_.buffer_bytes);
      }
      pair->ab.from = pair->ba.to = pair->a;
      pair->ab.to = pair->ba.from = pair->b;
      pair->active = now;
      SetNonBlocking(pair->a);
      SetNonBlocking(pair->b);
      for (int side = 0; side < 2; ++side) {
        // Edge-triggered: a side is served until it would block, and the
        // whole pair whenever either side changes, or (out of rate) from
        // the timer.
        epoll_event ev{};
        ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
        ev.data.u64 = reinterpret_cast<uintptr_t>(pair.get()) | static_cast<uintptr_t>(side);
        epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, side == 0 ? pair->a : pair->b, &ev);
      }
      Service(pair.get(), now);
      live_.push_back(std::move(pair));
    }
    for (int i = 0; i < n; ++i) {
      const uint64_t data = events[i].data.u64;
      if (data == 0) {
        uint64_t count;
        [[maybe_unused]] ssize_t r = read(wake_fd_, &count, sizeof count);
        continue;
      }
      Pair* pair = reinterpret_cast<Pair*>(data & ~uint64_t{1});
      if (events[i].events & (EPOLLERR)) pair->failed = true;
      if (!pair->failed) Service(pair, now);
    }
    if (throttled) {
      for (auto& pair : live_) {
        if (!pair->failed) Service(pair.get(), now);
      }
    }
    // Pairs that ended: both ways closed, failed, or idle too long.
    auto ended = [&](const std::unique_ptr<Pair>& pair) {
      return stopping || pair->failed || (pair->ab.shut && pair->ba.shut) ||
             now - pair->active > options_.idle_timeout;
    };
    auto first = std::stable_partition(live_.begin(), live_.end(),
                                       [&](const auto& pair) { return !ended(pair); });
    for (auto it = first; it != live_.end(); ++it) Close(it->get());
    live_.erase(first, live_.end());
  }
  // Pairs added while it stopped.
  std::vector<std::unique_ptr<Pair>> added;
  {
    absl::MutexLock lock(&mu_);
    added.swap(added_);
  }
  for (auto& pair : added) {
    close(pair->a);
    close(pair->b);
    pairs_.fetch_sub(1, std::memory_order_relaxed);
    if (pair->done) pair->done();
  }
}

}  // namespace groupshare
