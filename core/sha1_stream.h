// The SHA1 of a long stream of bytes (a whole file) that gives, in the same
// pass, the SHA1 of a run of it on its own (a piece). A download checks each
// piece and hashes the whole file too; an upload hashes every piece and the
// whole file: each byte goes through SHA1 twice, and SHA1 is half of what a
// download costs the CPU.
//
// Where the CPU has the SHA extensions, the two hashes share each block's
// message schedule and interleave their rounds: each round of one hash waits
// on the round before it, so one hash alone leaves the SHA unit idle much of
// the time, and two together cost little more than one (about 1.7 times the
// speed of two passes). Elsewhere OpenSSL hashes the run twice.
//
// Copyable: a copy goes on from the same point. Not thread-safe.
#ifndef GROUPSHARE_CORE_SHA1_STREAM_H_
#define GROUPSHARE_CORE_SHA1_STREAM_H_

#include <cstdint>

#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "core/crypto.h"
#include "core/openssl_ptr.h"

namespace groupshare {

class Sha1Stream {
 public:
  // kBest: the SHA extensions where the CPU has them, else OpenSSL.
  // kOpenSsl: OpenSSL always (tests compare the two).
  enum class Engine { kBest, kOpenSsl };

  explicit Sha1Stream(Engine engine = Engine::kBest);
  Sha1Stream(const Sha1Stream& other);
  Sha1Stream& operator=(const Sha1Stream& other);
  Sha1Stream(Sha1Stream&&) noexcept = default;
  Sha1Stream& operator=(Sha1Stream&&) noexcept = default;
  ~Sha1Stream() = default;

  // Whether this stream hashes with the SHA extensions.
  bool native() const { return evp_ == nullptr; }

  // Adds `data` to the stream; with `copy`, copies its bytes there too, in
  // the same pass (room for them all).
  void Update(absl::Span<const absl::string_view> data, char* copy = nullptr);
  void Update(absl::string_view data) { Update(absl::MakeConstSpan(&data, 1)); }
  // Adds `data` to the stream and returns the SHA1 of `data` alone; with
  // `copy`, copies its bytes there too.
  Sha1Digest UpdateAndHash(absl::Span<const absl::string_view> data, char* copy = nullptr);
  // The SHA1 of all that was added; the stream starts anew.
  Sha1Digest Finish();

 private:
  // The stream's state when hashed with the SHA extensions.
  struct State {
    uint32_t h[5];
    uint64_t length = 0;      // bytes added
    uint8_t buffer[64] = {};  // the last partial block
  };
  static State Start();
  static void Add(State& state, absl::Span<const absl::string_view> data, char* copy);
  static Sha1Digest Digest(State state);

  State state_ = Start();
  EvpMdCtxPtr evp_;  // set when OpenSSL hashes
};

}  // namespace groupshare

#endif  // GROUPSHARE_CORE_SHA1_STREAM_H_
