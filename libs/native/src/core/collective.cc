#include "core/collective.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <condition_variable>
#include <cstring>
#include <exception>
#include <mutex>
#include <thread>

#include "core/env.h"
#include "core/error.h"

namespace lmfleet {

void HostBarrier::wait() {
  std::unique_lock<std::mutex> l(mu_);
  if (aborted_) fail(ErrorCode::Internal, "collective aborted: another tensor-parallel rank failed");
  const uint64_t g = gen_;
  if (++arrived_ == n_) {
    arrived_ = 0;
    gen_++;
    cv_.notify_all();
    return;
  }
  cv_.wait(l, [&] { return gen_ != g || aborted_; });
  if (gen_ == g) fail(ErrorCode::Internal, "collective aborted: another tensor-parallel rank failed");
}

void HostBarrier::abort() {
  std::lock_guard<std::mutex> l(mu_);
  aborted_ = true;
  cv_.notify_all();
}

void HostBarrier::reset() {
  std::lock_guard<std::mutex> l(mu_);
  aborted_ = false;
  arrived_ = 0;
  gen_++;
}

namespace {

// N ranks as threads over shared host memory. Each call: the rank posts its pointers, a barrier, the work
// (all-reduce: rank r sums its slice of every rank's buffer into a shared scratch; all-gather: every rank
// copies the blocks it needs), a barrier; the all-reduce then copies the scratch back. The scratch alternates
// between two halves, so the next call's writes never race this call's reads (a third barrier saved).
class CpuCollective : public Collective {
 public:
  explicit CpuCollective(int n) : n_(n), src_((size_t)n, nullptr), count_((size_t)n, 0), parity_((size_t)n, 0), barrier_(n) {
    if (n <= 0) fail(ErrorCode::InvalidArgument, "collective: size must be > 0");
  }
  const char* name() const override { return "cpu"; }
  int size() const override { return n_; }

  void all_reduce_sum(int rank, float* buf, int64_t count) override {
    check(rank);
    if (n_ == 1) return;
    src_[rank] = buf;
    count_[rank] = count;
    // Size this call's scratch half before the first barrier: nobody reads it now (its last readers finished
    // two calls ago, before the previous call's first barrier) and nobody writes it before that barrier.
    float* out = grow_scratch(parity_[rank], count);
    wait();
    for (int r = 0; r < n_; r++)
      if (count_[r] != count)
        fail(ErrorCode::Internal, "collective: all_reduce_sum called with different counts on ranks 0 and " + std::to_string(r));
    out = scratch_[parity_[rank]].data();
    // The slice of elements this rank reduces, in rank order.
    const int64_t per = (count + n_ - 1) / n_, lo = std::min<int64_t>(count, per * rank), hi = std::min<int64_t>(count, lo + per);
    for (int64_t i = lo; i < hi; i++) {
      float s = src_[0][i];
      for (int r = 1; r < n_; r++) s += src_[r][i];
      out[i] = s;
    }
    wait();
    std::memcpy(buf, out, (size_t)count * 4);
    parity_[rank] ^= 1;
  }

  void all_gather(int rank, const float* send, float* recv, int64_t rows, int64_t cols) override {
    check(rank);
    src_[rank] = send;
    count_[rank] = rows * cols;
    wait();
    for (int r = 0; r < n_; r++) {
      if (count_[r] != rows * cols)
        fail(ErrorCode::Internal, "collective: all_gather called with different sizes on ranks 0 and " + std::to_string(r));
      for (int64_t i = 0; i < rows; i++)
        std::memcpy(recv + i * cols * n_ + (int64_t)r * cols, src_[r] + i * cols, (size_t)cols * 4);
    }
    wait();
  }

  void all_reduce_sum_f16(int, void*, int64_t) override {
    fail(ErrorCode::Internal, "collective: the cpu collective has no f16 all-reduce (the cpu decoder computes in f32)");
  }

  void barrier(int rank) override {
    check(rank);
    wait();
  }

  void abort() override { barrier_.abort(); }
  void reset() override {
    barrier_.reset();
    std::lock_guard<std::mutex> l(mu_);
    std::fill(parity_.begin(), parity_.end(), 0);
  }

 private:
  void check(int rank) const {
    if (rank < 0 || rank >= n_) fail(ErrorCode::Internal, "collective: rank " + std::to_string(rank) + " outside [0, " + std::to_string(n_) + ")");
  }
  void wait() { barrier_.wait(); }
  float* grow_scratch(int half, int64_t count) {
    std::lock_guard<std::mutex> l(mu_);
    std::vector<float>& s = scratch_[half];
    if ((int64_t)s.size() < count) s.resize((size_t)count);
    return s.data();
  }

