// A small fork-join pool: run(n_tasks, fn) calls fn(task) for every task on the workers and the calling
// thread, and returns when all are done. Callers from different threads are serialized (one job at a time).
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace lmfleet {

class ThreadPool {
 public:
  explicit ThreadPool(int threads);  // threads <= 0: hardware concurrency
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return (int)workers_.size() + 1; }
  void run(int64_t n_tasks, const std::function<void(int64_t)>& fn);
  // Splits [0, n) into about size()*chunks_per_thread ranges.
  void parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& fn, int64_t min_chunk = 1);

 private:
  void worker_loop();
  void drain();

  std::vector<std::thread> workers_;
  std::mutex call_mutex_;  // serializes run() callers
  std::mutex mutex_;
  std::condition_variable cv_start_, cv_done_;
  const std::function<void(int64_t)>* fn_ = nullptr;
  int64_t n_tasks_ = 0;
  std::atomic<int64_t> next_{0};
  std::atomic<int64_t> finished_{0};
  uint64_t generation_ = 0;
  int active_ = 0;
  bool stop_ = false;
  std::exception_ptr error_;
};

}  // namespace lmfleet
