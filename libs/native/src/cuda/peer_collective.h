// Tensor-parallel collectives over NVLink peer memory, for ranks on different GPUs of one host that can all reach
// each other (cudaDeviceCanAccessPeer). One kernel per call on the rank's stream: the rank stores its part into its
// slot of every peer's exchange buffer (LMFLEET_TP_AR_PUSH, default; =0, and messages longer than a slot: into its
// own buffer), meets the same block of every other rank at a flag barrier (release/acquire at system scope, written
// into the peers' memory), then sums in rank order (rank 0 + rank 1 + ...: every rank gets the same bits) from its
// own memory (or, pulling, from every rank's buffer directly). No host work, so it can be captured into a CUDA graph — unlike NCCL, whose
// captured collectives may deadlock when one process drives several GPUs (NCCL's "Using NCCL with CUDA Graphs").
// Used by the NCCL collective (collective_cuda.cu) for every call inside a graph capture and for eager calls up to
// the exchange buffer's size (small messages: one round trip instead of NCCL's protocol); larger eager calls go to
// NCCL. Messages longer than the buffer are exchanged in chunks (the buffer has two halves, alternating per chunk).
//
// Safety: each block of each rank keeps a counter (device memory) of the exchanges it has done; a barrier waits until
// every peer's same block has posted that count. A block writes a half again only two exchanges later, after the
// intermediate barrier proved every peer finished reading it. Kernels always launch the same grid, so every block's
// counter stays equal across ranks. A rank that fails on the host sets the host-mapped abort flag (abort()): waiting
// blocks give up (the results are garbage, and the step has failed anyway); a block that waits 30 s with no abort
// traps, so a lost peer is an error rather than a hang.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace lmfleet {

struct PeerArgs;

// LMFLEET_TP_LL (read at each call; default on, =0 off): the fused all-reduce + add + rms_norm of up to 16 rows
// in the low-latency protocol (data and the exchange's count in one 8-byte store into each peer's memory).
bool tp_ll_enabled();
// LMFLEET_TP_LL_PUSH (read at each call; default 1): the LL kernel stores all of a block's words into the peers before
// it polls for theirs, so a block waits one NVLink latency however many vectors it holds; 0: per vector, store then
// poll (the session 7-9 kernel). Same sums, same bits. Session 10, two H100s: 6.04 vs 6.50 us per exchange of one
// 4096-wide row (16 rows: 8.77 vs 9.19); engine tp 2 batch 1 3.191 vs 3.245 ms/step.
bool tp_ll_push_first();
// LMFLEET_TP_AR_PUSH (read at each call; default on, =0 off): the plain all-reduce (one chunk) and the two-phase fused
// kernel store their partials straight into the peers' buffers and sum from local memory only (no read across NVLink
// after the barrier). Same sums, same bits.
bool tp_ar_push();
// LMFLEET_TP_FUSE_ROWS (read at each call; default 64 with LMFLEET_TP_AR_PUSH, else 16; at most 256): the fused all-reduce + add + rms_norm takes up to
// this many rows (above 16: the wide set, one block per row).
int tp_fuse_rows();
// LMFLEET_TP_LL_PRE (read at each call; default on, =0 off): the LL kernel loads its residual and norm-weight vectors
// before it lets the next GEMV launch (whose early weight loads would queue ahead of them). Same bits.
bool tp_ll_preload();
// LMFLEET_TP_LL_GATHER (read at each call; default on, =0 off): at two ranks the LL kernel loads all of a thread's words
// from the peer at once and re-polls them together, instead of one word after another. Same bits.
bool tp_ll_gather();
// LMFLEET_TP_PDL=1 (read at each call; default off): the exchange kernels launch as programmatic dependents (sm_90).
bool tp_pdl_requested();
// The LL kernel launches as a programmatic dependent unless LMFLEET_TP_PDL=0 (default on since session 12).
bool tp_ll_pdl();
// LMFLEET_TP_NO_EXCHANGE=1 (a diagnostic; read at each step): the decoder skips the per-layer all-reduces after o and
// down and adds its own partial sums only, so the logits are WRONG; what it measures is the step's time with the 64
// exchanges free, the ceiling of any scheme that hides them behind the GEMMs.
bool tp_no_exchange();
class PeerExchange {
 public:
  static constexpr int kMaxRanks = 8;
  // nullptr (and why, in *why) when a pair of devices cannot reach each other, there are more than kMaxRanks, or
  // LMFLEET_TP_P2P=0. LMFLEET_TP_P2P=all sends every eager call through it too (tests of the chunked path).
  static std::unique_ptr<PeerExchange> make(const std::vector<int>& devices, const std::vector<cudaStream_t>& streams,
                                            std::string* why);
  ~PeerExchange();
  PeerExchange(const PeerExchange&) = delete;
  PeerExchange& operator=(const PeerExchange&) = delete;

  // Eager calls of at most this many bytes come here; graph captures always do.
  size_t eager_max_bytes() const { return eager_max_; }
  void all_reduce_f16(int rank, void* buf, int64_t count);
  // x [rows, cols] f16 summed over ranks, residual += sum, y = rms_norm(residual) * w, in one kernel (the bits of
  // all_reduce_f16 then ops/rms_norm.cu's add_rms_norm). False (nothing done) for shapes it does not take (more
  // rows than tp_fuse_rows(): those run the two kernels).
  bool all_reduce_add_rms_norm_f16(int rank, const void* x, void* residual, const void* w, void* y, int64_t rows, int64_t cols,
                                   float eps);
  void all_reduce_f32(int rank, float* buf, int64_t count);
  // send [bytes] of every rank -> recv [n * bytes], rank-major (bytes a multiple of 4)
  void all_gather(int rank, const void* send, void* recv, int64_t bytes);
  void abort();

 private:
  PeerExchange() = default;
  struct Rank;
  PeerArgs args(int rank, int set) const;
  template <typename T, bool kGather>
  void launch(int rank, const void* in, void* out, int64_t count);
  std::vector<Rank> ranks_;
  size_t cap_ = 0;  // bytes per half of each rank's exchange buffer
  size_t eager_max_ = 0;
  size_t wide_cap_ = 0;  // bytes per half of the wide set (the fused kernel with one block per row)
  int64_t ll_slot_ = 0;  // 8-byte words per (half, source) of the LL buffers
  volatile int* abort_host_ = nullptr;  // host-mapped
  int* abort_dev_ = nullptr;
};

}  // namespace lmfleet
