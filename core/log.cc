#include "core/log.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace groupshare::log {
namespace {

std::atomic<int> g_level{kInfo};
absl::Mutex g_mu;
FILE* g_file ABSL_GUARDED_BY(g_mu) = nullptr;

constexpr const char* kNames[] = {"debug", "info", "warning", "error"};

}  // namespace

absl::Status SetLevel(absl::string_view name) {
  for (int i = kDebug; i <= kError; ++i) {
    if (name == kNames[i]) {
      g_level = i;
      return absl::OkStatus();
    }
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown log level '", name, "'; use debug, info, warning or error"));
}

void SetLevel(Level level) { g_level = level; }

bool Enabled(Level level) { return level >= g_level.load(std::memory_order_relaxed); }

absl::Status LogToFile(const std::string& path) {
  // The log names files, groups and peers: for this user only, an older
  // log's mode included.
  const int fd = open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  FILE* f = fd < 0 ? nullptr : fdopen(fd, "a");
  if (fd >= 0 && f == nullptr) close(fd);
  if (f != nullptr) fchmod(fd, 0600);
  if (f == nullptr) {
    return absl::UnavailableError(
        absl::StrCat("cannot open log file '", path, "': ", std::strerror(errno)));
  }
  absl::MutexLock lock(&g_mu);
  if (g_file != nullptr) std::fclose(g_file);
  g_file = f;
  return absl::OkStatus();
}

void Write(Level level, absl::string_view line) {
  std::string text = absl::StrCat(
      absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::Now(), absl::UTCTimeZone()), " ",
      kNames[level], " ", line, "\n");
  absl::MutexLock lock(&g_mu);
  FILE* out = g_file != nullptr ? g_file : stderr;
  std::fwrite(text.data(), 1, text.size(), out);
  std::fflush(out);
}

}  // namespace groupshare::log
