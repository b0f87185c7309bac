// The cuda collectives of tensor parallelism (core/collective.h), for ranks that are CudaBackends (one per rank,
// each with its own stream) driven by one thread each:
//   NcclCollective    ranks on different GPUs: libnccl.so.2 loaded at run time (dlopen; LMFLEET_NCCL_LIB names
//                     another path), one communicator per rank from ncclCommInitAll, calls enqueued on the
//                     rank's stream. NCCL_NVLS_ENABLE=0 is set before init (NVLink multicast stays off).
//                     When the GPUs reach each other's memory, the peer exchange (peer_collective.h) takes every
//                     call inside a graph capture (NCCL stays out of graphs) and eager calls up to 4 MiB.
//   DeviceCollective  every rank on the same GPU (checking the sharding on a 1-GPU machine): the ranks post their
//                     device pointers and an event, meet at a host barrier, make their stream wait on the others'
//                     events and run a kernel that sums a slice of every rank's buffer in rank order into a
//                     scratch (double-buffered, as the cpu collective), then copy it back. Not graph-capturable.
// The few NCCL types and entry points used are declared here (no nccl.h is needed to build).
#include <dlfcn.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <functional>
#include <cstdlib>
#include <mutex>
#include <string>
#include <vector>

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "core/collective.h"
#include "core/dtype.h"
#include "core/env.h"
#include "core/error.h"
#include "cuda/backend_cuda.h"
#include "cuda/check.cuh"
#include "cuda/peer_collective.h"
#include "cuda/stream_read.cuh"

namespace lmfleet {

namespace {

// ---- NCCL, declared ourselves (values as in NCCL's public header, stable since 2.x) ----------------------------
struct NcclComm;
using ncclComm_t = NcclComm*;
using ncclResult_t = int;  // 0: ncclSuccess
enum NcclDataType { kNcclHalf = 6, kNcclFloat = 7 };
enum NcclRedOp { kNcclSum = 0 };

struct NcclApi {
  void* lib = nullptr;
  std::string error;
  ncclResult_t (*CommInitAll)(ncclComm_t*, int, const int*) = nullptr;
  ncclResult_t (*CommDestroy)(ncclComm_t) = nullptr;
  ncclResult_t (*CommAbort)(ncclComm_t) = nullptr;
  ncclResult_t (*AllReduce)(const void*, void*, size_t, int, int, ncclComm_t, cudaStream_t) = nullptr;
  ncclResult_t (*AllGather)(const void*, void*, size_t, int, ncclComm_t, cudaStream_t) = nullptr;
  const char* (*GetErrorString)(ncclResult_t) = nullptr;
  ncclResult_t (*GetVersion)(int*) = nullptr;
};

const NcclApi& nccl() {
  static NcclApi api = [] {
    NcclApi a;
    std::vector<std::string> names;
    if (const char* p = std::getenv("LMFLEET_NCCL_LIB")) names.push_back(p);
    names.push_back("libnccl.so.2");
    names.push_back("libnccl.so");
    for (const auto& n : names) {
      a.lib = dlopen(n.c_str(), RTLD_NOW | RTLD_LOCAL);
      if (a.lib) break;
      a.error += (a.error.empty() ? "" : "; ") + n + ": " + dlerror();
    }
    if (!a.lib) return a;
    auto sym = [&](const char* name) {
      void* f = dlsym(a.lib, name);
      if (!f) a.error += std::string(a.error.empty() ? "" : "; ") + "missing symbol " + name;
      return f;
    };
    a.CommInitAll = reinterpret_cast<decltype(a.CommInitAll)>(sym("ncclCommInitAll"));
    a.CommDestroy = reinterpret_cast<decltype(a.CommDestroy)>(sym("ncclCommDestroy"));
    a.CommAbort = reinterpret_cast<decltype(a.CommAbort)>(sym("ncclCommAbort"));
    a.AllReduce = reinterpret_cast<decltype(a.AllReduce)>(sym("ncclAllReduce"));
    a.AllGather = reinterpret_cast<decltype(a.AllGather)>(sym("ncclAllGather"));
    a.GetErrorString = reinterpret_cast<decltype(a.GetErrorString)>(sym("ncclGetErrorString"));
    a.GetVersion = reinterpret_cast<decltype(a.GetVersion)>(sym("ncclGetVersion"));
    if (!a.error.empty()) {
      dlclose(a.lib);
      a.lib = nullptr;
    }
    return a;
  }();
  return api;
}

void nccl_check(ncclResult_t r, const char* what) {
  if (r != 0) fail(ErrorCode::Cuda, std::string(what) + " failed: " + nccl().GetErrorString(r) + " (NCCL error " + std::to_string(r) + ")");
}

CudaBackend& cuda_of(Backend* b) {
  auto* c = dynamic_cast<CudaBackend*>(b);
  if (!c) fail(ErrorCode::Internal, "tensor parallel: every rank of a cuda model must be on the cuda backend");
  return *c;
}

class NcclCollective : public Collective {
 public:
  explicit NcclCollective(const std::vector<Backend*>& ranks) {
    const NcclApi& a = nccl();
    if (!a.lib) fail(ErrorCode::BackendUnavailable, "tensor parallel over GPUs needs NCCL (libnccl.so.2; set LMFLEET_NCCL_LIB to its path): " + a.error);
    setenv("NCCL_NVLS_ENABLE", "0", 1);  // NVLink multicast stays off, whatever the environment says
    std::vector<int> devs;
    for (Backend* b : ranks) {
      CudaBackend& c = cuda_of(b);
      devs.push_back(c.device());
      streams_.push_back(c.stream());
      devices_.push_back(c.device());
    }
    comms_.assign(ranks.size(), nullptr);
    scratch_ = std::vector<DeviceScratch>(ranks.size());
    nccl_check(a.CommInitAll(comms_.data(), (int)ranks.size(), devs.data()), "ncclCommInitAll");
    peer_ = PeerExchange::make(devices_, streams_, &no_peer_);
    fuse_ = env_switch("LMFLEET_TP_FUSE", true);  // 0: the all-reduce and the add-rms-norm as two kernels
  }
  ~NcclCollective() override {
    peer_.reset();
    for (size_t r = 0; r < comms_.size(); r++)
      if (comms_[r] && !aborted_) {
        cudaSetDevice(devices_[r]);
        cudaStreamSynchronize(streams_[r]);
        nccl().CommDestroy(comms_[r]);
      }
  }
  const char* name() const override { return "nccl"; }
  int size() const override { return (int)comms_.size(); }
  // Captured steps use the peer exchange only: NCCL collectives captured by one process that drives several GPUs
  // may deadlock at graph launch (NCCL's documentation; seen here: tp 2 decode hung with graphs on).
  bool graph_capturable() const override { return peer_ != nullptr; }

