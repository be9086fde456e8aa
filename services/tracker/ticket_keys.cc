#include "services/tracker/ticket_keys.h"

#include <algorithm>

#include "absl/base/internal/endian.h"
#include "core/log.h"
#include "core/status_macros.h"
#include "services/tracker/key_schedule.h"

namespace groupshare::tracker {
namespace {

// Where the keys are: records of 8 bytes (big-endian Unix seconds from
// which the key signs) and the 32-byte Ed25519 private key.
constexpr char kKeysMeta[] = "ticket_keys";
// The single key of databases from before rotation.
constexpr char kLegacyKeyMeta[] = "ticket_signing_key";
constexpr size_t kRecordBytes = 8 + 32;

struct Record {
  absl::Time signs_from;
  std::string private_key;
};

std::string Encode(const std::vector<Record>& records) {
  std::string out;
  for (const Record& r : records) {
    char when[8];
    absl::big_endian::Store64(when, static_cast<uint64_t>(absl::ToUnixSeconds(r.signs_from)));
    out.append(when, sizeof when);
    out.append(r.private_key);
  }
  return out;
}

absl::StatusOr<std::vector<Record>> Decode(const std::string& value) {
  if (value.empty() || value.size() % kRecordBytes != 0) {
    return absl::DataLossError("the stored ticket keys are damaged");
  }
  std::vector<Record> out;
  for (size_t at = 0; at < value.size(); at += kRecordBytes) {
    out.push_back({absl::FromUnixSeconds(static_cast<int64_t>(
                       absl::big_endian::Load64(value.data() + at))),
                   value.substr(at + 8, 32)});
  }
  std::sort(out.begin(), out.end(),
            [](const Record& a, const Record& b) { return a.signs_from < b.signs_from; });
  return out;
}

absl::StatusOr<std::vector<Record>> ReadRecords(Store* store) {
  absl::StatusOr<std::string> value = store->GetMeta(kKeysMeta);
  if (value.status().code() == absl::StatusCode::kNotFound) {
    // The first start on this database (or the first since rotation came):
    // the key it had, or a new one, signs from the beginning.
    ASSIGN_OR_RETURN(auto fresh, TicketSigner::Generate());
    ASSIGN_OR_RETURN(std::string legacy, store->GetOrPutMeta(kLegacyKeyMeta, fresh->PrivateKey()));
    value = store->GetOrPutMeta(kKeysMeta, Encode({{absl::UnixEpoch(), legacy}}));
  }
  if (!value.ok()) return value.status();
  return Decode(*value);
}

}  // namespace

absl::StatusOr<std::unique_ptr<TicketKeys>> TicketKeys::Load(Store* store, TicketKeyTimes times,
                                                             absl::Time now) {
  std::unique_ptr<TicketKeys> keys(new TicketKeys(store, times));
  RETURN_IF_ERROR(keys->Read(now));
  return keys;
}

absl::StatusOr<absl::Time> TicketKeys::Rotate(Store* store, TicketKeyTimes times,
                                              absl::Time now) {
  ASSIGN_OR_RETURN(std::vector<Record> records, ReadRecords(store));
  std::vector<Record> kept = Unretired(records, now, times.ticket_ttl);
  if (kept.size() >= kMaxVerifierKeys) {
    return absl::FailedPreconditionError(
        "the last rotations are still under way (their keys are all in use); rotate again "
        "after a ticket lifetime");
  }
  ASSIGN_OR_RETURN(auto fresh, TicketSigner::Generate());
  const absl::Time signs_from = NextSignsFrom(kept, now, times.lead);
  kept.push_back({signs_from, fresh->PrivateKey()});
  RETURN_IF_ERROR(store->PutMeta(kKeysMeta, Encode(kept)));
  return signs_from;
}

absl::Status TicketKeys::Read(absl::Time now) {
  ASSIGN_OR_RETURN(std::vector<Record> records, ReadRecords(store_));
  std::vector<Key> keys;
  for (const Record& r : records) {
    ASSIGN_OR_RETURN(auto signer, TicketSigner::FromPrivateKey(r.private_key));
    keys.push_back({r.signs_from, std::move(signer)});
  }
  absl::MutexLock lock(&mu_);
  keys_ = std::move(keys);
  read_at_ = now;
  return absl::OkStatus();
}

void TicketKeys::MaybeRefresh(absl::Time now) {
  {
    absl::MutexLock lock(&mu_);
    if (now - read_at_ < times_.refresh) return;
    read_at_ = now;  // one caller reads; the others go on with what is here
  }
  if (absl::Status s = Read(now); !s.ok()) {
    GS_LOG(kWarning) << "could not read the ticket keys again (the old ones stay): " << s;
  }
}

std::shared_ptr<const TicketSigner> TicketKeys::Signer(absl::Time now) {
  MaybeRefresh(now);
  absl::MutexLock lock(&mu_);
  return SigningAt(keys_, now).signer;
}

std::vector<std::string> TicketKeys::PublicKeys(absl::Time now) {
  MaybeRefresh(now);
  absl::MutexLock lock(&mu_);
  std::vector<std::string> out;
  for (size_t i = keys_.size(); i-- > 0;) {
    if (!Retired(keys_, i, now, times_.ticket_ttl)) out.push_back(keys_[i].signer->PublicKey());
  }
  return out;
}

}  // namespace groupshare::tracker
