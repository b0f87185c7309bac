// Engine-level benchmark of the CUDA backend on a real model directory (safetensors, e.g. the random 7B from
// test/bench/make_random_model.py): native-cpu's Model loads the weights (through CudaBackend::prepare_linear),
// native-cpu's KvCache holds the paged cache, and every step goes the way engine/executor.cc drives it: a host
// StepBatch -> CudaDecoder::forward (CUDA graph for decode steps) -> CudaBackend::sample on the device (greedy)
// -> token ids back to the host, appended, next step. Host wall time per step, medians.
//   engine_bench MANIFEST [--batches 1,16,64] [--prompt 128] [--new 128] [--prefill 2048]   (prints JSON last)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "cuda/backend_cuda.h"
#include "cuda/check.cuh"
#include "cuda/cuda_decoder.h"
#include "engine/kv_cache.h"
#include "engine/model.h"
#include "ops/sample.h"

namespace lmfleet {
bool g_test_use_cuda = true;
std::unique_ptr<Backend> lmf_test_make_backend(int threads) {
  return g_test_use_cuda ? make_cuda_backend(0) : make_cpu_backend(threads);
}
}  // namespace lmfleet

using namespace lmfleet;
using Clock = std::chrono::steady_clock;

namespace {
double ms_since(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }
double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

ModelConfig read_manifest(const std::string& path) {
  std::ifstream in(path);
  if (!in) fail(ErrorCode::InvalidArgument, "cannot open " + path);
  ModelConfig c;
  c.backend = "cpu";  // Model's constructor only knows cpu; lmf_test_make_backend hands it the cuda backend
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ss(line);
    std::string kind;
    ss >> kind;
    if (kind == "config") {
      int tie;
      double eps, theta;
      ss >> c.vocab >> c.hidden >> c.inter >> c.layers >> c.heads >> c.kv_heads >> c.head_dim >> eps >> theta >> tie >>
          c.max_position;
      c.eps = (float)eps;
      c.rope.theta = theta;
      c.rope.max_position = c.max_position;
      c.tie_embeddings = tie != 0;
    } else if (kind == "tensor") {
      TensorSpec t;
      std::string dt;
      int nd;
      ss >> t.name >> dt >> nd;
      t.dtype = parse_dtype(dt);
      t.shape.resize(nd);
      for (auto& d : t.shape) ss >> d;
      ss >> t.file >> t.offset;
      c.tensors.push_back(std::move(t));
    }
  }
  return c;
}

std::vector<int> parse_list(const std::string& s) {
  std::vector<int> v;
  std::stringstream ss(s);
  std::string x;
  while (std::getline(ss, x, ',')) v.push_back(std::stoi(x));
  return v;
}

struct Seq {
  std::vector<int32_t> tokens, blocks;
  int64_t done = 0;
};