  void all_reduce_sum(int rank, float* buf, int64_t count) override {
    usable();
    if (via_peer(rank, (size_t)count * 4)) return peer_->all_reduce_f32(rank, buf, count);
    nccl_check(nccl().AllReduce(buf, buf, (size_t)count, kNcclFloat, kNcclSum, comms_[rank], streams_[rank]), "ncclAllReduce");
  }
  void all_reduce_sum_f16(int rank, void* buf, int64_t count) override {
    usable();
    if (via_peer(rank, (size_t)count * 2)) return peer_->all_reduce_f16(rank, buf, count);
    nccl_check(nccl().AllReduce(buf, buf, (size_t)count, kNcclHalf, kNcclSum, comms_[rank], streams_[rank]), "ncclAllReduce");
  }
  bool all_reduce_add_rms_norm_f16(int rank, const void* buf, void* residual, const void* w, void* out, int64_t rows, int64_t cols,
                                   float eps) override {
    usable();
    if (!fuse_ || !via_peer(rank, (size_t)(rows * cols) * 2)) return false;
    return peer_->all_reduce_add_rms_norm_f16(rank, buf, residual, w, out, rows, cols, eps);
  }
  void all_gather(int rank, const float* send, float* recv, int64_t rows, int64_t cols) override {
    usable();
    const int n = size();
    const bool peer = via_peer(rank, (size_t)(rows * cols) * 4 * n);
    if (rows == 1) {  // rank-major already
      if (peer) return peer_->all_gather(rank, send, recv, cols * 4);
      nccl_check(nccl().AllGather(send, recv, (size_t)cols, kNcclFloat, comms_[rank], streams_[rank]), "ncclAllGather");
      return;
    }
    // [n][rows][cols] into a scratch, then each rank's block to its columns of recv [rows, cols * n]
    float* tmp = scratch_for(rank, (size_t)(rows * cols * n));
    if (peer)
      peer_->all_gather(rank, send, tmp, rows * cols * 4);
    else
      nccl_check(nccl().AllGather(send, tmp, (size_t)(rows * cols), kNcclFloat, comms_[rank], streams_[rank]), "ncclAllGather");
    for (int r = 0; r < n; r++)
      LMF_CUDA_CHECK(cudaMemcpy2DAsync(recv + (size_t)r * cols, (size_t)cols * n * 4, tmp + (size_t)r * rows * cols, (size_t)cols * 4,
                                       (size_t)cols * 4, (size_t)rows, cudaMemcpyDeviceToDevice, streams_[rank]));
  }
  void barrier(int rank) override { LMF_CUDA_CHECK(cudaStreamSynchronize(streams_[rank])); }
  // A rank failed while the others may have enqueued collectives it will never join: abort the communicators
  // (their kernels stop) and refuse further use; the model must be loaded again.
  void abort() override {
    std::lock_guard<std::mutex> l(mu_);
    if (aborted_) return;
    aborted_ = true;
    if (peer_) peer_->abort();  // blocks waiting at a peer barrier give up
    for (auto c : comms_)
      if (c) nccl().CommAbort(c);
  }
  void reset() override {}

