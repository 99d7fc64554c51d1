#include "core/data_key.h"

#include <openssl/evp.h>

#include <memory>

#include "core/model.h"

namespace convstore {
namespace {

struct CipherCtxFree {
  void operator()(EVP_CIPHER_CTX* ctx) const { EVP_CIPHER_CTX_free(ctx); }
};
using CipherCtx = std::unique_ptr<EVP_CIPHER_CTX, CipherCtxFree>;

// A context set to AES-256-GCM, not keyed; null when OpenSSL could not
// allocate.
CipherCtx NewGcmCtx() {
  CipherCtx c(EVP_CIPHER_CTX_new());
  if (c == nullptr || EVP_CipherInit_ex(c.get(), EVP_aes_256_gcm(), nullptr,
                                        nullptr, nullptr, 1) != 1) {
    return nullptr;
  }
  return c;
}

// One context per thread, set to AES-256-GCM once and re-keyed by each
// Seal and Open: creating one per call, or naming the cipher in each Init
// (OpenSSL 3 then looks it up in its provider store again), costs more than
// sealing a short message.
EVP_CIPHER_CTX* ThreadCipherCtx() {
  thread_local CipherCtx ctx;
  // Null only when OpenSSL could not allocate (then tried again on the
  // next call): Seal reports an internal error, Open corruption.
  if (ctx == nullptr) ctx = NewGcmCtx();
  return ctx.get();
}

const unsigned char* Bytes(std::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

Status BadSeal() {
  return Status::Corruption("sealed payload does not open with its data key");
}

// Opens `sealed` (nonce | ciphertext | tag) into `out` with `ctx`, keying
// it with `key` first unless `key` is null (then `ctx` holds the key from
// an earlier call). False when `ctx` is null or the bytes do not open.
bool OpenInto(EVP_CIPHER_CTX* ctx, const unsigned char* key,
              std::string_view aad, std::string_view sealed, std::string& out) {
  if (ctx == nullptr || sealed.size() < kDataNonceBytes + kDataTagBytes) {
    return false;
  }
  const size_t n = sealed.size() - kDataNonceBytes - kDataTagBytes;
  out.resize(n);
  auto* dst = reinterpret_cast<unsigned char*>(out.data());
  int len = 0;
  return EVP_DecryptInit_ex(ctx, nullptr, nullptr, key, Bytes(sealed)) == 1 &&
         EVP_DecryptUpdate(ctx, nullptr, &len, Bytes(aad),
                           static_cast<int>(aad.size())) == 1 &&
         EVP_DecryptUpdate(ctx, dst, &len, Bytes(sealed) + kDataNonceBytes,
                           static_cast<int>(n)) == 1 &&
         // The tag is only read here; OpenSSL's API takes a non-const
         // pointer.
         EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, kDataTagBytes,
                             const_cast<unsigned char*>(
                                 Bytes(sealed) + kDataNonceBytes + n)) == 1 &&
         EVP_DecryptFinal_ex(ctx, dst + len, &len) == 1;
}

}  // namespace

Result<std::string> SealWithDataKey(const DataKey& key, const DataNonce& nonce,
                                    std::string_view aad,
                                    std::string_view plaintext) {
  std::string out(kDataNonceBytes + plaintext.size() + kDataTagBytes, '\0');
  auto* dst = reinterpret_cast<unsigned char*>(out.data());
  std::copy(nonce.begin(), nonce.end(), dst);
  EVP_CIPHER_CTX* ctx = ThreadCipherCtx();
  int len = 0;
  // With a valid key, nonce and buffers, AES-GCM encryption fails only
  // when OpenSSL cannot allocate. Then no half-sealed payload may reach
  // the log: the command fails (500) and the writer rolls its batch back.
  const bool ok =
      ctx != nullptr &&
      EVP_EncryptInit_ex(ctx, nullptr, nullptr, key.data(), nonce.data()) ==
          1 &&
      EVP_EncryptUpdate(ctx, nullptr, &len, Bytes(aad),
                        static_cast<int>(aad.size())) == 1 &&
      EVP_EncryptUpdate(ctx, dst + kDataNonceBytes, &len, Bytes(plaintext),
                        static_cast<int>(plaintext.size())) == 1 &&
      EVP_EncryptFinal_ex(ctx, dst + kDataNonceBytes + len, &len) == 1 &&
      EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, kDataTagBytes,
                          dst + kDataNonceBytes + plaintext.size()) == 1;
  if (!ok) return Status::Internal("AES-GCM sealing failed (OpenSSL)");
  return out;
}

Result<std::string> OpenWithDataKey(const DataKey& key, std::string_view aad,
                                    std::string_view sealed) {
  std::string out;
  if (!OpenInto(ThreadCipherCtx(), key.data(), aad, sealed, out)) {
    return BadSeal();
  }
  return out;
}

struct DataKeyOpener::Slot {
  DataKey key;
  CipherCtx ctx;  // keyed with `key`; null while the slot is unused
};

DataKeyOpener::DataKeyOpener() = default;
DataKeyOpener::~DataKeyOpener() = default;

Status DataKeyOpener::Open(const DataKey& key, std::string_view aad,
                           std::string_view sealed, std::string& plain) {
  if (slots_ == nullptr) slots_ = std::make_unique<Slot[]>(kSlots);
  Slot& slot = slots_[key[0] % kSlots];
  const unsigned char* new_key = nullptr;  // the context holds it already
  if (slot.ctx == nullptr || slot.key != key) {
    if (slot.ctx == nullptr) slot.ctx = NewGcmCtx();
    // Null only when OpenSSL could not allocate: then as a bad seal, and
    // the next Open tries again.
    if (slot.ctx == nullptr) return BadSeal();
    slot.key = key;
    new_key = key.data();
  }
  if (!OpenInto(slot.ctx.get(), new_key, aad, sealed, plain)) {
    // A failed re-key would leave the context without `key`.
    if (new_key != nullptr) slot.ctx.reset();
    return BadSeal();
  }
  return Status();
}

std::string DataKeySubjectOf(std::string_view stream) {
  for (auto [prefix, tag] : {std::pair{kConversationStreamPrefix, 'c'},
                             std::pair{kMessagesStreamPrefix, 'c'},
                             std::pair{kAgentStreamPrefix, 'a'}}) {
    if (stream.size() > prefix.size() && stream.starts_with(prefix)) {
      std::string subject(1, tag);
      subject.append(stream.substr(prefix.size()));
      return subject;
    }
  }
  return {};
}

}  // namespace convstore
