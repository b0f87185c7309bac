// KV-cache quantization micro-benchmark: one layer's paged attention with the f16, int8 and int4 caches
// (quant_policy 0 / 8 / 4), the kernels CudaDecoder runs. Decode: B sequences of `ctx` cached tokens, one query each,
// the split choice of CudaDecoder; reports us per layer, the KV bytes the kernel must read over that time, that as a
// fraction of the device-to-device copy bandwidth measured in the same run, and the speed-up over the f16 cache.
// Prefill: one sequence of `prefill` tokens (FA2 kernel; quantized rows are dequantized into shared memory).
// Random cache contents (attention cost does not depend on the values). CUDA events, median of 30 after 5 warm-ups.
//   bench_attention [--heads 32] [--kv-heads 32,8] [--hd 128] [--batches 1,16,64] [--ctx 1024,4096] [--prefill 2048]
//                   [--split N]   (the decode split length; default CudaDecoder's choice by batch x kv heads)
#include <algorithm>
#include <cstdlib>
#include <string>
#include <vector>

#include "cuda/test_harness.h"
#include "ops/attention.cuh"
#include "ops/kv_quant.h"

using namespace lmfleet;
using namespace lmfleet::testing;

namespace {

__global__ void fill_bytes_kernel(unsigned char* p, size_t n, uint64_t seed) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
    uint64_t z = (seed + i) * 0x9E3779B97F4A7C15ull;
    z ^= z >> 29;
    p[i] = (unsigned char)(z >> 7);
  }
}
// f16 values in [-2, 2): the bytes above reinterpreted would hold NaNs
__global__ void fill_half_kernel(half* p, size_t n, uint64_t seed) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
    uint64_t z = (seed + i) * 0x9E3779B97F4A7C15ull;
    z ^= z >> 31;
    p[i] = __float2half((float)(z & 0xFFFF) / 16384.f - 2.f);
  }
}
__global__ void fill_params_kernel(float* p, size_t rows) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < rows; i += (size_t)gridDim.x * blockDim.x) {
    p[2 * i] = 0.015f;
    p[2 * i + 1] = -2.f;
  }
}

std::vector<int> parse_list(const std::string& s) {
  std::vector<int> v;
  size_t a = 0;
  while (a < s.size()) {
    size_t b = s.find(',', a);
    if (b == std::string::npos) b = s.size();
    v.push_back(std::atoi(s.substr(a, b - a).c_str()));
    a = b + 1;
  }
  return v;
}

template <typename F>
double median_us(F&& f, cudaStream_t s) {
  cudaEvent_t e0, e1;
  LMF_CUDA_CHECK(cudaEventCreate(&e0));
  LMF_CUDA_CHECK(cudaEventCreate(&e1));
  for (int i = 0; i < 5; i++) f();
  std::vector<double> t;
  for (int i = 0; i < 30; i++) {
    LMF_CUDA_CHECK(cudaEventRecord(e0, s));
    f();
    LMF_CUDA_CHECK(cudaEventRecord(e1, s));
    LMF_CUDA_CHECK(cudaEventSynchronize(e1));
    float ms;
    LMF_CUDA_CHECK(cudaEventElapsedTime(&ms, e0, e1));
    t.push_back(ms * 1e3);
  }
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

double copy_gbps(cudaStream_t s) {
  const size_t n = (size_t)2 << 30;
  void *a, *b;
  LMF_CUDA_CHECK(cudaMalloc(&a, n));
  LMF_CUDA_CHECK(cudaMalloc(&b, n));
  LMF_CUDA_CHECK(cudaMemset(a, 1, n));
  const double us = median_us([&] { LMF_CUDA_CHECK(cudaMemcpyAsync(b, a, n, cudaMemcpyDeviceToDevice, s)); }, s);
  cudaFree(a);
  cudaFree(b);
  return 2.0 * n / (us * 1e3);  // read + write
}

int pow2_at_least(int v) {
  int b = 1;
  while (b < v) b <<= 1;
  return b;
}

}  // namespace

