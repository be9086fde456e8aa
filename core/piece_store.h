// The files this client serves, whole or in part: for each share (a group
// and a file SHA1) an open file to read pieces from, the file's layout, and
// which pieces are held. A download adds its pieces one by one as they are
// verified; readers wait for new pieces without polling.
//
// Thread-safe. Pieces are read from disk only when asked for.
#ifndef GROUPSHARE_CORE_PIECE_STORE_H_
#define GROUPSHARE_CORE_PIECE_STORE_H_

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "core/bitfield.h"

namespace groupshare {

struct ShareKey {
  std::string group_id;
  std::string sha1;  // lower-case hex of the whole file
  auto operator<=>(const ShareKey&) const = default;
};

class PieceStore {
 public:
  struct Snapshot {
    std::string name;
    FileLayout layout;
    Bitfield have;
    size_t cursor = 0;  // for WaitForNew: pieces added after this snapshot
  };

  PieceStore() = default;
  ~PieceStore();

  // Starts serving `path` (read-only) as the share `key`, holding the pieces
  // in `have`. Replaces an earlier share of the same key. UNAVAILABLE when
  // the file cannot be opened, FAILED_PRECONDITION when it is shorter than
  // the layout says.
  absl::Status Add(const ShareKey& key, const std::string& name, const std::string& path,
                   FileLayout layout, Bitfield have) ABSL_LOCKS_EXCLUDED(mu_);
  // A verified piece is now on disk; wakes the waiters.
  void MarkHave(const ShareKey& key, uint32_t piece) ABSL_LOCKS_EXCLUDED(mu_);
  // Stops serving; waiters see NOT_FOUND.
  void Remove(const ShareKey& key) ABSL_LOCKS_EXCLUDED(mu_);
  void RemoveAll() ABSL_LOCKS_EXCLUDED(mu_);

  std::vector<ShareKey> Keys() const ABSL_LOCKS_EXCLUDED(mu_);
  std::optional<ShareKey> FindByName(const std::string& group_id,
                                     const std::string& name) const ABSL_LOCKS_EXCLUDED(mu_);

  // The share's layout and held pieces; NOT_FOUND when not served.
  absl::StatusOr<Snapshot> Get(const ShareKey& key) const ABSL_LOCKS_EXCLUDED(mu_);
  // Waits up to `timeout` for pieces added after `*cursor` and returns them
  // (empty on timeout), moving the cursor. NOT_FOUND once the share is gone.
  absl::StatusOr<std::vector<uint32_t>> WaitForNew(const ShareKey& key, size_t* cursor,
                                                   absl::Duration timeout)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Reads a held piece into `*out`, resized to fit (reuse one string for
  // many pieces: same-size resizes then cost nothing). NOT_FOUND (share),
  // OUT_OF_RANGE (index), FAILED_PRECONDITION (not held yet), UNAVAILABLE
  // (disk).
  absl::Status ReadPiece(const ShareKey& key, uint32_t piece, std::string* out) const
      ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct File;  // an open file descriptor, closed with its last user
  struct Share {
    std::string name;
    std::shared_ptr<File> file;
    FileLayout layout;
    Bitfield have;
    std::vector<uint32_t> added;  // pieces in the order they were added
  };

  mutable absl::Mutex mu_;
  absl::CondVar changed_;
  std::map<ShareKey, std::shared_ptr<Share>> shares_ ABSL_GUARDED_BY(mu_);
};

}  // namespace groupshare

#endif  // GROUPSHARE_CORE_PIECE_STORE_H_
