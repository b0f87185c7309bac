#include "core/thread_pool.h"

#include <algorithm>

namespace lmfleet {

ThreadPool::ThreadPool(int threads) {
  if (threads <= 0) threads = (int)std::max(1u, std::thread::hardware_concurrency());
  for (int i = 0; i < threads - 1; i++) workers_.emplace_back([this] { worker_loop(); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  cv_start_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::drain() {
  for (;;) {
    int64_t i = next_.fetch_add(1);
    if (i >= n_tasks_) break;
    try {
      (*fn_)(i);
    } catch (...) {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!error_) error_ = std::current_exception();
    }
    finished_.fetch_add(1);
  }
}

void ThreadPool::worker_loop() {
  uint64_t seen = 0;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mutex_);
      cv_start_.wait(lock, [&] { return stop_ || generation_ != seen; });
      if (stop_) return;
      seen = generation_;
      active_++;
    }
    drain();
    {
      std::lock_guard<std::mutex> lock(mutex_);
      active_--;
    }
    cv_done_.notify_all();
  }
}

void ThreadPool::run(int64_t n_tasks, const std::function<void(int64_t)>& fn) {
  if (n_tasks <= 0) return;
  std::lock_guard<std::mutex> call_lock(call_mutex_);
  if (n_tasks == 1 || workers_.empty()) {
    for (int64_t i = 0; i < n_tasks; i++) fn(i);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    fn_ = &fn;
    n_tasks_ = n_tasks;
    next_ = 0;
    finished_ = 0;
    error_ = nullptr;
    generation_++;
  }
  cv_start_.notify_all();
  drain();
  std::unique_lock<std::mutex> lock(mutex_);
  cv_done_.wait(lock, [&] { return finished_.load() >= n_tasks_ && active_ == 0; });
  fn_ = nullptr;
  if (error_) {
    auto e = error_;
    error_ = nullptr;
    std::rethrow_exception(e);
  }
}

void ThreadPool::parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& fn, int64_t min_chunk) {
  if (n <= 0) return;
  int64_t chunks = std::min<int64_t>(n / std::max<int64_t>(1, min_chunk), (int64_t)size() * 4);
  chunks = std::max<int64_t>(1, chunks);
  int64_t per = (n + chunks - 1) / chunks;
  run(chunks, [&](int64_t c) {
    int64_t b = c * per, e = std::min(n, b + per);
    if (b < e) fn(b, e);
  });
}

}  // namespace lmfleet
