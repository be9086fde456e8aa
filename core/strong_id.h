// An integer id that does not mix with other ids: a PieceIndex cannot be
// passed where a PeerId is meant, nor either where a count is. Construction
// from the raw number is explicit; value() gives it back at the edges.
#ifndef GROUPSHARE_CORE_STRONG_ID_H_
#define GROUPSHARE_CORE_STRONG_ID_H_

#include <compare>
#include <cstdint>
#include <ostream>
#include <utility>

namespace groupshare {

template <typename Tag>
class StrongId {
 public:
  constexpr StrongId() = default;
  constexpr explicit StrongId(uint32_t value) : value_(value) {}

  constexpr uint32_t value() const { return value_; }

  friend constexpr auto operator<=>(StrongId, StrongId) = default;

  template <typename H>
  friend H AbslHashValue(H h, StrongId id) {
    return H::combine(std::move(h), id.value_);
  }
  friend std::ostream& operator<<(std::ostream& out, StrongId id) { return out << id.value_; }

 private:
  uint32_t value_ = 0;
};

}  // namespace groupshare

#endif  // GROUPSHARE_CORE_STRONG_ID_H_
