#include "core/sha1_stream.h"

#include <openssl/sha.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <utility>

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#define GS_SHA_EXTENSIONS 1
#endif

namespace groupshare {

namespace {

constexpr uint32_t kStart[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};

#ifdef GS_SHA_EXTENSIONS

bool CpuHasShaExtensions() {
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (__get_cpuid(1, &a, &b, &c, &d) == 0 || (c & bit_SSSE3) == 0 || (c & bit_SSE4_1) == 0) {
    return false;
  }
  return __get_cpuid_count(7, 0, &a, &b, &c, &d) != 0 && (b & bit_SHA) != 0;
}

#define GS_SHA_TARGET __attribute__((target("sha,sse4.1,ssse3")))
// The rounds must be inlined into Blocks, where each lane's registers stay
// registers: left out of line (as -O3 chose), they went through memory and
// hashed at about half the speed.
#define GS_SHA_INLINE __attribute__((target("sha,sse4.1,ssse3"), always_inline)) inline

// Bytes 16i to 16i+15 of the block at `p` as the SHA instructions take
// them: four big-endian words, the first in the highest lane. With kCopy,
// the bytes are stored at the same place of the block at `out` too.
template <int I, bool kCopy>
GS_SHA_INLINE __m128i LoadWords(const uint8_t* p, uint8_t* out) {
  const __m128i reverse = _mm_set_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 16 * I));
  if constexpr (kCopy) _mm_storeu_si128(reinterpret_cast<__m128i*>(out + 16 * I), bytes);
  return _mm_shuffle_epi8(bytes, reverse);
}

// Rounds 4i to 4i+3 of each of `Lanes` hashes of the same block, after
// the message schedule's words 4i to 4i+3 (w[i]) from the sixteen before.
// `e` holds each lane's E at the block's start; `before`, its A, B, C, D
// before the last four rounds, whose A gives the E of these four.
template <int I, int Lanes>
GS_SHA_INLINE void FourRounds(__m128i* abcd, __m128i* before, const __m128i* e, __m128i* w) {
  if constexpr (I >= 4) {
    w[I] = _mm_sha1msg2_epu32(
        _mm_xor_si128(_mm_sha1msg1_epu32(w[I - 4], w[I - 3]), w[I - 2]), w[I - 1]);
  }
  for (int l = 0; l < Lanes; ++l) {
    __m128i e_now;
    if constexpr (I == 0) {
      e_now = _mm_add_epi32(e[l], w[0]);
    } else {
      e_now = _mm_sha1nexte_epu32(before[l], w[I]);
    }
    before[l] = abcd[l];
    abcd[l] = _mm_sha1rnds4_epu32(abcd[l], e_now, I / 5);
  }
}

template <int Lanes, int... I>
GS_SHA_INLINE void EightyRounds(__m128i* abcd, __m128i* before, const __m128i* e, __m128i* w,
                                 std::integer_sequence<int, I...>) {
  (FourRounds<I, Lanes>(abcd, before, e, w), ...);
}

