// A kernel tracer for any CUDA process (the device machine has CUPTI but no Nsight Systems): loaded by the driver
// through CUDA_INJECTION64_PATH, it records every kernel's GPU start and end with CUPTI's concurrent-kernel activity
// (kernels inside CUDA graphs included, PDL overlap left as it is) and writes them at exit as CSV to $CUPTI_TRACE_OUT
// (default /tmp/cupti_trace.csv) with trace_step_table.py's columns: Start (ns), Duration (ns), GrdX, Device, Name
// (demangled).
// Built and used by device-engine-ab.sh (TRACE_ENGINE):
//   g++ -O2 -shared -fPIC -DKREC=CUpti_ActivityKernel9 cupti_trace.cpp -I/usr/local/cuda/include -L/usr/local/cuda/lib64 -lcupti
#include <cupti.h>
#include <cxxabi.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#ifndef KREC
#define KREC CUpti_ActivityKernel9
#endif

namespace {
struct Rec {
  unsigned long long start, end;
  unsigned grid, device;
  std::string name;
};
std::mutex mu;
std::vector<Rec> recs;

void CUPTIAPI buffer_requested(uint8_t** buffer, size_t* size, size_t* max_records) {
  constexpr size_t kBytes = 8 << 20;
  *buffer = static_cast<uint8_t*>(aligned_alloc(8, kBytes));
  *size = kBytes;
  *max_records = 0;
}

void CUPTIAPI buffer_completed(CUcontext, uint32_t, uint8_t* buffer, size_t, size_t valid) {
  CUpti_Activity* r = nullptr;
  std::lock_guard<std::mutex> lock(mu);
  while (cuptiActivityGetNextRecord(buffer, valid, &r) == CUPTI_SUCCESS) {
    if (r->kind != CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL && r->kind != CUPTI_ACTIVITY_KIND_KERNEL) continue;
    const auto* k = reinterpret_cast<const KREC*>(r);
    int st = 0;
    char* dm = abi::__cxa_demangle(k->name, nullptr, nullptr, &st);
    recs.push_back({k->start, k->end, (unsigned)k->gridX, (unsigned)k->deviceId, st == 0 && dm ? dm : k->name});
    free(dm);
  }
  free(buffer);
}

void write_out() {
  cuptiActivityFlushAll(1);
  const char* p = std::getenv("CUPTI_TRACE_OUT");
  FILE* f = std::fopen(p ? p : "/tmp/cupti_trace.csv", "w");
  if (!f) return;
  std::lock_guard<std::mutex> lock(mu);
  std::fprintf(f, "Start (ns),Duration (ns),GrdX,Device,Name\n");
  for (const Rec& r : recs) {
    std::string n = r.name;
    for (char& c : n)
      if (c == '"') c = '\'';
    std::fprintf(f, "%llu,%llu,%u,%u,\"%s\"\n", r.start, r.end - r.start, r.grid, r.device, n.c_str());
  }
  std::fclose(f);
  std::fprintf(stderr, "cupti_trace: %zu kernels -> %s\n", recs.size(), p ? p : "/tmp/cupti_trace.csv");
}
}  // namespace

extern "C" int InitializeInjection(void) {
  if (cuptiActivityRegisterCallbacks(buffer_requested, buffer_completed) != CUPTI_SUCCESS ||
      cuptiActivityEnable(CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL) != CUPTI_SUCCESS) {
    std::fprintf(stderr, "cupti_trace: CUPTI activity setup failed\n");
    return 0;
  }
  std::atexit(write_out);
  return 1;
}
