// Collectives between the tensor-parallel ranks of one model (Megatron-style TP, engine/tp_plan.h). Every rank calls
// the same sequence of collectives from its own thread (one thread per rank: a worker process drives its N
// devices); a call returns when the rank's output is ready to use on the rank's backend.
//
// Implementations:
//   cpu    make_cpu_collective: N ranks are threads sharing host memory (tests, the cpu backend).
//   nccl   (cuda variant, cuda/collective_cuda.cu): libnccl.so.2 loaded at run time with
//          dlopen, one communicator per rank, the calls enqueued on the rank's stream. NCCL_NVLS_ENABLE=0 is set
//          before the communicators are made (NVLink multicast stays off).
//   device (cuda variant, same file): every rank on the same GPU (no NCCL): the ranks' device
//          buffers are summed / copied by a kernel, so the CUDA sharding can be checked on a 1-GPU machine.
//
// Summation order is fixed (rank 0 + rank 1 + ... in that order, for every element), so every rank gets the
// same bits and a run is reproducible.
#pragma once
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace lmfleet {

class Collective {
 public:
  virtual ~Collective() = default;
  virtual const char* name() const = 0;
  virtual int size() const = 0;
  // In place: buf [count] becomes the element-wise sum over ranks (same bits on every rank).
  virtual void all_reduce_sum(int rank, float* buf, int64_t count) = 0;
  // send [rows, cols] of every rank -> recv [rows, cols * size], rank r's block at columns [r * cols, (r+1) * cols).
  // (rows == 1: a plain rank-major concatenation.)
  virtual void all_gather(int rank, const float* send, float* recv, int64_t rows, int64_t cols) = 0;
  // The same on f16 data (the cuda decoder's activations; the ranks' device buffers). cpu: E_INTERNAL.
  virtual void all_reduce_sum_f16(int rank, void* buf, int64_t count) = 0;
  // Where supported (the cuda peer exchange): buf (f16 [rows, cols]) summed over ranks, then residual += sum and
  // out = rms_norm(residual) * w, fused on the rank's stream — the bits of all_reduce_sum_f16 followed by the
  // add-rms-norm kernel. False: nothing was done; the caller runs the two steps.
  virtual bool all_reduce_add_rms_norm_f16(int /*rank*/, const void* /*buf*/, void* /*residual*/, const void* /*w*/, void* /*out*/,
                                           int64_t /*rows*/, int64_t /*cols*/, float /*eps*/) {
    return false;
  }
  virtual void barrier(int rank) = 0;
  // True when the calls can be captured into a CUDA graph on the rank's stream (NCCL); false when they wait on
  // the host for the other ranks (cpu, the same-GPU device collective).
  virtual bool graph_capturable() const { return false; }
  // A rank that failed calls abort() so that ranks waiting in a collective throw instead of waiting forever;
  // reset() (with no rank inside a call) makes the collective usable again.
  virtual void abort() = 0;
  virtual void reset() = 0;
};

// N threads meet at wait(); abort() makes the waiting threads and every later arrival throw E_INTERNAL ("collective
// aborted: another tensor-parallel rank failed") until reset(). The host side of the cpu and same-GPU collectives.
class HostBarrier {
 public:
  explicit HostBarrier(int n) : n_(n) {}
  void wait();
  void abort();
  void reset();

 private:
  int n_;
  std::mutex mu_;
  std::condition_variable cv_;
  int arrived_ = 0;
  uint64_t gen_ = 0;
  bool aborted_ = false;
};

std::unique_ptr<Collective> make_cpu_collective(int size);

#ifdef LMFLEET_WITH_CUDA
class Backend;
// The ranks' cuda backends (rank r's device and stream): NCCL when the devices differ, the device collective
// when they are all the same GPU (cuda/collective_cuda.cu). E_BACKEND_UNAVAILABLE (with dlerror) without NCCL.
std::unique_ptr<Collective> make_cuda_tp_collective(const std::vector<Backend*>& ranks);
class RankThreads;
// Times `calls` back-to-back f16 all-reduces of [rows, cols] on every rank (fused: all_reduce_add_rms_norm_f16, where
// the collective takes it), captured into one CUDA graph per rank when the collective is graph-capturable (as the
// decode steps are), else enqueued eagerly. Returns rank 0's median over `reps` launches, in microseconds per call.
struct CollectiveTiming {
  double us_per_call = 0;  // with flush_mb: an exchange plus its flush
  double flush_us = 0;     // with flush_mb: one flush alone (rank 0, the same graph timing)
  bool graphed = false;
  bool fused = false;  // the fused kernel ran (false: it was asked for but not taken, so the plain all-reduce ran)
};
// all_reduce_add_rms_norm_f16 on f16 copies of the given values (x [rows, cols] per rank; residual [rows, cols] and
// w [cols] the same on every rank, as tensor parallelism keeps them), `repeat` times from the same inputs. fused:
// the collective took the call (false: nothing ran, y and residual are empty). Outputs back in f32, per rank.
struct FusedNormRun {
  bool fused = false;
  std::vector<std::vector<float>> y, residual;
};
FusedNormRun run_cuda_all_reduce_add_rms_norm_f16(Collective& coll, const std::vector<Backend*>& ranks, RankThreads& threads,
                                                  const std::vector<std::vector<float>>& x, const std::vector<float>& residual,
                                                  const std::vector<float>& w, int64_t rows, int64_t cols, float eps, int repeat);
// flush_mb > 0: a streaming read of that many MB (per rank) before each exchange, as a decode GEMV streams its weights
// between two exchanges, so the exchange's own small loads miss L2 as they do in a decode step.
CollectiveTiming time_cuda_all_reduce_f16(Collective& coll, const std::vector<Backend*>& ranks, RankThreads& threads, int64_t rows,
                                          int64_t cols, int calls, int reps, bool fused, int64_t flush_mb = 0);
#endif

// Runs fn(rank) for every rank on its own thread (rank 0 on the caller's) and rethrows the first failure
// (aborting the collective so that no rank waits forever, then resetting it). Threads persist between calls.
class RankThreads {
 public:
  // spin_us: LMFLEET_TP_SPIN_US's default (collective.cc): how long the threads poll before they sleep
  explicit RankThreads(int size, int64_t spin_us = 0);
  ~RankThreads();
  RankThreads(const RankThreads&) = delete;
  RankThreads& operator=(const RankThreads&) = delete;
  int size() const { return size_; }
  void run(Collective* coll, const std::function<void(int)>& fn);

 private:
  struct Impl;
  int size_;
  int64_t spin_default_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace lmfleet
