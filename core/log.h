// A small leveled logger: one line per event, with a UTC timestamp, to
// stderr or to a file. Thread-safe.
//
//   GS_LOG(kInfo) << "listening on " << address;
#ifndef GROUPSHARE_CORE_LOG_H_
#define GROUPSHARE_CORE_LOG_H_

#include <sstream>
#include <string>
#include "absl/strings/string_view.h"

#include "absl/status/status.h"

namespace groupshare::log {

enum Level { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };

// Parses "debug", "info", "warning" or "error"; INVALID_ARGUMENT otherwise.
absl::Status SetLevel(absl::string_view name);
void SetLevel(Level level);
bool Enabled(Level level);

// Sends log lines to the file at `path` (appending) instead of stderr.
absl::Status LogToFile(const std::string& path);

void Write(Level level, absl::string_view line);

class Line {
 public:
  explicit Line(Level level) : level_(level) {}
  ~Line() { Write(level_, stream_.str()); }
  template <typename T>
  Line& operator<<(const T& value) {
    stream_ << value;
    return *this;
  }

 private:
  Level level_;
  std::ostringstream stream_;
};

// Lets GS_LOG be an expression: `&` binds looser than `<<`.
struct Voidify {
  void operator&(const Line&) const {}
};

}  // namespace groupshare::log

#define GS_LOG(level)                                          \
  !::groupshare::log::Enabled(::groupshare::log::level)        \
      ? (void)0                                                \
      : ::groupshare::log::Voidify() & ::groupshare::log::Line(::groupshare::log::level)

#endif  // GROUPSHARE_CORE_LOG_H_
