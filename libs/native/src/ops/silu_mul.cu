#include "cuda/check.cuh"
#include "cuda/device_utils.cuh"
#include "ops/linear.cuh"
#include "ops/silu_mul.cuh"

namespace lmfleet {

template <int A>
__global__ void silu_mul_vec_kernel(const half* __restrict__ gu, int ld, half* __restrict__ out, int inter) {
  pdl_trigger();  // see device_utils.cuh
  pdl_wait();
  const int row = blockIdx.y;
  const int i = blockIdx.x * blockDim.x + threadIdx.x;  // half8 index
  if (i * 8 >= inter) return;
  float g[8], u[8], o[8];
  half8_to_float(ldg_half8(gu + (size_t)row * ld + i * 8), g);
  half8_to_float(ldg_half8(gu + (size_t)row * ld + inter + i * 8), u);
#pragma unroll
  for (int q = 0; q < 8; q++) o[q] = act_mul_f32<A>(g[q], u[q]);
  *reinterpret_cast<half8*>(out + (size_t)row * inter + i * 8) = float_to_half8(o);
}

template <int A>
__global__ void silu_mul_kernel(const half* __restrict__ gu, int ld, half* __restrict__ out, int inter) {
  pdl_trigger();
  pdl_wait();
  const int row = blockIdx.y;
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= inter) return;
  float g = __half2float(gu[(size_t)row * ld + i]), u = __half2float(gu[(size_t)row * ld + inter + i]);
  out[(size_t)row * inter + i] = __float2half(act_mul_f32<A>(g, u));
}

void silu_mul_cuda(const half* gate_up, int ld, half* out, int rows, int inter, cudaStream_t s, Activation act) {
  const int a = (int)act;
  if (rows <= 0) return;
  if (inter % 8 == 0 && ld % 8 == 0) {
    dim3 grid((inter / 8 + 127) / 128, rows);
    LMF_CUDA_CHECK(launch_maybe_pdl(pdl_chain_enabled(), a == 2 ? silu_mul_vec_kernel<2> : a == 1 ? silu_mul_vec_kernel<1> : silu_mul_vec_kernel<0>, grid, dim3(128), s, gate_up, ld, out, inter));
  } else {
    dim3 grid((inter + 255) / 256, rows);
    LMF_CUDA_CHECK(launch_maybe_pdl(pdl_chain_enabled(), a == 2 ? silu_mul_kernel<2> : a == 1 ? silu_mul_kernel<1> : silu_mul_kernel<0>, grid, dim3(256), s, gate_up, ld, out, inter));
  }
}

}  // namespace lmfleet
