#include "cuda/check.cuh"
#include "cuda/device_utils.cuh"
#include "ops/linear.cuh"
#include "ops/rms_norm.cuh"
#include "ops/rms_norm_row.cuh"

namespace lmfleet {

// One block per row: rms_norm_row (ops/rms_norm_row.cuh). cuda/peer_collective.cu's fused all-reduce + add + rms_norm
// repeats this arithmetic (thread count, VPT, block_sum) so that tensor parallelism gives the same bits with and
// without it: change both together.
template <int VPT, bool ADD>
__global__ void rms_norm_kernel(half* residual, const half* __restrict__ x, const half* __restrict__ w,
                                half* y, int cols, float eps) {
  pdl_trigger();  // the next GEMV may start streaming its weights (it waits for this kernel before reading y)
  pdl_wait();     // launched as a programmatic dependent (pdl_chain_enabled): the kernel before wrote x / residual
  __shared__ float scratch[32];
  const size_t off = (size_t)blockIdx.x * cols;
  rms_norm_row<VPT, ADD>(ADD ? residual + off : nullptr, x + off, w, y + off, cols, eps, scratch);
}

// Any width (cols not a multiple of 8 or very wide rows): plain loops, two reads of the row.
template <bool ADD>
__global__ void rms_norm_generic_kernel(half* residual, const half* __restrict__ x, const half* __restrict__ w,
                                        half* y, int cols, float eps) {
  pdl_trigger();
  pdl_wait();
  __shared__ float scratch[32];
  const size_t base = (size_t)blockIdx.x * cols;
  float ss = 0.f;
  for (int i = threadIdx.x; i < cols; i += blockDim.x) {
    float f;
    if (ADD) {
      half h = __hadd(residual[base + i], x[base + i]);
      residual[base + i] = h;
      f = __half2float(h);
    } else {
      f = __half2float(x[base + i]);
    }
    ss += f * f;
  }
  ss = block_sum(ss, scratch);
  const float r = rsqrtf(ss / cols + eps);
  for (int i = threadIdx.x; i < cols; i += blockDim.x) {
    float f = __half2float(ADD ? residual[base + i] : x[base + i]);
    y[base + i] = __float2half(f * r * __half2float(w[i]));
  }
}

template <bool ADD>
static void launch(half* residual, const half* x, const half* w, half* y, int rows, int cols, float eps,
                   cudaStream_t s) {
  if (rows <= 0) return;
  const int nvec = cols / 8;
  if (cols % 8 == 0 && nvec <= 256 * 4) {
    const int threads = nvec <= 256 ? ((nvec + 31) / 32) * 32 : 256;
    const int vpt = (nvec + threads - 1) / threads;
    auto kern = vpt == 1 ? rms_norm_kernel<1, ADD> : vpt == 2 ? rms_norm_kernel<2, ADD> : rms_norm_kernel<4, ADD>;
    LMF_CUDA_CHECK(launch_maybe_pdl(pdl_chain_enabled(), kern, dim3(rows), dim3(threads), s, residual, x, w, y, cols, eps));
  } else {
    LMF_CUDA_CHECK(launch_maybe_pdl(pdl_chain_enabled(), rms_norm_generic_kernel<ADD>, dim3(rows), dim3(256), s, residual,
                                    x, w, y, cols, eps));
  }
}

void rms_norm_cuda(const half* x, const half* w, half* y, int rows, int cols, float eps, cudaStream_t s) {
  launch<false>(nullptr, x, w, y, rows, cols, eps, s);
}

void add_rms_norm_cuda(half* residual, const half* x, const half* w, half* y, int rows, int cols, float eps,
                       cudaStream_t s) {
  launch<true>(residual, x, w, y, rows, cols, eps, s);
}

}  // namespace lmfleet
