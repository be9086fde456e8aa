// The tracker as a download sees it (DownloadTracker), answering every
// GetFilePeers with one answer (which a test may change) and counting the
// announcements (and, when asked, recording when each refresh came).
#ifndef GROUPSHARE_TESTS_TESTING_FAKE_DOWNLOAD_TRACKER_H_
#define GROUPSHARE_TESTS_TESTING_FAKE_DOWNLOAD_TRACKER_H_

#include <atomic>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "services/peer/downloader.h"

namespace groupshare::testing {

class FakeDownloadTracker final : public peer::DownloadTracker {
 public:
  explicit FakeDownloadTracker(tracker::v1::GetFilePeersResponse response)
      : answer_(std::move(response)) {}
  absl::StatusOr<tracker::v1::GetFilePeersResponse> GetFilePeers(const std::string&,
                                                                 const std::string&) override {
    absl::MutexLock lock(&mu_);
    if (clock_) asked_at_.push_back(clock_());
    return answer_;
  }
  // From now on GetFilePeers records when it was asked, on `clock`.
  void RecordCalls(std::function<absl::Time()> clock) {
    absl::MutexLock lock(&mu_);
    clock_ = std::move(clock);
  }
  std::vector<absl::Time> asked_at() {
    absl::MutexLock lock(&mu_);
    return asked_at_;
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
  absl::Status AnnounceStart(const std::string&, const std::string&) override {
    ++starts;
    return absl::OkStatus();
  }
  absl::Status StopShare(const std::string&, const std::string&) override {
    ++stop_shares;
    return absl::OkStatus();
  }
  std::atomic<int> starts{0}, announces{0}, completes{0}, stop_shares{0};

 private:
  absl::Mutex mu_;
  absl::StatusOr<tracker::v1::GetFilePeersResponse> answer_ ABSL_GUARDED_BY(mu_);
  std::function<absl::Time()> clock_ ABSL_GUARDED_BY(mu_);
  std::vector<absl::Time> asked_at_ ABSL_GUARDED_BY(mu_);
};

}  // namespace groupshare::testing

#endif  // GROUPSHARE_TESTS_TESTING_FAKE_DOWNLOAD_TRACKER_H_
