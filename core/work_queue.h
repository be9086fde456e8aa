// A small fixed pool of threads that runs tasks now or at a given time. For
// work that must not run on a network thread (disk reads, timers) and must
// not cost a thread per caller.
//
// Thread-safe. The destructor drops the tasks not yet started and joins the
// threads; a task must not destroy its own queue.
#ifndef GROUPSHARE_CORE_WORK_QUEUE_H_
#define GROUPSHARE_CORE_WORK_QUEUE_H_

#include <cstdint>
#include <functional>
#include <map>
#include <thread>
#include <utility>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace groupshare {

class WorkQueue {
 public:
  explicit WorkQueue(int threads);
  ~WorkQueue();
  WorkQueue(const WorkQueue&) = delete;
  WorkQueue& operator=(const WorkQueue&) = delete;

  // Runs `task` on one of the threads as soon as one is free.
  void Run(std::function<void()> task) ABSL_LOCKS_EXCLUDED(mu_) {
    RunAt(absl::InfinitePast(), std::move(task));
  }
  // Runs `task` at `when` or soon after; tasks due at the same time run in
  // the order given.
  void RunAt(absl::Time when, std::function<void()> task) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  void Loop() ABSL_LOCKS_EXCLUDED(mu_);

  absl::Mutex mu_;
  absl::CondVar changed_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t next_seq_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<std::pair<absl::Time, uint64_t>, std::function<void()>> tasks_ ABSL_GUARDED_BY(mu_);
  std::vector<std::thread> threads_;
};

}  // namespace groupshare

#endif  // GROUPSHARE_CORE_WORK_QUEUE_H_
