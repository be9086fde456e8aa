// The files this client serves, whole or in part: for each share (a group
// and a file SHA1) an open file to read pieces from, the file's layout, and
// which pieces are held. A download adds its pieces one by one as they are
// verified; subscribers hear of each new piece at once, without polling.
//
// Thread-safe. Pieces are read from disk only when asked for. Listeners are
// called with no lock of the store held.
#ifndef GROUPSHARE_CORE_PIECE_STORE_H_
#define GROUPSHARE_CORE_PIECE_STORE_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
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

// What a complete file looked like when it was hashed or finished: one whose
// size or modification time differ has changed, and its pieces no longer
// match their hashes.
struct FileStamp {
  uint64_t size = 0;
  int64_t mtime_ns = 0;
  bool operator==(const FileStamp&) const = default;
};
// The stamp of the file at `path` now; NOT_FOUND when it is gone.
absl::StatusOr<FileStamp> StampOf(const std::string& path);

class PieceStore {
 public:
  struct Snapshot {
    std::string name;
    FileLayout layout;
    Bitfield have;
  };

  // Hears of one share's changes. Called from the thread that made the
  // change; must not block and must not call back into the store.
  class Listener {
   public:
    virtual ~Listener() = default;
    virtual void OnHave(uint32_t piece) = 0;
    // The share is no longer served; no call follows.
    virtual void OnGone() = 0;
  };

  PieceStore() = default;
  ~PieceStore();

  // Starts serving `path` (read-only) as the share `key`, holding the pieces
  // in `have`. Replaces an earlier share of the same key (its listeners hear
  // OnGone). With a `stamp` (a complete file), the file must still look so,
  // now and at every read. UNAVAILABLE when the file cannot be opened or is
  // a symlink, FAILED_PRECONDITION when it is not a regular file, is shorter
  // than the layout says, or does not match `stamp` (DATA_LOSS).
  absl::Status Add(const ShareKey& key, const std::string& name, const std::string& path,
                   FileLayout layout, Bitfield have,
                   std::optional<FileStamp> stamp = std::nullopt) ABSL_LOCKS_EXCLUDED(mu_);
  // Called (on the reading thread, no lock held) when a read finds that a
  // stamped share's file changed; the share is no longer served by then.
  void SetChangedCallback(std::function<void(const ShareKey&, const std::string& name)> callback)
      ABSL_LOCKS_EXCLUDED(mu_);
  // A verified piece is now on disk; tells the listeners.
  void MarkHave(const ShareKey& key, uint32_t piece) ABSL_LOCKS_EXCLUDED(mu_);
  // Stops serving; listeners hear OnGone.
  void Remove(const ShareKey& key) ABSL_LOCKS_EXCLUDED(mu_);
  void RemoveAll() ABSL_LOCKS_EXCLUDED(mu_);

  std::vector<ShareKey> Keys() const ABSL_LOCKS_EXCLUDED(mu_);
  std::optional<ShareKey> FindByName(const std::string& group_id,
                                     const std::string& name) const ABSL_LOCKS_EXCLUDED(mu_);

  // The share's layout and held pieces; NOT_FOUND when not served.
  absl::StatusOr<Snapshot> Get(const ShareKey& key) const ABSL_LOCKS_EXCLUDED(mu_);
  // The share's snapshot, and from then on `listener` hears of every piece
  // added and of the share's end, until Unsubscribe. NOT_FOUND when not
  // served.
  absl::StatusOr<Snapshot> Subscribe(const ShareKey& key, std::shared_ptr<Listener> listener)
      ABSL_LOCKS_EXCLUDED(mu_);
  // No call to `listener` is under way or starts once this returns: it
  // waits for one under way on another thread.
  void Unsubscribe(const ShareKey& key, const Listener* listener) ABSL_LOCKS_EXCLUDED(mu_);
  // Reads `length` bytes at `offset` of a held piece into `*out`, resized to
  // fit (reuse one string for many reads: same-size resizes then cost
  // nothing); `length` 0 reads to the piece's end. NOT_FOUND (share),
  // OUT_OF_RANGE (index or range), FAILED_PRECONDITION (not held yet),
  // UNAVAILABLE (disk), DATA_LOSS (the file changed: the share is dropped).
  // Not const: a read that finds the file changed stops serving it.
  absl::Status Read(const ShareKey& key, uint32_t piece, uint32_t offset, uint32_t length,
                    std::string* out) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct File;  // an open file descriptor, closed with its last user
  class Subscription;  // one listener's, through which its calls go
  struct Share {
    std::string name;
    std::shared_ptr<File> file;
    FileLayout layout;
    Bitfield have;
    std::optional<FileStamp> stamp;
    std::vector<std::shared_ptr<Subscription>> listeners;
  };
  // Stops serving `key` if it is still `share`, and says why.
  void Changed(const ShareKey& key, const std::shared_ptr<Share>& share)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Tells the listeners of `shares` that they are gone.
  static void Gone(const std::vector<std::shared_ptr<Share>>& shares);

  mutable absl::Mutex mu_;
  std::map<ShareKey, std::shared_ptr<Share>> shares_ ABSL_GUARDED_BY(mu_);
  // Every subscription until its Unsubscribe, whether its share is still
  // served or not (one that went may still be hearing OnGone).
  absl::flat_hash_map<const Listener*, std::shared_ptr<Subscription>> subscriptions_
      ABSL_GUARDED_BY(mu_);
  std::function<void(const ShareKey&, const std::string&)> changed_ ABSL_GUARDED_BY(mu_);
};

}  // namespace groupshare

#endif  // GROUPSHARE_CORE_PIECE_STORE_H_