// Hashes `blocks` blocks of 64 bytes at `p` into each of `Lanes` states;
// with kCopy, copies them to `out` on the way (the bytes are in registers
// then, so the copy costs a store where a separate one reads them again).
template <int Lanes, bool kCopy = false>
GS_SHA_TARGET void Blocks(uint32_t* const* h, const uint8_t* p, size_t blocks,
                          uint8_t* out = nullptr) {
  __m128i abcd[Lanes], e[Lanes];
  for (int l = 0; l < Lanes; ++l) {
    abcd[l] = _mm_set_epi32(static_cast<int>(h[l][0]), static_cast<int>(h[l][1]),
                            static_cast<int>(h[l][2]), static_cast<int>(h[l][3]));
    e[l] = _mm_set_epi32(static_cast<int>(h[l][4]), 0, 0, 0);
  }
  for (; blocks > 0; --blocks, p += 64) {
    __m128i w[20] = {LoadWords<0, kCopy>(p, out), LoadWords<1, kCopy>(p, out),
                     LoadWords<2, kCopy>(p, out), LoadWords<3, kCopy>(p, out)};
    if constexpr (kCopy) out += 64;
    __m128i abcd_start[Lanes], before[Lanes];
    std::copy(abcd, abcd + Lanes, abcd_start);
    EightyRounds<Lanes>(abcd, before, e, w, std::make_integer_sequence<int, 20>{});
    for (int l = 0; l < Lanes; ++l) {
      e[l] = _mm_sha1nexte_epu32(before[l], e[l]);
      abcd[l] = _mm_add_epi32(abcd[l], abcd_start[l]);
    }
  }
  for (int l = 0; l < Lanes; ++l) {
    h[l][0] = static_cast<uint32_t>(_mm_extract_epi32(abcd[l], 3));
    h[l][1] = static_cast<uint32_t>(_mm_extract_epi32(abcd[l], 2));
    h[l][2] = static_cast<uint32_t>(_mm_extract_epi32(abcd[l], 1));
    h[l][3] = static_cast<uint32_t>(_mm_extract_epi32(abcd[l], 0));
    h[l][4] = static_cast<uint32_t>(_mm_extract_epi32(e[l], 3));
  }
}

// GROUPSHARE_NO_SHA_EXTENSIONS (set to anything) makes a CPU with them
// hash as one without does, for benchmarks (bench/download_bench.sh).
bool ShaExtensions() {
  static const bool has =
      std::getenv("GROUPSHARE_NO_SHA_EXTENSIONS") == nullptr && CpuHasShaExtensions();
  return has;
}

#else

bool ShaExtensions() { return false; }

template <int Lanes, bool kCopy = false>
void Blocks(uint32_t* const*, const uint8_t*, size_t, uint8_t* = nullptr) {
  std::abort();  // never chosen where the SHA extensions are not compiled
}

#endif  // GS_SHA_EXTENSIONS

// Feeds `data` through a carry of 64 bytes (`used` of them filled) to
// `compress(p, blocks, out)`, whole blocks straight from `data`; returns
// the bytes fed. With `copy`, every byte fed lands there too, in order:
// whole blocks through `compress`, which copies them to `out`, the rest
// here.
template <typename Compress>
uint64_t Feed(absl::Span<const absl::string_view> data, uint8_t* carry, size_t used,
              uint8_t* copy, Compress compress) {
  uint64_t fed = 0;
  for (absl::string_view part : data) {
    if (part.empty()) continue;  // its data() may be null, which memcpy must not see
    const uint8_t* p = reinterpret_cast<const uint8_t*>(part.data());
    size_t n = part.size();
    uint8_t* out = copy == nullptr ? nullptr : copy + fed;
    fed += n;
    if (used > 0) {
      const size_t take = std::min(64 - used, n);
      std::memcpy(carry + used, p, take);
      if (out != nullptr) {
        std::memcpy(out, p, take);
        out += take;
      }
      used += take;
      p += take;
      n -= take;
      if (used < 64) continue;
      compress(carry, 1, nullptr);
      used = 0;
    }
    compress(p, n / 64, out);
    p += n / 64 * 64;
    if (out != nullptr) out += n / 64 * 64;
    n %= 64;
    std::memcpy(carry, p, n);
    if (out != nullptr) std::memcpy(out, p, n);
    used = n;
  }
  return fed;
}

// The five words of a state, big-endian, as a digest's bytes are.
Sha1Digest BytesOf(const uint32_t* h) {
  Sha1Digest out;
  for (int i = 0; i < 20; ++i) out[i] = static_cast<uint8_t>(h[i / 4] >> (24 - 8 * (i % 4)));
  return out;
}

