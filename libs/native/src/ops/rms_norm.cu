#include "cuda/check.cuh"
#include "cuda/device_utils.cuh"
#include "ops/linear.cuh"
#include "ops/rms_norm.cuh"

namespace lmfleet {

// One block per row; each thread keeps up to VPT half8 vectors of the row in registers (one global read).
// cuda/peer_collective.cu's fused all-reduce + add + rms_norm repeats this arithmetic (thread count, VPT, block_sum)
// so that tensor parallelism gives the same bits with and without it: change both together.
template <int VPT, bool ADD>
__global__ void rms_norm_kernel(half* residual, const half* __restrict__ x, const half* __restrict__ w,
                                half* y, int cols, float eps, int wfirst) {
  pdl_trigger();  // the next GEMV may start streaming its weights (it waits for this kernel before reading y)
  const int nvec = cols / 8;
  // wfirst (pdl_preload): the weight, which no kernel writes, is loaded before the wait instead of after the block
  // sum, one dependent memory round trip fewer; the arithmetic is the same
  half8 wv[VPT];
  if (wfirst) {
#pragma unroll
    for (int j = 0; j < VPT; j++) {
      const int i = threadIdx.x + j * blockDim.x;
      if (i < nvec) wv[j] = ldg_half8(w + i * 8);
    }
  }
  pdl_wait();     // launched as a programmatic dependent (pdl_chain_enabled): the kernel before wrote x / residual
  __shared__ float scratch[32];
  const int row = blockIdx.x;
  float v[VPT][8];
  float ss = 0.f;
#pragma unroll
  for (int j = 0; j < VPT; j++) {
    const int i = threadIdx.x + j * blockDim.x;
    if (i < nvec) {
      if (ADD) {
        half8 r = *reinterpret_cast<const half8*>(residual + (size_t)row * cols + i * 8);
        half8 a = ldg_half8(x + (size_t)row * cols + i * 8);
#pragma unroll
        for (int q = 0; q < 4; q++) r.h[q] = __hadd2(r.h[q], a.h[q]);  // rounded to half, as the model does
        *reinterpret_cast<half8*>(residual + (size_t)row * cols + i * 8) = r;
        half8_to_float(r, v[j]);
      } else {
        half8 a = ldg_half8(x + (size_t)row * cols + i * 8);
        half8_to_float(a, v[j]);
      }
#pragma unroll
      for (int q = 0; q < 8; q++) ss += v[j][q] * v[j][q];
    }
  }
  ss = block_sum(ss, scratch);
  const float r = rsqrtf(ss / cols + eps);
#pragma unroll
  for (int j = 0; j < VPT; j++) {
    const int i = threadIdx.x + j * blockDim.x;
    if (i < nvec) {
      float wf[8], o[8];
      half8_to_float(wfirst ? wv[j] : ldg_half8(w + i * 8), wf);
#pragma unroll
      for (int q = 0; q < 8; q++) o[q] = v[j][q] * r * wf[q];
      *reinterpret_cast<half8*>(y + (size_t)row * cols + i * 8) = float_to_half8(o);
    }
  }
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
    LMF_CUDA_CHECK(launch_maybe_pdl(pdl_chain_enabled(), kern, dim3(rows), dim3(threads), s, residual, x, w, y, cols, eps,
                                    pdl_preload() ? 1 : 0));
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