 private:
  void usable() {
    if (aborted_) fail(ErrorCode::Cuda, "NCCL communicators were aborted after a tensor-parallel rank failed: load the model again");
  }
  float* scratch_for(int rank, size_t n) { return scratch_[(size_t)rank].as<float>(n); }  // own rank's slot only
  // Inside a graph capture always (NCCL must stay out of graphs); eagerly for messages up to the exchange buffer.
  bool via_peer(int rank, size_t bytes) const {
    if (!peer_) return false;
    cudaStreamCaptureStatus st = cudaStreamCaptureStatusNone;
    LMF_CUDA_CHECK(cudaStreamIsCapturing(streams_[rank], &st));
    return st != cudaStreamCaptureStatusNone || bytes <= peer_->eager_max_bytes();
  }
  std::vector<ncclComm_t> comms_;
  std::vector<cudaStream_t> streams_;
  std::vector<int> devices_;
  std::vector<DeviceScratch> scratch_;
  std::unique_ptr<PeerExchange> peer_;  // null when the GPUs cannot reach each other's memory (no_peer_ says why)
  std::string no_peer_;
  bool fuse_ = true;
  std::mutex mu_;
  std::atomic<bool> aborted_{false};
};

// ---- same-GPU ranks ---------------------------------------------------------------------------------------------

template <typename T>
__global__ void sum_slice_kernel(const T* const* __restrict__ srcs, int n, T* __restrict__ out, int64_t lo, int64_t hi) {
  for (int64_t i = lo + blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < hi; i += (int64_t)gridDim.x * blockDim.x) {
    float s = (float)srcs[0][i];
    for (int r = 1; r < n; r++) s += (float)srcs[r][i];
    out[i] = (T)s;
  }
}

class DeviceCollective : public Collective {
 public:
  explicit DeviceCollective(const std::vector<Backend*>& ranks) : n_((int)ranks.size()), barrier_((int)ranks.size()) {
    for (Backend* b : ranks) {
      CudaBackend& c = cuda_of(b);
      if (c.device() != cuda_of(ranks[0]).device()) fail(ErrorCode::Internal, "device collective: every rank must be on one GPU");
      streams_.push_back(c.stream());
    }
    device_ = cuda_of(ranks[0]).device();
    LMF_CUDA_CHECK(cudaSetDevice(device_));
    post_.resize(n_);
    done_.resize(n_);
    for (int r = 0; r < n_; r++) {
      LMF_CUDA_CHECK(cudaEventCreateWithFlags(&post_[r], cudaEventDisableTiming));
      LMF_CUDA_CHECK(cudaEventCreateWithFlags(&done_[r], cudaEventDisableTiming));
    }
    ptrs_.assign(n_, nullptr);
    parity_.assign(n_, 0);
    LMF_CUDA_CHECK(cudaMalloc(&dev_ptrs_, sizeof(void*) * n_ * n_ * 2));  // per rank, per parity: the n source pointers
  }
  ~DeviceCollective() override {
    cudaSetDevice(device_);
    for (auto s : streams_) cudaStreamSynchronize(s);
    for (auto e : post_) cudaEventDestroy(e);
    for (auto e : done_) cudaEventDestroy(e);
    for (auto* p : scratch_) if (p) cudaFree(p);
    if (dev_ptrs_) cudaFree(dev_ptrs_);
  }
  const char* name() const override { return "device"; }
  int size() const override { return n_; }

