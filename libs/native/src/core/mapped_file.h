// A read-only memory-mapped file (weights are read from safetensors by byte range).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace lmfleet {

class MappedFile {
 public:
  explicit MappedFile(const std::string& path);  // throws E_MODEL_FORMAT when it can't be opened
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace lmfleet
