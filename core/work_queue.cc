#include "core/work_queue.h"

#include "absl/time/clock.h"

namespace groupshare {

WorkQueue::WorkQueue(int threads) {
  for (int i = 0; i < threads; ++i) threads_.emplace_back(&WorkQueue::Loop, this);
}

WorkQueue::~WorkQueue() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
    tasks_.clear();
    changed_.SignalAll();
  }
  for (std::thread& t : threads_) t.join();
}

void WorkQueue::RunAt(absl::Time when, std::function<void()> task) {
  absl::MutexLock lock(&mu_);
  if (stop_) return;
  tasks_.emplace(std::make_pair(when, next_seq_++), std::move(task));
  // Every thread re-reads the earliest due time; one of them takes it.
  changed_.SignalAll();
}

void WorkQueue::Loop() {
  while (true) {
    std::function<void()> task;
    {
      absl::MutexLock lock(&mu_);
      while (true) {
        if (stop_) return;
        if (!tasks_.empty() && tasks_.begin()->first.first <= absl::Now()) break;
        if (tasks_.empty()) {
          changed_.Wait(&mu_);
        } else {
          changed_.WaitWithDeadline(&mu_, tasks_.begin()->first.first);
        }
      }
      auto it = tasks_.begin();
      task = std::move(it->second);
      tasks_.erase(it);
    }
    task();
  }
}

}  // namespace groupshare
