// Random bytes from OpenSSL's CSPRNG, for keys, nonces and ids. Both are
// thread-safe; without entropy neither can return safely, so a CSPRNG
// failure throws std::runtime_error (fatal to the server).
#pragma once

#include <cstddef>

namespace convstore {

// Straight from the CSPRNG: for long-lived secrets (API keys, data keys).
void SecureRandomBytes(unsigned char* out, size_t n);
// From a per-thread pool refilled from the CSPRNG 1 KiB at a time: one
// RAND_bytes call (its locks and fork check cost far more than the bytes)
// per many draws. For ids and nonces, drawn on every append.
void PooledRandomBytes(unsigned char* out, size_t n);

}  // namespace convstore
