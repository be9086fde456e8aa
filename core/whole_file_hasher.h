// The whole file's SHA1, computed while a download arrives. Pieces are
// hashed in file order: the one that completes the next piece in order
// hashes it from memory, then any following pieces that arrived earlier.
// A piece that arrives a little ahead of its turn (at most `ahead` pieces)
// waits in a copy in memory; one further ahead is read back from the part
// file when its turn comes. So a download that fills the file roughly in
// order is hashed without reading it again, and one in any order holds at
// most `ahead` pieces in memory. One caller hashes at a time; the others
// only record their piece and go on, so nobody waits on disk reads here,
// with one exception: a piece checked while it is next in order
// (AddIfNext) is hashed alone and into the whole in one pass (see
// Sha1Stream), and the piece right after the one being hashed waits for
// that turn, a bounded while, rather than be hashed twice.
//
// Thread-safe.
#ifndef GROUPSHARE_CORE_WHOLE_FILE_HASHER_H_
#define GROUPSHARE_CORE_WHOLE_FILE_HASHER_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "core/bitfield.h"
#include "core/crypto.h"
#include "core/part_file.h"
#include "core/sha1_stream.h"

namespace groupshare {

class WholeFileHasher {
 public:
  // Pieces kept in memory ahead of their turn, by default.
  static constexpr uint32_t kDefaultAhead = 16;
  // How long AddIfNext waits, at most, for the turn to hash the piece
  // right after the one being hashed, by default.
  static constexpr absl::Duration kDefaultTurnWait = absl::Milliseconds(20);

  // `file` must outlive the hasher.
  WholeFileHasher(FileLayout layout, PartFile* file, uint32_t ahead = kDefaultAhead,
                  absl::Duration turn_wait = kDefaultTurnWait);

  // `piece` is verified and written; `data` are its bytes (in parts), or
  // empty to read it back when its turn comes.
  void Add(uint32_t piece, absl::Span<const absl::string_view> data) ABSL_LOCKS_EXCLUDED(mu_);
  // When `piece` is next in file order and nobody hashes, hashes its bytes
  // alone and into the whole file's SHA1 in one pass, keeps them there if
  // their SHA1 is `expected` (the piece is then added, before the caller
  // writes it), and returns their SHA1. The piece right after one being
  // hashed waits for its turn, up to the turn wait. Otherwise nothing: the
  // caller checks the piece and calls Add once it is written.
  std::optional<Sha1Digest> AddIfNext(uint32_t piece, absl::Span<const absl::string_view> data,
                                      const Sha1Digest& expected) ABSL_LOCKS_EXCLUDED(mu_);
  // The lower-case hex SHA1 of the whole file once every piece was added;
  // UNAVAILABLE when a read-back failed, FAILED_PRECONDITION when pieces
  // are missing.
  absl::StatusOr<std::string> Finish() ABSL_LOCKS_EXCLUDED(mu_);

  // Pieces hashed from bytes read back from the part file so far.
  uint32_t read_back() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  // Hashes the piece at next_ from `data` and moves next_ on; the caller
  // holds the turn (busy_).
  void HashNext(absl::Span<const absl::string_view> data) ABSL_LOCKS_EXCLUDED(mu_);
  // Hashes the run of added pieces from next_ on; the caller holds the
  // turn.
  void Drain() ABSL_LOCKS_EXCLUDED(mu_);
  bool TurnFree() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !busy_; }

  const FileLayout layout_;
  PartFile* const file_;
  const uint32_t ahead_;
  const absl::Duration turn_wait_;
  mutable absl::Mutex mu_;
  Bitfield added_ ABSL_GUARDED_BY(mu_);
  uint32_t next_ ABSL_GUARDED_BY(mu_) = 0;
  // Copies of added pieces after next_, by piece (at most ahead_ of them).
  absl::flat_hash_map<uint32_t, std::string> waiting_ ABSL_GUARDED_BY(mu_);
  uint32_t read_back_ ABSL_GUARDED_BY(mu_) = 0;
  bool busy_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status error_ ABSL_GUARDED_BY(mu_);
  // Touched only by the caller holding the turn.
  Sha1Stream sha1_;
  std::string buffer_;
};

}  // namespace groupshare

#endif  // GROUPSHARE_CORE_WHOLE_FILE_HASHER_H_
