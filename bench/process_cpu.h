// The CPU time another process (a server under load) has used, read from
// /proc, for the load generators of bench/.
#ifndef GROUPSHARE_BENCH_PROCESS_CPU_H_
#define GROUPSHARE_BENCH_PROCESS_CPU_H_

#include <unistd.h>

#include <cstdint>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"

namespace groupshare::bench {

// User and system CPU time process `pid` has used, in seconds; 0 when
// /proc does not say (the process is gone, say).
inline double CpuSecondsOf(int pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/stat"));
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // The fields after the command name, which is in parentheses and may hold
  // spaces: utime and stime are the 12th and 13th of them.
  const size_t close = stat.rfind(')');
  if (close == std::string::npos || close + 2 > stat.size()) return 0;
  const std::vector<absl::string_view> fields =
      absl::StrSplit(absl::string_view(stat).substr(close + 2), ' ');
  int64_t utime = 0, stime = 0;
  if (fields.size() < 13 || !absl::SimpleAtoi(fields[11], &utime) ||
      !absl::SimpleAtoi(fields[12], &stime)) {
    return 0;
  }
  return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

}  // namespace groupshare::bench

#endif  // GROUPSHARE_BENCH_PROCESS_CPU_H_
