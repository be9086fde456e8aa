// Owning pointers to OpenSSL objects, each freed by its own function:
//   OpenSslPtr<X509, X509_free> cert(PEM_read_bio_X509(...));
#ifndef GROUPSHARE_CORE_OPENSSL_PTR_H_
#define GROUPSHARE_CORE_OPENSSL_PTR_H_

#include <openssl/evp.h>

#include <memory>

namespace groupshare {

template <typename T, void (*Free)(T*)>
struct OpenSslFree {
  void operator()(T* p) const { Free(p); }
};
template <typename T, void (*Free)(T*)>
using OpenSslPtr = std::unique_ptr<T, OpenSslFree<T, Free>>;

using EvpPkeyPtr = OpenSslPtr<EVP_PKEY, EVP_PKEY_free>;
using EvpMdCtxPtr = OpenSslPtr<EVP_MD_CTX, EVP_MD_CTX_free>;

}  // namespace groupshare

#endif  // GROUPSHARE_CORE_OPENSSL_PTR_H_