// Builds the step exactly as engine/executor.cc does (one logit row per sequence).
StepBatch make_step(std::vector<Seq>& seqs, int64_t bs) {
  StepBatch b;
  b.max_blocks = 1;
  for (auto& s : seqs) b.max_blocks = std::max<int64_t>(b.max_blocks, (int64_t)s.blocks.size());
  for (auto& s : seqs) {
    const int64_t n = (int64_t)s.tokens.size() - s.done;
    const int32_t q0 = (int32_t)b.tokens.size();
    for (int64_t j = 0; j < n; j++) {
      const int64_t pos = s.done + j;
      b.tokens.push_back(s.tokens[pos]);
      b.positions.push_back((int32_t)pos);
      b.slots.push_back((int32_t)(s.blocks[pos / bs] * bs + pos % bs));
    }
    b.seq_info.insert(b.seq_info.end(), {q0, (int32_t)n, (int32_t)(s.done + n)});
    for (int64_t k = 0; k < b.max_blocks; k++) b.block_tables.push_back(k < (int64_t)s.blocks.size() ? s.blocks[k] : 0);
    b.logit_rows.push_back(q0 + (int32_t)n - 1);
  }
  return b;
}
}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: engine_bench MANIFEST [--batches 1,16,64] [--prompt 128] [--new 128] [--prefill 2048]\n");
    return 2;
  }
  std::vector<int> batches = {1, 16, 64};
  int prompt = 128, new_tokens = 128, prefill = 2048, host_sample = 0;
  for (int i = 2; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--batches") batches = parse_list(argv[i + 1]);
    else if (a == "--prompt") prompt = std::atoi(argv[i + 1]);
    else if (a == "--new") new_tokens = std::atoi(argv[i + 1]);
    else if (a == "--prefill") prefill = std::atoi(argv[i + 1]);
    else if (a == "--host-sample") host_sample = std::atoi(argv[i + 1]);
  }
  try {
    auto t0 = Clock::now();
    Model m(read_manifest(argv[1]));
    m.load();
    auto& be = dynamic_cast<CudaBackend&>(m.backend());
    be.synchronize();
    const ModelConfig& c = m.cfg();
    std::printf("loaded %lld layers, %.2f GB on the device, in %.1f s\n", (long long)c.layers, m.weight_bytes() / 1e9,
                ms_since(t0) / 1e3);
    // copy bandwidth, measured here
    double bw;
    {
      const size_t bytes = 2ull << 30;
      void *a, *b;
      LMF_CUDA_CHECK(cudaMalloc(&a, bytes));
      LMF_CUDA_CHECK(cudaMalloc(&b, bytes));
      LMF_CUDA_CHECK(cudaMemset(a, 0x3c, bytes));
      cudaEvent_t e0, e1;
      LMF_CUDA_CHECK(cudaEventCreate(&e0));
      LMF_CUDA_CHECK(cudaEventCreate(&e1));
      std::vector<double> t;
      for (int i = 0; i < 13; i++) {
        LMF_CUDA_CHECK(cudaEventRecord(e0, be.stream()));
        LMF_CUDA_CHECK(cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice, be.stream()));
        LMF_CUDA_CHECK(cudaEventRecord(e1, be.stream()));
        LMF_CUDA_CHECK(cudaEventSynchronize(e1));
        float ms;
        LMF_CUDA_CHECK(cudaEventElapsedTime(&ms, e0, e1));
        if (i >= 3) t.push_back(ms);
      }
      bw = 2.0 * bytes / (median(t) * 1e-3);
      cudaFree(a);
      cudaFree(b);
    }
    // bytes one decode step must read: every linear (f16) once; not the f32 embedding table the model also keeps
    const double step_bytes = (double)m.weight_bytes() - (double)c.vocab * c.hidden * 4 - (2.0 * c.layers + 1) * c.hidden * 4;
    const int max_b = *std::max_element(batches.begin(), batches.end());
    KvCacheOptions ko;
    ko.block_size = 64;
    const int64_t per_seq = (std::max(prompt + new_tokens, prefill) + ko.block_size - 1) / ko.block_size;
    ko.num_blocks = std::max<int64_t>(max_b * ((prompt + new_tokens + ko.block_size - 1) / ko.block_size), per_seq);
    KvCache cache(be, c.layers, c.kv_heads * c.head_dim, ko);
    auto dec = make_cuda_decoder(m);
    const int64_t V = c.vocab;
    std::vector<int32_t> out;
    std::vector<SamplingRow> greedy;
    std::vector<float> host_logits;
    auto sample_rows = [&](const Buffer& logits, size_t rows) {
      greedy.assign(rows, SamplingRow{});
      out.resize(rows);
      if (host_sample) {  // what engine/executor.cc does today: every row's logits to the host, sample there
        host_logits.resize(rows * (size_t)V);
        be.download(host_logits.data(), logits.get(), host_logits.size() * 4);
        for (size_t r = 0; r < rows; r++) out[r] = sample_row(host_logits.data() + r * V, V, greedy[r]);
      } else {
        be.sample({logits.as<float>(), (int64_t)rows, V, greedy.data(), out.data()});
      }
    };
    uint64_t rs = 12345;
    auto rnd_tok = [&]() { rs = rs * 6364136223846793005ull + 1442695040888963407ull; return (int32_t)((rs >> 33) % (uint64_t)V); };

    std::string json = "{\"copy_bw_GBs\": " + std::to_string(bw / 1e9) + ", \"weight_bytes\": " + std::to_string(m.weight_bytes()) +
                       ", \"step_bytes\": " + std::to_string(step_bytes) + ", \"decode\": {";
    bool first = true;
    for (int B : batches) {
      for (int rep = 0; rep < 2; rep++) {  // rep 0 warms up (graph capture, cuBLAS heuristics); rep 1 is timed
        std::vector<Seq> seqs(B);
        for (int b = 0; b < B; b++) {
          for (int j = 0; j < prompt; j++) seqs[b].tokens.push_back(rnd_tok());
          const int64_t nb = (prompt + new_tokens + ko.block_size - 1) / ko.block_size;
          for (int64_t j = 0; j < nb; j++) seqs[b].blocks.push_back((int32_t)(b * nb + j));
        }
        auto tp = Clock::now();
        StepBatch pb = make_step(seqs, ko.block_size);
        sample_rows(dec->forward(pb, cache.view()), pb.logit_rows.size());
        const double prefill_ms = ms_since(tp);
        for (int b = 0; b < B; b++) { seqs[b].done = prompt; seqs[b].tokens.push_back(out[b]); }
        std::vector<double> step_ms;
        auto tall = Clock::now();
        for (int step = 1; step < new_tokens; step++) {
          auto ts = Clock::now();
          StepBatch sb = make_step(seqs, ko.block_size);
          sample_rows(dec->forward(sb, cache.view()), sb.logit_rows.size());
          for (int b = 0; b < B; b++) { seqs[b].done++; seqs[b].tokens.push_back(out[b]); }
          step_ms.push_back(ms_since(ts));
        }
        const double total_ms = ms_since(tall) + prefill_ms;
        if (rep == 1) {
          const double med = median(step_ms);
          const double kv = 2.0 * c.layers * B * (prompt + new_tokens / 2) * c.kv_heads * c.head_dim * 2;
          const double lim = (step_bytes + kv) / bw * 1e3;
          std::printf("%s decode batch %d: %.3f ms/step (median of %zu), %.0f tok/s, limit %.3f ms (%.0f%%); "
                      "prompt prefill %.1f ms; %d new tokens end to end %.1f ms\n",
                      host_sample ? "engine (host sampling)" : "engine", B, med, step_ms.size(), B * 1e3 / med, lim,
                      100 * lim / med, prefill_ms, new_tokens, total_ms);
          char buf[256];
          std::snprintf(buf, sizeof buf, "%s\"%d\": {\"ms_per_step\": %.4f, \"tok_s\": %.1f, \"limit_ms\": %.4f, \"e2e_ms\": %.1f}",
                        first ? "" : ", ", B, med, B * 1e3 / med, lim, total_ms);
          json += buf;
          first = false;
        }
      }
    }
    json += "}, \"prefill\": {";
    if (prefill > 0) {
      std::vector<double> t;
      for (int rep = 0; rep < 6; rep++) {
        std::vector<Seq> seqs(1);
        for (int j = 0; j < prefill; j++) seqs[0].tokens.push_back(rnd_tok());
        for (int64_t j = 0; j < per_seq; j++) seqs[0].blocks.push_back((int32_t)j);
        auto tp = Clock::now();
        StepBatch pb = make_step(seqs, ko.block_size);
        sample_rows(dec->forward(pb, cache.view()), 1);
        if (rep > 0) t.push_back(ms_since(tp));
      }
      const double med = median(t);
      std::printf("engine prefill %d: %.1f ms, %.0f tok/s\n", prefill, med, prefill / (med * 1e-3));
      char buf[160];
      std::snprintf(buf, sizeof buf, "\"%d\": {\"ms\": %.2f, \"tok_s\": %.1f}", prefill, med, prefill / (med * 1e-3));
      json += buf;
    }
    json += "}, \"graphs\": " + std::to_string(dec->graphs()) + "}";
    std::printf("ENGINE_JSON %s\n", json.c_str());
  } catch (const Error& e) {
    std::printf("ERROR %s: %s\n", error_code_name(e.code), e.what());
    return 1;
  }
  return 0;
}
