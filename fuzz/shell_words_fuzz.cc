// Command lines come from users, typed or piped.
#include <cstdint>
#include <string>

#include "cli/shell.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  (void)groupshare::cli::SplitWords(input);
  return 0;
}
