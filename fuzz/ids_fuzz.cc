// Ids, passwords and file names come from any client of the tracker.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "core/ids.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  (void)groupshare::ValidateId("user id", input);
  (void)groupshare::ValidatePassword(input);
  if (groupshare::ValidateFileName(input).ok()) {
    // A valid file name never leaves its folder.
    if (input.find('/') != std::string::npos || input == "." || input == "..") std::abort();
  }
  return 0;
}
