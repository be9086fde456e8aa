// Where one download's bytes go, from its first piece to its rename: resume
// and finish, after Syncthing's finisher.
//  - Resume opens "<dest>.part" (the part file the state folder records as
//    this download's is taken up again), keeps only the recorded pieces that
//    still check out on disk, and records the download.
//  - Finish checks the whole file's SHA1, makes the file durable, renames it
//    into place and records it complete.
// Between the two, the download's workers write pieces through writer().
//
// Thread-compatible: its download's coordinator calls Resume and Finish;
// workers use writer() in between (PieceWriter says how).
#ifndef GROUPSHARE_SERVICES_PEER_DOWNLOAD_TARGET_H_
#define GROUPSHARE_SERVICES_PEER_DOWNLOAD_TARGET_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "core/bitfield.h"
#include "core/part_file.h"
#include "groupshare/tracker/v1/tracker.pb.h"
#include "services/peer/client_state.h"
#include "services/peer/download_env.h"
#include "services/peer/piece_writer.h"

namespace groupshare::peer {

class DownloadTarget {
 public:
  struct Spec {
    std::string user_id;
    std::string group_id;
    tracker::v1::FileInfo file;  // name, size, piece size, SHA1s
    std::string dest;            // "<dest>.part" until Finish
    uint32_t max_piece_size = kMaxPieceSize;
  };

  // ALREADY_EXISTS when `dest` exists; INVALID_ARGUMENT for a piece size
  // this client does not take. Sets `*have` to the pieces kept.
  static absl::StatusOr<std::unique_ptr<DownloadTarget>> Resume(const Spec& spec,
                                                                ClientState* state,
                                                                DownloadEnv* env, Bitfield* have);

  const FileLayout& layout() const { return layout_; }
  const std::string& part_path() const { return part_path_; }
  PieceWriter& writer() { return *writer_; }
  // FAILED_PRECONDITION once the part file left its path (PartFile says).
  absl::Status CheckPartFile() { return part_->CheckStillAtPath(); }

  // Once every piece is written. DATA_LOSS (the part file and its record
  // gone) when the whole file's SHA1 is not the announced one.
  absl::Status Finish(ClientState* state);

 private:
  DownloadTarget(const Spec& spec, FileLayout layout)
      : spec_(spec), layout_(layout), part_path_(spec.dest + ".part") {}

  const Spec spec_;
  const FileLayout layout_;
  const std::string part_path_;
  std::unique_ptr<PartFile> part_;
  std::unique_ptr<PieceWriter> writer_;
};

}  // namespace groupshare::peer

#endif  // GROUPSHARE_SERVICES_PEER_DOWNLOAD_TARGET_H_
