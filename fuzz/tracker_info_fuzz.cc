// tracker_info.txt, and host:port arguments, come from users.
#include <cstdint>
#include <string>

#include "core/tracker_info.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  auto trackers = groupshare::ParseTrackerInfo(input);
  if (trackers.ok()) {
    for (const auto& t : *trackers) (void)t.ToString();
  }
  (void)groupshare::ParseHostPort(input, true);
  (void)groupshare::ParseHostPort(input, false);
  return 0;
}
