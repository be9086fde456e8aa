// Bitfields come from peers, with a piece count the tracker gave: the first
// four bytes of the input are the count, the rest the bitfield.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

#include "core/bitfield.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 4) return 0;
  uint32_t count;
  std::memcpy(&count, data, 4);
  count %= 1 << 20;  // a tracker gives at most this many pieces
  const std::string bytes(reinterpret_cast<const char*>(data) + 4, size - 4);
  auto bits = groupshare::Bitfield::FromBytes(bytes, count);
  if (!bits.ok()) return 0;
  // Accepted: it is exactly the wire form of what was parsed.
  if (bits->size() != count || bits->ToBytes() != bytes) std::abort();
  uint32_t set = 0;
  for (uint32_t i = 0; i < count; ++i) set += bits->Get(i);
  if (set != bits->Count()) std::abort();
  return 0;
}