  void all_reduce_sum(int rank, float* buf, int64_t count) override { reduce<float>(rank, buf, count); }
  void all_reduce_sum_f16(int rank, void* buf, int64_t count) override { reduce<half>(rank, static_cast<half*>(buf), count); }

  void all_gather(int rank, const float* send, float* recv, int64_t rows, int64_t cols) override {
    post(rank, const_cast<float*>(send));
    wait_all(post_, rank);
    for (int r = 0; r < n_; r++)
      LMF_CUDA_CHECK(cudaMemcpy2DAsync(recv + (size_t)r * cols, (size_t)cols * n_ * 4, ptrs_[r], (size_t)cols * 4, (size_t)cols * 4,
                                       (size_t)rows, cudaMemcpyDeviceToDevice, streams_[rank]));
    LMF_CUDA_CHECK(cudaEventRecord(done_[rank], streams_[rank]));
    host_barrier();
    wait_all(done_, rank);  // nobody overwrites its send buffer before every rank has read it
  }
  void barrier(int rank) override {
    LMF_CUDA_CHECK(cudaStreamSynchronize(streams_[rank]));
    host_barrier();
  }
  void abort() override { barrier_.abort(); }
  void reset() override {
    barrier_.reset();
    std::lock_guard<std::mutex> l(mu_);
    std::fill(parity_.begin(), parity_.end(), 0);
  }

 private:
  template <typename T>
  void reduce(int rank, T* buf, int64_t count) {
    if (n_ == 1) return;
    const int p = parity_[rank];
    T* scratch = static_cast<T*>(scratch_half(p, (size_t)count * sizeof(T)));
    post(rank, buf);  // after the host barrier inside post: every rank's pointer and event are there
    wait_all(post_, rank);
    // this rank's slice of the sum, from every rank's buffer, in rank order
    void** dp = dev_ptrs_ + ((size_t)rank * 2 + p) * n_;
    LMF_CUDA_CHECK(cudaMemcpyAsync(dp, ptrs_.data(), sizeof(void*) * n_, cudaMemcpyHostToDevice, streams_[rank]));
    const int64_t per = (count + n_ - 1) / n_, lo = std::min<int64_t>(count, per * rank), hi = std::min<int64_t>(count, lo + per);
    if (hi > lo) {
      const int blocks = (int)std::min<int64_t>(1024, (hi - lo + 255) / 256);
      sum_slice_kernel<T><<<blocks, 256, 0, streams_[rank]>>>(reinterpret_cast<const T* const*>(dp), n_, scratch, lo, hi);
      LMF_CUDA_LAUNCHED();
    }
    LMF_CUDA_CHECK(cudaEventRecord(done_[rank], streams_[rank]));
    host_barrier();
    wait_all(done_, rank);
    LMF_CUDA_CHECK(cudaMemcpyAsync(buf, scratch, (size_t)count * sizeof(T), cudaMemcpyDeviceToDevice, streams_[rank]));
    parity_[rank] ^= 1;
  }
  // Records the rank's post event, publishes its pointer, waits for every rank at the host barrier. The pinned
  // pointer array is copied per call before the next post can change it (ptrs_ is read right after the barrier,
  // and a rank posts again only after the next barrier).
  void post(int rank, void* p) {
    LMF_CUDA_CHECK(cudaEventRecord(post_[rank], streams_[rank]));
    ptrs_[rank] = p;
    host_barrier();
  }
  void wait_all(const std::vector<cudaEvent_t>& evs, int rank) {
    for (int r = 0; r < n_; r++)
      if (r != rank) LMF_CUDA_CHECK(cudaStreamWaitEvent(streams_[rank], evs[r], 0));
  }
  void* scratch_half(int p, size_t bytes) {
    std::lock_guard<std::mutex> l(mu_);
    if (bytes > scratch_bytes_[p]) {
      // the other ranks may still read this half from two calls ago on the GPU: wait for every stream first
      for (auto s : streams_) LMF_CUDA_CHECK(cudaStreamSynchronize(s));
      if (scratch_[p]) LMF_CUDA_CHECK(cudaFree(scratch_[p]));
      LMF_CUDA_CHECK(cudaMalloc(&scratch_[p], bytes));
      scratch_bytes_[p] = bytes;
    }
    return scratch_[p];
  }
  void host_barrier() { barrier_.wait(); }