// Hashes `blocks` blocks at `p` into `Lanes` states, copying them to `out`
// if it is set: with the SHA extensions in one pass, else through OpenSSL
// one lane after the other.
template <int Lanes>
void Compress(bool native, uint32_t* const* h, const uint8_t* p, size_t blocks, uint8_t* out) {
  if (native) {
    if (out != nullptr) {
      Blocks<Lanes, true>(h, p, blocks, out);
    } else {
      Blocks<Lanes>(h, p, blocks);
    }
    return;
  }
  if (out != nullptr) std::memcpy(out, p, blocks * 64);
  // SHA_CTX, deprecated in OpenSSL 3, is still its only way to a SHA1's
  // state between blocks, which a chain needs.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
  for (int l = 0; l < Lanes; ++l) {
    SHA_CTX ctx;
    SHA1_Init(&ctx);
    ctx.h0 = h[l][0];
    ctx.h1 = h[l][1];
    ctx.h2 = h[l][2];
    ctx.h3 = h[l][3];
    ctx.h4 = h[l][4];
    // Whole blocks go straight through: nothing is left in ctx.data.
    SHA1_Update(&ctx, p, blocks * 64);
    h[l][0] = ctx.h0;
    h[l][1] = ctx.h1;
    h[l][2] = ctx.h2;
    h[l][3] = ctx.h3;
    h[l][4] = ctx.h4;
  }
#pragma GCC diagnostic pop
}

}  // namespace

Sha1Stream::Sha1Stream(Engine engine)
    : native_(engine == Engine::kBest && ShaExtensions()) {}

Sha1Stream::Sha1Stream(const Sha1Digest& chain, uint64_t length, Engine engine)
    : Sha1Stream(engine) {
  for (int i = 0; i < 20; ++i) {
    uint32_t& word = state_.h[i / 4];
    word = (i % 4 == 0 ? 0 : word << 8) | chain[i];
  }
  state_.length = length;
}

Sha1Stream::State Sha1Stream::Start() {
  State s;
  std::copy(std::begin(kStart), std::end(kStart), s.h);
  return s;
}

void Sha1Stream::Add(State& state, absl::Span<const absl::string_view> data, char* copy) const {
  uint32_t* h[1] = {state.h};
  state.length += Feed(data, state.buffer, state.length % 64, reinterpret_cast<uint8_t*>(copy),
                       [&](const uint8_t* p, size_t blocks, uint8_t* out) {
                         Compress<1>(native_, h, p, blocks, out);
                       });
}

Sha1Digest Sha1Stream::Digest(State state) const {
  // The padding: a one bit, zeros, and the length in bits, to a whole block.
  const size_t used = state.length % 64;
  uint8_t last[128] = {};
  std::memcpy(last, state.buffer, used);
  last[used] = 0x80;
  const size_t size = used < 56 ? 64 : 128;
  const uint64_t bits = state.length * 8;
  for (int i = 0; i < 8; ++i) last[size - 1 - i] = static_cast<uint8_t>(bits >> (8 * i));
  uint32_t* h[1] = {state.h};
  Compress<1>(native_, h, last, size / 64, nullptr);
  return BytesOf(state.h);
}

Sha1Digest Sha1Stream::Chain() const { return BytesOf(state_.h); }

void Sha1Stream::Update(absl::Span<const absl::string_view> data, char* copy) {
  Add(state_, data, copy);
}

Sha1Digest Sha1Stream::UpdateAndHash(absl::Span<const absl::string_view> data, char* copy) {
  if (state_.length % 64 != 0) {
    // Two passes: the stream's blocks start elsewhere in `data`.
    Update(data, copy);
    return Sha1Of(data);
  }
  // Both start at a block's start, so every block of `data` is a block of
  // each: one pass, two lanes.
  State alone = Start();
  uint32_t* h[2] = {alone.h, state_.h};
  const uint64_t fed = Feed(data, alone.buffer, 0, reinterpret_cast<uint8_t*>(copy),
                            [&](const uint8_t* p, size_t blocks, uint8_t* out) {
                              Compress<2>(native_, h, p, blocks, out);
                            });
  alone.length = fed;
  state_.length += fed;
  std::memcpy(state_.buffer, alone.buffer, sizeof(alone.buffer));
  return Digest(alone);
}

Sha1Digest Sha1Stream::Finish() {
  const Sha1Digest out = Digest(state_);
  state_ = Start();
  return out;
}

}  // namespace groupshare
