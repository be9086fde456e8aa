// The tracker as a download sees it (DownloadTracker), answering every
// GetFilePeers with one answer (which a test may change) and counting the
// announcements.
#ifndef GROUPSHARE_TESTS_TESTING_FAKE_DOWNLOAD_TRACKER_H_
#define GROUPSHARE_TESTS_TESTING_FAKE_DOWNLOAD_TRACKER_H_

#include <atomic>
#include <string>
#include <utility>

#include "absl/synchronization/mutex.h"
#include "services/peer/downloader.h"

namespace groupshare::testing {

class FakeDownloadTracker final : public peer::DownloadTracker {
 public:
  explicit FakeDownloadTracker(tracker::v1::GetFilePeersResponse response)
      : answer_(std::move(response)) {}
  absl::StatusOr<tracker::v1::GetFilePeersResponse> GetFilePeers(const std::string&,
                                                                 const std::string&) override {
    absl::MutexLock lock(&mu_);
    return answer_;
  }
  // What GetFilePeers answers from now on.
  void SetAnswer(absl::StatusOr<tracker::v1::GetFilePeersResponse> answer) {
    absl::MutexLock lock(&mu_);
    answer_ = std::move(answer);
  }
  absl::Status AnnounceHolder(const std::string&, const std::string&, bool complete) override {
    ++(complete ? completes : announces);
    return absl::OkStatus();
  }
  absl::Status StopShare(const std::string&, const std::string&) override {
    ++stop_shares;
    return absl::OkStatus();
  }
  std::atomic<int> announces{0}, completes{0}, stop_shares{0};

 private:
  absl::Mutex mu_;
  absl::StatusOr<tracker::v1::GetFilePeersResponse> answer_ ABSL_GUARDED_BY(mu_);
};

}  // namespace groupshare::testing

#endif  // GROUPSHARE_TESTS_TESTING_FAKE_DOWNLOAD_TRACKER_H_