  int n_, device_ = 0;
  std::vector<cudaStream_t> streams_;
  std::vector<cudaEvent_t> post_, done_;
  std::vector<void*> ptrs_;
  std::vector<int> parity_;
  void** dev_ptrs_ = nullptr;
  void* scratch_[2] = {nullptr, nullptr};
  size_t scratch_bytes_[2] = {0, 0};
  std::mutex mu_;  // the scratch halves and parities
  HostBarrier barrier_;
};

}  // namespace

FusedNormRun run_cuda_all_reduce_add_rms_norm_f16(Collective& coll, const std::vector<Backend*>& ranks, RankThreads& threads,
                                                  const std::vector<std::vector<float>>& x, const std::vector<float>& residual,
                                                  const std::vector<float>& w, int64_t rows, int64_t cols, float eps, int repeat) {
  const int n = (int)ranks.size();
  const size_t count = (size_t)(rows * cols);
  auto to_f16 = [](const float* p, size_t k) {
    std::vector<uint16_t> h(k);
    for (size_t i = 0; i < k; i++) h[i] = f32_to_f16(p[i]);
    return h;
  };
  const std::vector<uint16_t> res16 = to_f16(residual.data(), count), w16 = to_f16(w.data(), (size_t)cols);
  FusedNormRun out;
  out.y.assign((size_t)n, {});
  out.residual.assign((size_t)n, {});
  std::vector<int> took((size_t)n, 1);
  for (int it = 0; it < repeat; it++) {
    threads.run(&coll, [&](int r) {
      CudaBackend& be = cuda_of(ranks[(size_t)r]);
      be.bind();
      const std::vector<uint16_t> x16 = to_f16(x[(size_t)r].data(), count);
      DeviceScratch dx, dres, dw, dy;
      void* px = dx.get(count * 2);
      void* pres = dres.get(count * 2);
      void* pw = dw.get((size_t)cols * 2);
      void* py = dy.get(count * 2);
      be.upload(px, x16.data(), count * 2);
      be.upload(pres, res16.data(), count * 2);
      be.upload(pw, w16.data(), (size_t)cols * 2);
      if (!coll.all_reduce_add_rms_norm_f16(r, px, pres, pw, py, rows, cols, eps)) {
        took[(size_t)r] = 0;
        return;
      }
      std::vector<uint16_t> y16(count), r16(count);
      be.download(y16.data(), py, count * 2);
      be.download(r16.data(), pres, count * 2);
      out.y[(size_t)r].resize(count);
      out.residual[(size_t)r].resize(count);
      for (size_t i = 0; i < count; i++) {
        out.y[(size_t)r][i] = f16_to_f32(y16[i]);
        out.residual[(size_t)r][i] = f16_to_f32(r16[i]);
      }
    });
  }
  out.fused = took[0] != 0;
  return out;
}

CollectiveTiming time_cuda_all_reduce_f16(Collective& coll, const std::vector<Backend*>& ranks, RankThreads& threads, int64_t rows,
                                          int64_t cols, int calls, int reps, bool fused, int64_t flush_mb) {
  const int n = (int)ranks.size();
  const size_t bytes = (size_t)(rows * cols) * 2;
  CollectiveTiming out;
  out.graphed = coll.graph_capturable();
  std::vector<int> took((size_t)n, 1);
  std::vector<double> rank0;
  threads.run(&coll, [&](int r) {
    CudaBackend& be = cuda_of(ranks[(size_t)r]);
    be.bind();
    const cudaStream_t s = be.stream();
    // not zeros: 0x3c00 is 1.0 in f16 (sums grow to inf over many calls; the kernels' time does not depend on values)
    half *x = nullptr, *resid = nullptr, *w = nullptr, *y = nullptr;
    LMF_CUDA_CHECK(cudaMalloc(&x, bytes));
    LMF_CUDA_CHECK(cudaMalloc(&resid, bytes));
    LMF_CUDA_CHECK(cudaMalloc(&w, (size_t)cols * 2));
    LMF_CUDA_CHECK(cudaMalloc(&y, bytes));
    for (half* p : {x, resid, y}) LMF_CUDA_CHECK(cudaMemsetAsync(p, 0x3c, bytes, s));
    LMF_CUDA_CHECK(cudaMemsetAsync(w, 0x3c, (size_t)cols * 2, s));
    // flush_mb: a streaming read of that many MB before each exchange (a decode GEMV's weights stand-in), so the
    // exchange finds its small inputs (counters, residual, norm weight) evicted from L2 as in a decode step
    const size_t flush_words = (size_t)std::max<int64_t>(flush_mb, 0) * (1u << 20) / 16;
    uint4* fbuf = nullptr;
    uint32_t* fsink = nullptr;
    if (flush_words) {
      LMF_CUDA_CHECK(cudaMalloc(&fbuf, flush_words * 16));
      LMF_CUDA_CHECK(cudaMalloc(&fsink, 4));
      LMF_CUDA_CHECK(cudaMemsetAsync(fbuf, 0x3c, flush_words * 16, s));
    }
    int sms = 0;
    LMF_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, be.device()));
    auto flush = [&]() {
      stream_read_kernel<<<sms * 4, 256, 0, s>>>(fbuf, flush_words, fsink);
      LMF_CUDA_LAUNCHED();
    };
    auto one = [&]() {
      if (flush_words) flush();
      if (fused) {
        if (coll.all_reduce_add_rms_norm_f16(r, x, resid, w, y, rows, cols, 1e-5f)) return;
        took[(size_t)r] = 0;
      }
      coll.all_reduce_sum_f16(r, x, rows * cols);
    };
    // `calls` of body() captured into one graph
    auto capture = [&](const std::function<void()>& body) {
      cudaGraph_t g;
      cudaGraphExec_t ge = nullptr;
      LMF_CUDA_CHECK(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
      for (int i = 0; i < calls; i++) body();
      LMF_CUDA_CHECK(cudaStreamEndCapture(s, &g));
      LMF_CUDA_CHECK(cudaGraphInstantiate(&ge, g, 0));
      LMF_CUDA_CHECK(cudaGraphDestroy(g));
      return ge;
    };
    cudaEvent_t e0, e1;
    LMF_CUDA_CHECK(cudaEventCreate(&e0));
    LMF_CUDA_CHECK(cudaEventCreate(&e1));
    // us per call of each of `reps` launches, after one warm-up launch
    auto time_us = [&](const std::function<void()>& launch) {
      launch();
      LMF_CUDA_CHECK(cudaStreamSynchronize(s));
      std::vector<double> t;
      for (int i = 0; i < reps; i++) {
        LMF_CUDA_CHECK(cudaEventRecord(e0, s));
        launch();
        LMF_CUDA_CHECK(cudaEventRecord(e1, s));
        LMF_CUDA_CHECK(cudaEventSynchronize(e1));
        float ms = 0;
        LMF_CUDA_CHECK(cudaEventElapsedTime(&ms, e0, e1));
        t.push_back(ms * 1000.0 / calls);
      }
      return t;
    };
    cudaGraphExec_t exec = out.graphed ? capture(one) : nullptr;
    const std::vector<double> t = time_us([&]() {
      if (exec)
        LMF_CUDA_CHECK(cudaGraphLaunch(exec, s));
      else
        for (int i = 0; i < calls; i++) one();
    });
    // the flushes alone, timed the same way (a graph of `calls` of them), to subtract
    if (flush_words && r == 0) {
      cudaGraphExec_t fexec = capture(flush);
      std::vector<double> ft = time_us([&]() { LMF_CUDA_CHECK(cudaGraphLaunch(fexec, s)); });
      cudaGraphExecDestroy(fexec);
      std::sort(ft.begin(), ft.end());
      out.flush_us = ft[ft.size() / 2];
    }
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    if (exec) cudaGraphExecDestroy(exec);
    for (half* p : {x, resid, w, y}) cudaFree(p);
    if (fbuf) cudaFree(fbuf);
    if (fsink) cudaFree(fsink);
    if (r == 0) rank0 = t;
  });
  std::sort(rank0.begin(), rank0.end());
  out.us_per_call = rank0.empty() ? 0 : rank0[rank0.size() / 2];
  out.fused = fused && took[0];
  return out;
}

std::unique_ptr<Collective> make_cuda_tp_collective(const std::vector<Backend*>& ranks) {
  if (ranks.empty()) fail(ErrorCode::Internal, "tensor parallel: no ranks");
  std::vector<int> devs;
  for (Backend* b : ranks) devs.push_back(cuda_of(b).device());
  bool same = true, distinct = true;
  for (size_t i = 0; i < devs.size(); i++)
    for (size_t j = 0; j < i; j++) {
      same = same && devs[i] == devs[j];
      distinct = distinct && devs[i] != devs[j];
    }
  if (same) return std::make_unique<DeviceCollective>(ranks);
  if (!distinct)
    fail(ErrorCode::InvalidArgument, "tensor parallel: devices must be all different GPUs (NCCL) or all the same GPU (device collective)");
  return std::make_unique<NcclCollective>(ranks);
}

}  // namespace lmfleet