  int n_;
  std::vector<const float*> src_;
  std::vector<int64_t> count_;
  std::vector<float> scratch_[2];
  std::vector<int> parity_;
  std::mutex mu_;  // the scratch halves and parities
  HostBarrier barrier_;
};

}  // namespace

std::unique_ptr<Collective> make_cpu_collective(int size) { return std::make_unique<CpuCollective>(size); }

// LMFLEET_TP_SPIN_US (read at each run(); default: the constructor's, 20 ms for cuda ranks, 0 on the cpu, whose
// ranks' compute threads need the cores): how long a rank thread polls for the next run (and rank 0 for the
// others to finish) before it sleeps on the condition variable. A decode loop calls run() once per step, so a
// sleeping rank thread's wake-up (a futex wake, tens of microseconds on an idle core) delays that rank's launches,
// and every rank's first exchange waits for the last to arrive. Polling costs a core per rank while it lasts.
namespace {
int64_t tp_spin_us(int64_t dflt) { return std::max<int64_t>(0, env_int("LMFLEET_TP_SPIN_US", (int)dflt)); }
inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#else
  std::this_thread::yield();
#endif
}
// Polls until done() or the time is up; the caller then waits on its condition variable (at once when done()).
template <typename Done>
void spin_until(int64_t us, Done done) {
  if (us <= 0) return;
  const auto end = std::chrono::steady_clock::now() + std::chrono::microseconds(us);
  for (int i = 1; !done(); i++) {
    cpu_relax();
    if ((i & 255) == 0 && std::chrono::steady_clock::now() > end) return;
  }
}
}  // namespace

// Ranks 1..size-1 each have a thread that waits for a job generation, runs fn(rank) and reports back.
struct RankThreads::Impl {
  std::mutex mu;
  std::condition_variable cv_start, cv_done;
  const std::function<void(int)>* fn = nullptr;
  std::atomic<uint64_t> gen{0};  // written under mu; read without it while polling
  std::atomic<int> pending{0};
  std::atomic<int64_t> spin_us{0};
  std::atomic<bool> stop{false};  // written under mu; read without it while polling
  std::exception_ptr error;
  Collective* coll = nullptr;
  std::vector<std::thread> threads;

  void finish(std::exception_ptr e) {
    std::lock_guard<std::mutex> l(mu);
    if (e && !error) {
      error = e;
      if (coll) coll->abort();
    }
    if (pending.fetch_sub(1) == 1) cv_done.notify_all();
  }
  void loop(int rank) {
    uint64_t seen = 0;
    for (;;) {
      spin_until(spin_us.load(std::memory_order_relaxed),
                 [&] { return gen.load(std::memory_order_acquire) != seen || stop.load(std::memory_order_relaxed); });
      const std::function<void(int)>* f;
      {
        std::unique_lock<std::mutex> l(mu);
        cv_start.wait(l, [&] { return stop || gen.load() != seen; });
        if (stop) return;
        seen = gen.load();
        f = fn;
      }
      std::exception_ptr e;
      try {
        (*f)(rank);
      } catch (...) {
        e = std::current_exception();
      }
      finish(e);
    }
  }
};

RankThreads::RankThreads(int size, int64_t spin_us) : size_(size), spin_default_(spin_us), impl_(std::make_unique<Impl>()) {
  if (size <= 0) fail(ErrorCode::InvalidArgument, "tensor parallel: tp must be > 0");
  for (int r = 1; r < size; r++) impl_->threads.emplace_back([this, r] { impl_->loop(r); });
}

RankThreads::~RankThreads() {
  {
    std::lock_guard<std::mutex> l(impl_->mu);
    impl_->stop = true;
  }
  impl_->cv_start.notify_all();
  for (auto& t : impl_->threads) t.join();
}

void RankThreads::run(Collective* coll, const std::function<void(int)>& fn) {
  Impl& I = *impl_;
  {
    std::lock_guard<std::mutex> l(I.mu);
    I.fn = &fn;
    I.coll = coll;
    I.error = nullptr;
    I.pending = size_;
    I.spin_us = tp_spin_us(spin_default_);
    I.gen++;
  }
  I.cv_start.notify_all();
  std::exception_ptr e;
  try {
    fn(0);
  } catch (...) {
    e = std::current_exception();
  }
  I.finish(e);
  std::exception_ptr first;
  spin_until(I.spin_us.load(std::memory_order_relaxed), [&] { return I.pending.load(std::memory_order_acquire) == 0; });
  {
    std::unique_lock<std::mutex> l(I.mu);
    I.cv_done.wait(l, [&] { return I.pending.load() == 0; });
    first = I.error;
    I.fn = nullptr;
  }
  if (first) {
    if (coll) coll->reset();
    std::rethrow_exception(first);
  }
}

}  // namespace lmfleet