int main(int argc, char** argv) {
  int nh = 32, hd = 128, prefill = 2048, split_forced = 0;
  std::vector<int> kv_heads = {32, 8}, batches = {1, 16, 64}, ctxs = {1024, 4096};
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--heads") nh = std::atoi(argv[i + 1]);
    else if (a == "--kv-heads") kv_heads = parse_list(argv[i + 1]);
    else if (a == "--hd") hd = std::atoi(argv[i + 1]);
    else if (a == "--batches") batches = parse_list(argv[i + 1]);
    else if (a == "--ctx") ctxs = parse_list(argv[i + 1]);
    else if (a == "--prefill") prefill = std::atoi(argv[i + 1]);
    else if (a == "--split") split_forced = std::atoi(argv[i + 1]);
  }
  try {
    cudaStream_t s;
    LMF_CUDA_CHECK(cudaStreamCreate(&s));
    cudaDeviceProp prop;
    LMF_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
    const double bw = copy_gbps(s);
    std::printf("device %s; copy bandwidth %.0f GB/s (read + write, measured)\n", prop.name, bw);
    std::printf("\n| decode attention, one layer | heads q/kv | f16 us | int8 us | int4 us | f16 KV GB/s (%% of copy) | int8 GB/s (%%) | int4 GB/s (%%) | int8 / f16 speed-up | int4 / f16 |\n");
    std::printf("|---|---|---|---|---|---|---|---|---|---|\n");
    const int bs = 64;
    for (int nkv : kv_heads)
      for (int B : batches)
        for (int ctx : ctxs) {
          const int mb = (ctx + bs - 1) / bs, nblocks = B * mb;
          const size_t rows = (size_t)nblocks * bs * nkv;
          std::vector<int> bt(nblocks), cl(B, ctx);
          for (int i = 0; i < nblocks; i++) bt[i] = i;
          const int pairs = B * nkv, split = split_forced > 0 ? split_forced : attention_decode_split_len(pairs, ctx);
          const int splits = pow2_at_least((ctx + split - 1) / split);
          DevBuf<int> dbt(bt.size()), dcl(B);
          dbt.upload(bt);
          dcl.upload(cl);
          const int ldq = (nh + 2 * nkv) * hd;
          DevBuf<half> dq((size_t)B * ldq), dout((size_t)B * nh * hd);
          fill_half_kernel<<<1024, 256, 0, s>>>(dq.p, dq.n, 7);
          DevBuf<unsigned char> ws(attention_decode_workspace_bytes(B, nh, hd, splits));
          double us[3], gbs[3];
          const int pols[3] = {0, 8, 4};
          for (int pi = 0; pi < 3; pi++) {
            const int qp = pols[pi];
            const size_t rb = qp ? kv_quant_row_bytes(qp, hd) : (size_t)hd * 2;
            DevBuf<unsigned char> k(rows * rb), v(rows * rb);
            DevBuf<float> kp(qp ? rows * 2 : 1), vp(qp ? rows * 2 : 1);
            if (qp) {
              fill_bytes_kernel<<<2048, 256, 0, s>>>(k.p, k.n, 1);
              fill_bytes_kernel<<<2048, 256, 0, s>>>(v.p, v.n, 2);
              fill_params_kernel<<<1024, 256, 0, s>>>(kp.p, rows);
              fill_params_kernel<<<1024, 256, 0, s>>>(vp.p, rows);
            } else {
              fill_half_kernel<<<2048, 256, 0, s>>>(reinterpret_cast<half*>(k.p), rows * hd, 1);
              fill_half_kernel<<<2048, 256, 0, s>>>(reinterpret_cast<half*>(v.p), rows * hd, 2);
            }
            us[pi] = median_us([&] {
              attention_decode_cuda(dq.p, ldq, reinterpret_cast<const half*>(k.p), reinterpret_cast<const half*>(v.p), dbt.p, mb,
                                    dcl.p, dout.p, nh * hd, B, nh, nkv, hd, bs, 0.088f, split, splits, ws.p, s, qp,
                                    qp ? kp.p : nullptr, qp ? vp.p : nullptr);
            }, s);
            const double bytes = 2.0 * B * ctx * nkv * (double)(rb + (qp ? 8 : 0));
            gbs[pi] = bytes / (us[pi] * 1e3);
          }
          char shape[64];
          std::snprintf(shape, sizeof shape, "batch %d, ctx %d", B, ctx);
          std::printf("| %s | %d/%d | %.1f | %.1f | %.1f | %.0f (%.0f%%) | %.0f (%.0f%%) | %.0f (%.0f%%) | %.2fx | %.2fx |\n", shape, nh,
                      nkv, us[0], us[1], us[2], gbs[0], 100 * gbs[0] / bw, gbs[1], 100 * gbs[1] / bw, gbs[2],
                      100 * gbs[2] / bw, us[0] / us[1], us[0] / us[2]);
          std::fflush(stdout);
        }
    if (prefill > 0) {
      std::printf("\n| prefill attention, one layer, %d tokens | heads q/kv | f16 us | int8 us | int4 us | int8 / f16 | int4 / f16 |\n|---|---|---|---|---|---|---|\n", prefill);
      for (int nkv : kv_heads) {
        const int mb = (prefill + bs - 1) / bs;
        const size_t rows = (size_t)mb * bs * nkv;
        std::vector<int> bt(mb), one = {0}, len = {prefill};
        for (int i = 0; i < mb; i++) bt[i] = i;
        DevBuf<int> dbt(mb), dqs(1), dql(1), dcl(1);
        dbt.upload(bt);
        dqs.upload(one);
        dql.upload(len);
        dcl.upload(len);
        const int ldq = (nh + 2 * nkv) * hd;
        DevBuf<half> dq((size_t)prefill * ldq), dout((size_t)prefill * nh * hd);
        fill_half_kernel<<<1024, 256, 0, s>>>(dq.p, dq.n, 9);
        double us[3];
        const int pols[3] = {0, 8, 4};
        for (int pi = 0; pi < 3; pi++) {
          const int qp = pols[pi];
          const size_t rb = qp ? kv_quant_row_bytes(qp, hd) : (size_t)hd * 2;
          DevBuf<unsigned char> k(rows * rb), v(rows * rb);
          DevBuf<float> kp(qp ? rows * 2 : 1), vp(qp ? rows * 2 : 1);
          if (qp) {
            fill_bytes_kernel<<<2048, 256, 0, s>>>(k.p, k.n, 1);
            fill_bytes_kernel<<<2048, 256, 0, s>>>(v.p, v.n, 2);
            fill_params_kernel<<<1024, 256, 0, s>>>(kp.p, rows);
            fill_params_kernel<<<1024, 256, 0, s>>>(vp.p, rows);
          } else {
            fill_half_kernel<<<2048, 256, 0, s>>>(reinterpret_cast<half*>(k.p), rows * hd, 1);
            fill_half_kernel<<<2048, 256, 0, s>>>(reinterpret_cast<half*>(v.p), rows * hd, 2);
          }
          us[pi] = median_us([&] {
            attention_prefill_cuda(dq.p, ldq, reinterpret_cast<const half*>(k.p), reinterpret_cast<const half*>(v.p), dbt.p, mb,
                                   dqs.p, dql.p, dcl.p, dout.p, nh * hd, 1, prefill, nh, nkv, hd, bs, 0.088f, s, qp,
                                   qp ? kp.p : nullptr, qp ? vp.p : nullptr);
          }, s);
        }
        std::printf("| 1 sequence | %d/%d | %.1f | %.1f | %.1f | %.2fx | %.2fx |\n", nh, nkv, us[0], us[1], us[2],
                    us[0] / us[1], us[0] / us[2]);
      }
    }
  } catch (const Error& e) {
    std::printf("ERROR %s: %s\n", error_code_name(e.code), e.what());
    return 100;
  }
  return 0;
}
