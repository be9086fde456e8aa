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
// A stream's state between two blocks (Chain) is what a file's SHA1 chain
// holds at a piece's end: a stream resumed from the chain at a piece's
// start and fed the piece must reach the chain at its end, so each piece
// can be checked against the whole file's SHA1 in one pass, in any order.
//
// Copyable: a copy goes on from the same point. Not thread-safe.
#ifndef GROUPSHARE_CORE_SHA1_STREAM_H_
#define GROUPSHARE_CORE_SHA1_STREAM_H_

#include <cstdint>

#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "core/crypto.h"

namespace groupshare {

class Sha1Stream {
 public:
  // kBest: the SHA extensions where the CPU has them, else OpenSSL.
  // kOpenSsl: OpenSSL always (tests compare the two).
  enum class Engine { kBest, kOpenSsl };

  explicit Sha1Stream(Engine engine = Engine::kBest);
  // A stream that goes on from `chain`, the state of another after
  // `length` bytes, a multiple of 64 (see Chain).
  Sha1Stream(const Sha1Digest& chain, uint64_t length, Engine engine = Engine::kBest);

  // Whether this stream hashes with the SHA extensions.
  bool native() const { return native_; }
  // The state after the bytes added so far, when they are a multiple of 64:
  // its five words, big-endian, as a digest's bytes are.
  Sha1Digest Chain() const;

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
  struct State {
    uint32_t h[5];
    uint64_t length = 0;      // bytes added
    uint8_t buffer[64] = {};  // the last partial block
  };
  static State Start();
  void Add(State& state, absl::Span<const absl::string_view> data, char* copy) const;
  Sha1Digest Digest(State state) const;

  State state_ = Start();
  bool native_;  // the SHA extensions hash the blocks, else OpenSSL
};

}  // namespace groupshare

#endif  // GROUPSHARE_CORE_SHA1_STREAM_H_
