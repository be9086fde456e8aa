// The whole file's SHA1, computed while a download arrives. Pieces are
// hashed in file order: the one that completes the next piece in order
// hashes it from memory, then any following pieces that arrived earlier.
// One caller hashes at a time (it holds the turn); the others only record
// their piece and go on, so nobody waits here.
//
// A piece is best checked in its turn: its own SHA1 and the whole file's
// come from one pass over its bytes (see Sha1Stream), where a piece checked
// before its turn is hashed twice. So a piece that arrives a little ahead
// of its turn (at most `ahead` pieces) may wait for it unchecked, its bytes
// kept alive by the caller (Check): whoever hashes the pieces before it
// then checks it too. One that waits too long (CheckWaiting), or that
// comes further ahead, is checked alone.
//
// A piece checked alone, then written, is added (Add): if it is a little
// ahead of its turn a copy waits in memory; one further ahead is read back
// from the part file when its turn comes. So a download that fills the
// file roughly in order is hashed without reading it again, and one in any
// order holds at most `ahead` pieces of each kind in memory.
//
// Thread-safe.
#ifndef GROUPSHARE_CORE_WHOLE_FILE_HASHER_H_
#define GROUPSHARE_CORE_WHOLE_FILE_HASHER_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
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
  // Pieces kept in memory ahead of their turn, by default: as many as a
  // download has asked for at once by default (16 MiB of 512 KiB pieces),
  // so that pieces from several seeders, which come up to that far out of
  // order, are hashed once.
  static constexpr uint32_t kDefaultAhead = 32;

  // A piece not checked yet.
  struct Unchecked {
    uint32_t piece = 0;
    std::vector<absl::string_view> data;  // its bytes, in parts
    Sha1Digest expected;
    // If set, called just before the bytes are hashed: where they are
    // copied as they are hashed (room for them all; null for nowhere).
    absl::AnyInvocable<char*()> copy_to;
    // Called once with the bytes' SHA1 by whoever hashes them, outside the
    // hasher's lock, unless the piece is dropped; `in_turn_of_another` when
    // the caller of Check that holds the turn hashed it. When the SHA1 is
    // `expected`, the piece is in the whole file's SHA1 by then, or, if it
    // was hashed alone, is to be added (Add) once written. It may own what
    // keeps `data` alive: the hasher destroys it last.
    absl::AnyInvocable<void(const Sha1Digest& sha1, bool in_turn_of_another) &&> hashed;
  };

  // `file` must outlive the hasher.
  WholeFileHasher(FileLayout layout, PartFile* file, uint32_t ahead = kDefaultAhead);
  // Drops the pieces that wait (their `hashed` uncalled).
  ~WholeFileHasher() = default;

  // When `piece` is next in file order and nobody hashes, hashes it alone
  // and into the whole file's SHA1 in one pass, here and now, and takes it
  // in if its SHA1 is the expected one (before the caller writes it); then
  // hashes what waits after it. Otherwise, with `may_wait`, a piece at most
  // `ahead` after its turn waits for it (since `now`): the answer is true.
  // Otherwise hashes it alone, here and now. (So too a second copy of a
  // piece taken in, or waiting, already.)
  bool Check(Unchecked piece, absl::Time now, bool may_wait) ABSL_LOCKS_EXCLUDED(mu_);
  // Hashes alone, here and now, the pieces that wait since before
  // `before`; returns whether others wait still.
  bool CheckWaiting(absl::Time before) ABSL_LOCKS_EXCLUDED(mu_);
  // Drops the pieces that wait (their `hashed` uncalled).
  void DropWaiting() ABSL_LOCKS_EXCLUDED(mu_);

  // `piece` is verified and written; `data` are its bytes (in parts), or
  // empty to read it back when its turn comes.
  void Add(uint32_t piece, absl::Span<const absl::string_view> data) ABSL_LOCKS_EXCLUDED(mu_);
  // The lower-case hex SHA1 of the whole file once every piece was added;
  // UNAVAILABLE when a read-back failed, FAILED_PRECONDITION when pieces
  // are missing.
  absl::StatusOr<std::string> Finish() ABSL_LOCKS_EXCLUDED(mu_);

  // Pieces hashed from bytes read back from the part file so far.
  uint32_t read_back() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Waiting {
    Unchecked piece;
    absl::Time since;
  };

  // Hashes the unchecked piece at next_ alone and into the whole, takes it
  // in if it is right (moving next_ on), and tells its owner (`waited`: it
  // waited for its turn); the caller holds the turn (busy_).
  void HashInTurn(Unchecked piece, bool waited) ABSL_LOCKS_EXCLUDED(mu_);
  // Hashes the checked piece at next_ from `data` and moves next_ on; the
  // caller holds the turn.
  void HashNext(absl::Span<const absl::string_view> data) ABSL_LOCKS_EXCLUDED(mu_);
  // Hashes the run of pieces from next_ on, checked or waiting; the caller
  // holds the turn, and no longer does on return.
  void Drain() ABSL_LOCKS_EXCLUDED(mu_);
  // Moves next_ on; a second copy of the piece that waits unchecked is
  // returned, to be checked alone.
  std::optional<Unchecked> Advance() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Takes `piece` out of waiting_, if it waits there.
  std::optional<Unchecked> TakeWaiting(uint32_t piece) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const FileLayout layout_;
  PartFile* const file_;
  const uint32_t ahead_;
  mutable absl::Mutex mu_;
  Bitfield added_ ABSL_GUARDED_BY(mu_);
  uint32_t next_ ABSL_GUARDED_BY(mu_) = 0;
  // Copies of checked pieces after next_, by piece (at most ahead_).
  absl::flat_hash_map<uint32_t, std::string> copies_ ABSL_GUARDED_BY(mu_);
  // Unchecked pieces after next_ that wait for their turn (at most ahead_).
  absl::flat_hash_map<uint32_t, Waiting> waiting_ ABSL_GUARDED_BY(mu_);
  uint32_t read_back_ ABSL_GUARDED_BY(mu_) = 0;
  bool busy_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status error_ ABSL_GUARDED_BY(mu_);
  // Touched only by the caller holding the turn.
  Sha1Stream sha1_;
  std::string buffer_;
};

}  // namespace groupshare

#endif  // GROUPSHARE_CORE_WHOLE_FILE_HASHER_H_
