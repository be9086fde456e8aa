// A download's pieces on their way to its part file: each is checked, then
// written in place.
//
// A file shared with its SHA1 chain (the whole file's SHA1 state after each
// piece, see Sha1Stream) has each piece checked against the chain at its
// two ends: one pass over its bytes, in any order, and the whole file's
// SHA1 is checked by the same passes.
//
// A file shared without one has each piece checked against its SHA1 and
// added to the whole file's SHA1, which is computed as the pieces come. A
// piece that arrives a little ahead of its turn in the whole file's SHA1
// may wait for it, unchecked, a short while (kTurnWait), to be checked in
// the same pass (WholeFileHasher says why).
//
// Pieces verified on disk already (a resumed download) are checked again
// likewise.
//
// Thread-safe: the download's workers write pieces at once.
#ifndef GROUPSHARE_SERVICES_PEER_PIECE_WRITER_H_
#define GROUPSHARE_SERVICES_PEER_PIECE_WRITER_H_

#include <cstdint>
#include <cstdlib>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "core/bitfield.h"
#include "core/crypto.h"
#include "core/part_file.h"
#include "core/whole_file_hasher.h"

namespace groupshare::peer {

class PieceWriter {
 public:
  // How long a piece may wait for its turn, at most, before CheckWaiting
  // checks it alone. Pieces a peer sends on several calls at once come a
  // few pieces out of order, and their turn a few milliseconds later.
  static constexpr absl::Duration kTurnWait = absl::Milliseconds(20);

  // The verdict on a piece: OK, DATA_LOSS when its SHA1 failed (nothing
  // was written), or the write's error.
  using Done = absl::AnyInvocable<void(absl::Status status) &&>;
  // Runs a task on another thread.
  using Run = std::function<void(std::function<void()> task)>;

  // What a piece is checked against.
  struct Expected {
    std::vector<Sha1Digest> pieces;  // each piece's SHA1
    // The whole file's SHA1 chain after each piece but the last, and its
    // SHA1; no chain when the file was shared without one.
    std::vector<Sha1Digest> chain;
    Sha1Digest whole{};
    // Whether the chain is there to check against.
    bool chained() const { return chain.size() + 1 == pieces.size(); }
  };

  // `file` must outlive the writer.
  PieceWriter(FileLayout layout, Expected expected, PartFile* file)
      : layout_(layout),
        expected_(std::move(expected)),
        file_(file),
        hasher_(layout, file),
        written_(layout.PieceCount()) {}

  // Checks and writes piece `index` (its bytes in parts), and calls `done`
  // with the verdict once: here, or, when the piece waits for its turn
  // (the answer is true), later: on the thread of another caller, which
  // hashes it in its turn and leaves the write to `elsewhere`, or of
  // CheckWaiting. `done` keeps the bytes alive (it is destroyed last), and
  // is dropped uncalled if the piece still waits when the writer goes or
  // DropWaiting is called, or if `elsewhere` drops the task. A second copy
  // of a piece is checked and written again (the same bytes), and hashed
  // into the whole file once.
  bool Write(uint32_t index, std::vector<absl::string_view> data, Done done, Run elsewhere);
  // The same, at once: returns the verdict.
  absl::Status Write(uint32_t index, absl::Span<const absl::string_view> data);
  // Checks alone the pieces that waited longer than kTurnWait for their
  // turn (on the system clock, as a WorkQueue's), and calls their `done`.
  // Returns whether others wait still.
  bool CheckWaiting();
  // Drops the pieces that wait, and their `done` uncalled.
  void DropWaiting() { hasher_.DropWaiting(); }
  // Whether piece `index` is on disk already, whole and right; if so it
  // joins the whole file's SHA1.
  bool Kept(uint32_t index);
  // The whole file's SHA1 (lower-case hex) once every piece is in: checked
  // with each piece against the chain, or computed as they came.
  absl::StatusOr<std::string> WholeFileSha1();
  // Whether pieces are checked against the SHA1 chain.
  bool chained() const { return expected_.chained(); }
  // Pieces the whole file's SHA1 read back from the part file so far.
  uint32_t pieces_read_back() const { return hasher_.read_back(); }

 private:
  // Hands the piece to the whole file's SHA1, which hashes it in its turn
  // (now or, with `may_wait`, later) or alone, and then calls Hashed.
  bool Check(uint32_t index, std::vector<absl::string_view> data, bool may_wait, Done done,
             Run elsewhere);
  // Whether piece `index`, its bytes in parts, reaches its chain value;
  // copies them to `copy` (if set) on the way.
  bool ChainHolds(uint32_t index, absl::Span<const absl::string_view> data, char* copy) const;
  // The verdict on a checked piece: writes it (from `copy`, if there is
  // one) if it is `right`, and adds it to the whole file's SHA1 if it was
  // hashed alone.
  absl::Status Checked(uint32_t index, absl::Span<const absl::string_view> data,
                       const char* copy, bool right);

  // Memory aligned for direct I/O, a piece's worth, that a piece is copied
  // into as it is hashed and written from: the bytes gRPC received lie
  // anywhere, and the part file would copy them again to write around the
  // page cache.
  struct FreeAligned {
    void operator()(char* p) const { std::free(p); }
  };
  using Aligned = std::unique_ptr<char, FreeAligned>;
  // A buffer for piece `index`; null for a piece not of whole blocks (the
  // last one, as a rule).
  Aligned TakeAligned(uint32_t index) ABSL_LOCKS_EXCLUDED(pool_mu_);
  void GiveBack(Aligned buffer) ABSL_LOCKS_EXCLUDED(pool_mu_);

  const FileLayout layout_;
  const Expected expected_;
  PartFile* const file_;
  WholeFileHasher hasher_;
  absl::Mutex pool_mu_;
  std::vector<Aligned> pool_ ABSL_GUARDED_BY(pool_mu_);  // free buffers
  // With a chain, the pieces checked against it and written.
  absl::Mutex written_mu_;
  Bitfield written_ ABSL_GUARDED_BY(written_mu_);
};

}  // namespace groupshare::peer

#endif  // GROUPSHARE_SERVICES_PEER_PIECE_WRITER_H_
