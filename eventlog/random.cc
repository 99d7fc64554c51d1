#include "eventlog/random.h"

#include <openssl/rand.h>

#include <array>
#include <cstring>
#include <stdexcept>

namespace convstore {

void SecureRandomBytes(unsigned char* out, size_t n) {
  if (RAND_bytes(out, static_cast<int>(n)) != 1) {
    throw std::runtime_error("RAND_bytes failed");
  }
}

void PooledRandomBytes(unsigned char* out, size_t n) {
  thread_local std::array<unsigned char, 1024> pool;
  thread_local size_t used = pool.size();
  if (n > pool.size()) {
    SecureRandomBytes(out, n);
    return;
  }
  if (pool.size() - used < n) {
    SecureRandomBytes(pool.data(), pool.size());
    used = 0;
  }
  std::memcpy(out, pool.data() + used, n);
  // Drawn bytes are never handed out twice.
  std::memset(pool.data() + used, 0, n);
  used += n;
}

}  // namespace convstore
