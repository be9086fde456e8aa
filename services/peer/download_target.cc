#include "services/peer/download_target.h"

#include <sys/stat.h>
#include <unistd.h>

#include <vector>

#include "absl/strings/str_cat.h"
#include "core/crypto.h"
#include "core/log.h"
#include "core/piece_store.h"
#include "core/status_macros.h"

namespace groupshare::peer {

absl::StatusOr<std::unique_ptr<DownloadTarget>> DownloadTarget::Resume(const Spec& spec,
                                                                      ClientState* state,
                                                                      DownloadEnv* env,
                                                                      Bitfield* have) {
  const FileLayout layout{spec.file.size(), spec.file.piece_size()};
  if (layout.piece_size == 0 || layout.piece_size > spec.max_piece_size) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the tracker announced pieces of ", layout.piece_size,
        " bytes; this client takes pieces of 1 to ", spec.max_piece_size, " bytes"));
  }
  struct stat st;
  if (lstat(spec.dest.c_str(), &st) == 0) {
    return absl::AlreadyExistsError(absl::StrCat(
        "'", spec.dest, "' exists already; remove it or choose another destination"));
  }
  std::unique_ptr<DownloadTarget> target(new DownloadTarget(spec, layout));
  // The part file is ours when the state folder records this download, or
  // the one it replaces: the same file of the group into the same place,
  // whose content has changed since (shared again after an edit). Its
  // pieces that the new content shares are kept (checked below).
  *have = Bitfield(layout.PieceCount());
  bool ours = false;
  std::vector<std::string> replaced;  // the SHA1s of their records
  ASSIGN_OR_RETURN(auto records, state->List(spec.user_id));
  for (const ShareRecord& r : records) {
    if (r.complete || r.path != spec.dest || r.group_id != spec.group_id) continue;
    const bool same = r.sha1 == spec.file.sha1();
    if (!same && r.name != spec.file.name()) continue;
    ours = true;
    if (!same) replaced.push_back(r.sha1);
    if (r.size != layout.size || r.piece_size != layout.piece_size) continue;
    if (auto saved = Bitfield::FromBytes(r.have, layout.PieceCount()); saved.ok()) {
      for (uint32_t i = 0; i < saved->size(); ++i) {
        if (saved->Get(i)) have->Set(i);
      }
    }
  }
  ASSIGN_OR_RETURN(PartFileOpened opened, env->OpenPartFile(target->part_path_, layout.size, ours));
  target->part_ = std::move(opened.file);
  // The tracker's answer was checked (CheckFileInfo): every hash decodes.
  PieceWriter::Expected expected;
  for (const std::string& hex : spec.file.piece_sha1()) {
    expected.pieces.push_back(HexDecodeSha1(hex).value_or(Sha1Digest{}));
  }
  for (const std::string& hex : spec.file.sha1_chain()) {
    expected.chain.push_back(HexDecodeSha1(hex).value_or(Sha1Digest{}));
  }
  expected.whole = HexDecodeSha1(spec.file.sha1()).value_or(Sha1Digest{});
  target->writer_ = std::make_unique<PieceWriter>(layout, std::move(expected), target->part_.get());
  if (opened.fresh) *have = Bitfield(layout.PieceCount());
  // Keep only the recorded pieces that still check out on disk.
  uint32_t kept = 0;
  for (uint32_t i = 0; i < have->size(); ++i) {
    if (!have->Get(i)) continue;
    const bool good = target->writer_->Kept(i);
    have->Set(i, good);
    kept += good;
  }
  if (kept > 0) {
    GS_LOG(kInfo) << "resuming " << spec.file.name() << " with " << kept << " of "
                  << have->size() << " pieces verified on disk";
  }
  ShareRecord record{spec.user_id,
                     spec.group_id,
                     spec.file.name(),
                     spec.file.sha1(),
                     layout.size,
                     layout.piece_size,
                     {spec.file.piece_sha1().begin(), spec.file.piece_sha1().end()},
                     spec.dest,
                     false,
                     have->ToBytes(),
                     0,
                     {spec.file.sha1_chain().begin(), spec.file.sha1_chain().end()}};
  RETURN_IF_ERROR(state->Put(record));
  for (const std::string& sha1 : replaced) {
    RETURN_IF_ERROR(state->Remove(spec.user_id, spec.group_id, sha1));
  }
  return target;
}

absl::Status DownloadTarget::Finish(ClientState* state) {
  // Every piece checked out; the whole file must too before it is renamed
  // into place.
  ASSIGN_OR_RETURN(std::string sha1, writer_->WholeFileSha1());
  if (sha1 != spec_.file.sha1()) {
    state->Remove(spec_.user_id, spec_.group_id, spec_.file.sha1()).IgnoreError();
    unlink(part_path_.c_str());
    return absl::DataLossError(absl::StrCat(
        "every piece checked out but the whole file's SHA1 is ", sha1, ", not ",
        spec_.file.sha1(), "; the file was registered with inconsistent hashes"));
  }
  // Durable before it is called complete: after a power cut the file is
  // whole, or still a part file whose pieces are checked again.
  RETURN_IF_ERROR(part_->Sync());
  RETURN_IF_ERROR(part_->RenameTo(spec_.dest));
  ASSIGN_OR_RETURN(FileStamp stamp, StampOf(spec_.dest));
  RETURN_IF_ERROR(
      state->MarkComplete(spec_.user_id, spec_.group_id, spec_.file.sha1(), stamp.mtime_ns));
  state->AddCompleted({spec_.user_id, spec_.group_id, spec_.file.name(), spec_.dest, layout_.size})
      .IgnoreError();  // only show_downloads' history would miss it
  return absl::OkStatus();
}

}  // namespace groupshare::peer
