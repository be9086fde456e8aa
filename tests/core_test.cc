// The gRPC-free core: ids, tracker_info parsing, hashing, passwords,
// download tickets and the part file.

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <numeric>
#include <random>

#include "absl/time/clock.h"
#include "core/bitfield.h"
#include "core/certificates.h"
#include "core/crypto.h"
#include "core/ids.h"
#include "core/part_file.h"
#include "core/sha1_stream.h"
#include "core/text.h"
#include "core/ticket.h"
#include "core/tracker_info.h"
#include "tests/testing/temp_dir.h"

namespace groupshare {
namespace {

TEST(Ids, AcceptsPlainIds) {
  EXPECT_TRUE(ValidateId("user id", "alice").ok());
  EXPECT_TRUE(ValidateId("user id", std::string(kMaxIdBytes, 'a')).ok());
  EXPECT_TRUE(ValidateId("user id", "ünïcode-ok_1.2").ok());
}

TEST(Ids, RefusesEmptyLongSpacesAndControlBytes) {
  for (std::string bad : {std::string(), std::string(kMaxIdBytes + 1, 'a'),
                          std::string("a b"), std::string("a\tb"), std::string("a\nb"),
                          std::string("a\x01"), std::string("a\x7f"),
                          std::string("a\0b", 3)}) {
    absl::Status s = ValidateId("group id", bad);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(s.message().find("group id"), absl::string_view::npos) << s;
  }
}

TEST(Ids, InvisibleAndBidirectionalMarksAndBadUtf8AreRefused) {
  for (std::string bad : {std::string("invoice\u202efdp.exe"), std::string("a\u200bb"),
                          std::string("a\u0085b"), std::string("a\u009bb"),
                          std::string("a\u2066b"), std::string("\ufeffa"),
                          std::string("a\xff"), std::string("a\xc0\x80"),
                          std::string("a\xed\xa0\x80")}) {
    EXPECT_EQ(ValidateId("user id", bad).code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_EQ(ValidateFileName(bad).code(), absl::StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_TRUE(ValidateFileName("r\u00e9sum\u00e9 \u6587\u4ef6.pdf").ok());
}

TEST(Ids, LookAlikeAndInvisibleCharactersAreRefused) {
  // Hangul filler, a tag, a variation selector, a no-break space, an
  // ideographic space, a private-use and an unassigned code point.
  for (std::string bad : {std::string("a\u3164b"), std::string("a\U000E0041"),
                          std::string("a\ufe0f"), std::string("a\u00a0b"),
                          std::string("a\u3000b"), std::string("a\ue000"),
                          std::string("a\U000E0080b"),
                          // e and a combining acute: not NFC (é is one character)
                          std::string("alic" "e\u0301")}) {
    EXPECT_EQ(ValidateId("user id", bad).code(), absl::StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_TRUE(ValidateId("user id", "alic\u00e9").ok());
  EXPECT_TRUE(ValidateId("group id", "\u6587\u4ef6").ok());
  EXPECT_TRUE(ValidateId("group id", "\u0928\u092e\u0938\u094d\u0924\u0947").ok());  // marks NFC keeps
  // Cyrillic a, full-width a, capital I for l: all look like "alice".
  for (const char* twin : {"\u0430lice", "\uff41lice", "aIice"}) {
    EXPECT_TRUE(ValidateId("user id", twin).ok()) << twin;
    EXPECT_EQ(IdSkeleton(twin), IdSkeleton("alice")) << twin;
  }
  EXPECT_NE(IdSkeleton("alice"), IdSkeleton("bob"));
  EXPECT_EQ(IdSkeleton("\uff4dovies"), IdSkeleton("movies"));
}

TEST(Text, EscapesWhatWouldActOnOrHideFromATerminal) {
  EXPECT_EQ(EscapeForTerminal("plain text, caf\u00e9"), "plain text, caf\u00e9");
  EXPECT_EQ(EscapeForTerminal("\x1b]0;owned\x07"), "\\e]0;owned\\x07");
  EXPECT_EQ(EscapeForTerminal("\x1b]52;c;aGk=\x07"), "\\e]52;c;aGk=\\x07");
  EXPECT_EQ(EscapeForTerminal("invoice\u202efdp.exe"), "invoice\\u{202e}fdp.exe");
  EXPECT_EQ(EscapeForTerminal("a\u009b2Jb"), "a\\u{009b}2Jb");
  EXPECT_EQ(EscapeForTerminal("line\roverwritten"), "line\\x0doverwritten");
  EXPECT_EQ(EscapeForTerminal("bad \xff byte"), "bad \\xff byte");
}

TEST(Text, AbbreviatesAtACodePointBoundary) {
  EXPECT_EQ(Abbreviated("short", 5), "short");
  EXPECT_EQ(Abbreviated("longer", 5), "longe...");
  EXPECT_EQ(Abbreviated("ab\u00e9", 3), "ab...");  // never half of the two-byte \u00e9
  EXPECT_EQ(Abbreviated("\u00e9\u00e9", 2), "\u00e9...");
  EXPECT_EQ(Abbreviated("xyz", 0), "...");
}

TEST(Ids, FileNamesCannotEscapeAFolder) {
  EXPECT_TRUE(ValidateFileName("movie.mkv").ok());
  EXPECT_TRUE(ValidateFileName("..hidden").ok());
  for (const char* bad : {"", ".", "..", "../x", "a/b", "/etc/passwd", "a\\b", "a\nb"}) {
    EXPECT_EQ(ValidateFileName(bad).code(), absl::StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_FALSE(ValidateFileName(std::string(kMaxFileNameBytes + 1, 'x')).ok());
}

TEST(Ids, Passwords) {
  EXPECT_TRUE(ValidatePassword("p4ss word").ok());
  EXPECT_FALSE(ValidatePassword("").ok());
  EXPECT_FALSE(ValidatePassword("a\nb").ok());
  EXPECT_FALSE(ValidatePassword(std::string(kMaxPasswordBytes + 1, 'x')).ok());
}

TEST(TrackerInfo, ParsesLinesSkippingBlanksAndComments) {
  auto parsed = ParseTrackerInfo("# trackers\n127.0.0.1:5000\n\n  localhost:6000  \n[::1]:7000\n");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  ASSERT_EQ(parsed->size(), 3u);
  EXPECT_EQ((*parsed)[0].ToString(), "127.0.0.1:5000");
  EXPECT_EQ((*parsed)[1].host, "localhost");
  EXPECT_EQ((*parsed)[1].port, 6000);
  EXPECT_EQ((*parsed)[2].ToString(), "[::1]:7000");
}

TEST(TrackerInfo, NamesTheBadLine) {
  for (const char* text : {"127.0.0.1:5000\nnot-an-address\n", "1.2.3.4:5000\n1.2.3.4:99999\n",
                           "x:5000\nx:\n", "x:5000\n:5000\n", "x:1\n::1:5000\n",
                           "x:1\nhost:12ab\n"}) {
    auto parsed = ParseTrackerInfo(text);
    ASSERT_FALSE(parsed.ok()) << text;
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(parsed.status().message().find("line 2"), absl::string_view::npos)
        << parsed.status();
  }
}

TEST(TrackerInfo, ALineMayPinTheTrackersCertificate) {
  const std::string pin(64, 'a');
  auto parsed = ParseTrackerInfo("127.0.0.1:5000 sha256=" + pin + "\n127.0.0.1:5001\n");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ((*parsed)[0].ToString(), "127.0.0.1:5000");
  EXPECT_EQ((*parsed)[0].sha256, pin);
  EXPECT_EQ((*parsed)[1].sha256, "");
  // Upper case and colons, as other tools print fingerprints, are read too.
  std::string colons;
  for (int i = 0; i < 32; ++i) colons += (i ? ":" : "") + std::string("AB");
  auto other = ParseTrackerInfo("127.0.0.1:5000 sha256=" + colons + "\n");
  ASSERT_TRUE(other.ok()) << other.status();
  std::string expected;
  for (int i = 0; i < 32; ++i) expected += "ab";
  EXPECT_EQ((*other)[0].sha256, expected);
  for (const char* bad : {"x:1 sha256=abc\n", "x:1 md5=" , "x:1 sha256=aa bb\n"}) {
    auto parsed_bad = ParseTrackerInfo(bad);
    EXPECT_EQ(parsed_bad.status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
}

TEST(Certificates, ACaIssuesForAKeyAndTheFieldsReadBack) {
  const absl::Time now = absl::FromUnixSeconds(1'800'000'000);
  CertificateRequest ca_request;
  ca_request.common_name = "test CA";
  ca_request.is_ca = true;
  ca_request.not_before = now - absl::Hours(1);
  ca_request.not_after = now + absl::Hours(24);
  auto ca = SelfSigned(ca_request);
  ASSERT_TRUE(ca.ok()) << ca.status();
  EXPECT_TRUE(KeyMatches(ca->key_pem, ca->cert_pem));

  auto key = NewPrivateKey();
  ASSERT_TRUE(key.ok());
  auto public_key = PublicKeyOf(*key);
  ASSERT_TRUE(public_key.ok());
  CertificateRequest request;
  request.common_name = "alice";
  request.uri_names = {"groupshare:client:c1"};
  request.not_before = now;
  request.not_after = now + absl::Hours(1);
  auto cert = Issue(*ca, *public_key, request);
  ASSERT_TRUE(cert.ok()) << cert.status();
  EXPECT_TRUE(KeyMatches(*key, *cert));
  EXPECT_FALSE(KeyMatches(ca->key_pem, *cert));
  auto info = ReadCertificate(*cert);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->common_name, "alice");
  EXPECT_EQ(info->uri_names, std::vector<std::string>{"groupshare:client:c1"});
  EXPECT_EQ(info->not_after, now + absl::Hours(1));
  EXPECT_EQ(info->sha256.size(), 64u);
  // The fingerprint is of this certificate: the CA's differs.
  EXPECT_NE(ReadCertificate(ca->cert_pem)->sha256, info->sha256);

  EXPECT_EQ(Issue(*ca, "not a key", request).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ReadCertificate("no pem here").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(TrackerInfo, EmptyAndMissingFiles) {
  EXPECT_EQ(ParseTrackerInfo("\n# nothing\n").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ReadTrackerInfo("/nonexistent/tracker_info.txt").status().code(),
            absl::StatusCode::kNotFound);
  // relay_info.txt has the same form, and the messages name it.
  EXPECT_EQ(ParseTrackerInfo("\n", "relay").status().message(),
            "relay_info holds no relay address; write one host:port a line");
  EXPECT_THAT(std::string(ReadTrackerInfo("/nonexistent/relay_info.txt", "relay")
                              .status()
                              .message()),
              ::testing::HasSubstr("relay_info file"));
}

TEST(HostPort, PortZeroOnlyWhenAllowed) {
  EXPECT_FALSE(ParseHostPort("127.0.0.1:0").ok());
  EXPECT_TRUE(ParseHostPort("127.0.0.1:0", true).ok());
  EXPECT_FALSE(ParseHostPort("127.0.0.1:-1", true).ok());
  EXPECT_FALSE(ParseHostPort("127.0.0.1:65536").ok());
  EXPECT_TRUE(ParseHostPort("127.0.0.1:65535").ok());
}

TEST(HostPort, HostNamesAreAtMostTheLongestDnsAllows) {
  const std::string longest(kMaxHostBytes, 'h');
  EXPECT_TRUE(ParseHostPort(longest + ":5000").ok());
  auto longer = ParseHostPort(longest + "h:5000");
  EXPECT_EQ(longer.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(longer.status().message(),
            "a host:port address has a host of at most 253 characters, not 254");
}

TEST(Crypto, Sha1KnownAnswers) {
  EXPECT_EQ(HexEncode(Sha1Of("")), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
  EXPECT_EQ(HexEncode(Sha1Of("abc")), "a9993e364706816aba3e25717850c26c9cd0d89d");
  Sha1 incremental;
  incremental.Update("a");
  incremental.Update("bc");
  EXPECT_EQ(HexEncode(incremental.Finish()), "a9993e364706816aba3e25717850c26c9cd0d89d");
  EXPECT_EQ(HexEncode(incremental.Finish()), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
}

// Bytes cut into parts at random places, as gRPC hands a piece over.
std::vector<absl::string_view> RandomParts(absl::string_view bytes, std::mt19937& rng) {
  std::vector<absl::string_view> parts;
  while (!bytes.empty()) {
    const size_t n = std::min<size_t>(bytes.size(), rng() % 3 == 0 ? rng() % 8 : rng() % 300);
    parts.push_back(bytes.substr(0, n));
    bytes.remove_prefix(n);
  }
  return parts;
}

class Sha1StreamTest : public ::testing::TestWithParam<Sha1Stream::Engine> {};

TEST_P(Sha1StreamTest, KnownAnswersAndTheLengthsAroundABlock) {
  Sha1Stream stream(GetParam());
  EXPECT_TRUE(GetParam() == Sha1Stream::Engine::kBest || !stream.native());
  EXPECT_EQ(HexEncode(stream.Finish()), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
  const absl::string_view empty;  // no data at all, not even a pointer
  stream.Update({empty, "abc", empty});
  EXPECT_EQ(HexEncode(stream.Finish()), "a9993e364706816aba3e25717850c26c9cd0d89d");
  // 55 and 56 bytes: the padding fits in the last block, or takes another.
  std::string bytes(300, '\0');
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<char>(i * 7 + 3);
  for (size_t n : {1, 55, 56, 63, 64, 65, 119, 120, 128, 300}) {
    stream.Update(absl::string_view(bytes).substr(0, n));
    EXPECT_EQ(stream.Finish(), Sha1Of(bytes.substr(0, n))) << n;
  }
}

TEST_P(Sha1StreamTest, PiecesHashedAloneAndIntoTheWholeInOnePass) {
  std::mt19937 rng(7);
  std::string file(70000, '\0');
  for (char& c : file) c = static_cast<char>(rng());
  // Pieces of whole blocks, and of any length (whose blocks then start
  // elsewhere in the next piece than in the whole).
  for (size_t piece : {size_t{1024}, size_t{4096}, size_t{1000}, size_t{77}}) {
    Sha1Stream whole(GetParam());
    for (size_t at = 0; at < file.size(); at += piece) {
      const absl::string_view bytes = absl::string_view(file).substr(at, piece);
      EXPECT_EQ(whole.UpdateAndHash(RandomParts(bytes, rng)), Sha1Of(bytes)) << piece << " " << at;
    }
    EXPECT_EQ(whole.Finish(), Sha1Of(file)) << piece;
  }
}

TEST_P(Sha1StreamTest, BytesHashedAreCopiedInTheSamePass) {
  std::mt19937 rng(11);
  std::string file(70000, '\0');
  for (char& c : file) c = static_cast<char>(rng());
  for (size_t piece : {size_t{4096}, size_t{1000}}) {
    Sha1Stream whole(GetParam());
    for (size_t at = 0; at < file.size(); at += piece) {
      const absl::string_view bytes = absl::string_view(file).substr(at, piece);
      std::string copy(bytes.size() + 1, '#');  // a byte past the end stays
      if (at % (2 * piece) == 0) {
        EXPECT_EQ(whole.UpdateAndHash(RandomParts(bytes, rng), copy.data()), Sha1Of(bytes));
      } else {
        whole.Update(RandomParts(bytes, rng), copy.data());
      }
      EXPECT_EQ(copy, std::string(bytes) + "#") << piece << " " << at;
    }
    EXPECT_EQ(whole.Finish(), Sha1Of(file)) << piece;
  }
}

TEST_P(Sha1StreamTest, ACopyGoesOnFromWhereItWasMade) {
  const std::string a(1000, 'a'), b(2000, 'b');
  Sha1Stream stream(GetParam());
  stream.Update(a);
  Sha1Stream copy = stream;
  EXPECT_EQ(copy.UpdateAndHash({b}), Sha1Of(b));
  EXPECT_EQ(copy.Finish(), Sha1Of(a + b));
  EXPECT_EQ(stream.Finish(), Sha1Of(a));  // the original did not move on
}

TEST_P(Sha1StreamTest, EachPieceIsCheckedAgainstTheChainAloneAndInAnyOrder) {
  std::mt19937 rng(13);
  const size_t piece = 4096;
  std::string file(10 * piece + 333, '\0');
  for (char& c : file) c = static_cast<char>(rng());
  std::vector<Sha1Digest> chain;  // after each piece but the last
  Sha1Stream whole(GetParam());
  for (size_t at = 0; at + piece < file.size(); at += piece) {
    whole.Update(absl::string_view(file).substr(at, piece));
    chain.push_back(whole.Chain());
  }
  // The state after "abc" and its padding, one block, is SHA1("abc").
  Sha1Stream abc(GetParam());
  std::string padded("abc\x80", 4);
  padded.resize(63, '\0');
  padded += '\x18';  // 24 bits
  abc.Update(padded);
  EXPECT_EQ(HexEncode(abc.Chain()), "a9993e364706816aba3e25717850c26c9cd0d89d");

  std::vector<size_t> order(chain.size() + 1);
  std::iota(order.begin(), order.end(), 0);
  std::shuffle(order.begin(), order.end(), rng);
  for (size_t i : order) {
    const absl::string_view bytes = absl::string_view(file).substr(i * piece, piece);
    Sha1Stream resumed = i == 0 ? Sha1Stream(GetParam())
                                : Sha1Stream(chain[i - 1], i * piece, GetParam());
    std::string copy(bytes.size(), '#');
    resumed.Update(RandomParts(bytes, rng), copy.data());
    EXPECT_EQ(copy, bytes);
    if (i < chain.size()) {
      EXPECT_EQ(resumed.Chain(), chain[i]) << i;
    } else {
      EXPECT_EQ(resumed.Finish(), Sha1Of(file));  // the last piece ends the file
    }
  }
  // One byte changed anywhere in a piece, and it no longer reaches its chain.
  std::string bad = file.substr(3 * piece, piece);
  bad[rng() % piece] ^= 1;
  Sha1Stream resumed(chain[2], 3 * piece, GetParam());
  resumed.Update(bad);
  EXPECT_NE(resumed.Chain(), chain[3]);
}

INSTANTIATE_TEST_SUITE_P(Engines, Sha1StreamTest,
                         ::testing::Values(Sha1Stream::Engine::kBest,
                                           Sha1Stream::Engine::kOpenSsl));

TEST(Crypto, HexRoundTrip) {
  EXPECT_EQ(HexDecode("00ff7a").value(), std::string("\x00\xff\x7a", 3));
  EXPECT_FALSE(HexDecode("0").has_value());
  EXPECT_FALSE(HexDecode("zz").has_value());
  EXPECT_TRUE(IsSha1Hex("da39a3ee5e6b4b0d3255bfef95601890afd80709"));
  EXPECT_FALSE(IsSha1Hex("DA39A3EE5E6B4B0D3255BFEF95601890AFD80709"));
  EXPECT_FALSE(IsSha1Hex("da39"));
}

TEST(Crypto, PasswordsAreSaltedAndVerified) {
  auto a = HashPassword("secret", 1000);
  auto b = HashPassword("secret", 1000);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(*a, *b);  // salted
  EXPECT_EQ(a->find("secret"), std::string::npos);
  EXPECT_TRUE(VerifyPassword("secret", *a));
  EXPECT_FALSE(VerifyPassword("Secret", *a));
  EXPECT_FALSE(VerifyPassword("secret", "garbage"));
  EXPECT_FALSE(VerifyPassword("secret", "pbkdf2-sha256$0$00$00"));
}

TEST(Ticket, SignedTicketVerifies) {
  auto signer = TicketSigner::Generate();
  ASSERT_TRUE(signer.ok());
  auto verifier = TicketVerifier::Create((*signer)->PublicKey());
  ASSERT_TRUE(verifier.ok());
  absl::Time now = absl::FromUnixSeconds(1'700'000'000);
  Ticket t{"alice", "g1", std::string(40, 'a'), "127.0.0.1:7001", now + absl::Minutes(5)};
  auto text = (*signer)->Sign(t);
  ASSERT_TRUE(text.ok());
  auto back = (*verifier)->Verify(*text, now);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->user_id, "alice");
  EXPECT_EQ(back->group_id, "g1");
  EXPECT_EQ(back->file_sha1, t.file_sha1);
  EXPECT_EQ(back->peer, "127.0.0.1:7001");
  EXPECT_EQ(back->expires, t.expires);
}

TEST(Ticket, RefusesExpiredForgedAndForeignTickets) {
  auto signer = *TicketSigner::Generate();
  auto other = *TicketSigner::Generate();
  auto verifier = *TicketVerifier::Create(signer->PublicKey());
  absl::Time now = absl::FromUnixSeconds(1'700'000'000);
  Ticket t{"alice", "g1", std::string(40, 'a'), "127.0.0.1:7001", now + absl::Minutes(5)};
  std::string good = *signer->Sign(t);

  // Good until the peer's clock is past its expiry by more than the slack.
  EXPECT_TRUE(verifier->Verify(good, now + absl::Minutes(5) + kClockSlack - absl::Seconds(1))
                  .ok());
  EXPECT_EQ(verifier->Verify(good, now + absl::Minutes(5) + kClockSlack).status().code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(verifier->Verify(*other->Sign(t), now).status().code(),
            absl::StatusCode::kPermissionDenied);
  // Change one claim but keep the signature.
  Ticket forged = t;
  forged.group_id = "g2";
  std::string forged_text = *signer->Sign(forged);
  std::string spliced = forged_text.substr(0, forged_text.find('.')) + good.substr(good.find('.'));
  EXPECT_EQ(verifier->Verify(spliced, now).status().code(),
            absl::StatusCode::kPermissionDenied);
  for (const char* junk : {"", ".", "abc", "a.b.c", "!!!.???"}) {
    EXPECT_EQ(verifier->Verify(junk, now).status().code(),
              absl::StatusCode::kPermissionDenied) << junk;
  }
}

// Around a key rotation peers accept the old key and the new one.
TEST(Ticket, AVerifierOfSeveralKeysAcceptsEach) {
  auto old_key = *TicketSigner::Generate();
  auto new_key = *TicketSigner::Generate();
  auto stranger = *TicketSigner::Generate();
  auto verifier = TicketVerifier::Create({new_key->PublicKey(), old_key->PublicKey()});
  ASSERT_TRUE(verifier.ok()) << verifier.status();
  absl::Time now = absl::FromUnixSeconds(1'700'000'000);
  Ticket t{"alice", "g1", std::string(40, 'a'), "127.0.0.1:7001", now + absl::Minutes(5)};
  EXPECT_TRUE((*verifier)->Verify(*old_key->Sign(t), now).ok());
  EXPECT_TRUE((*verifier)->Verify(*new_key->Sign(t), now).ok());
  EXPECT_EQ((*verifier)->Verify(*stranger->Sign(t), now).status().code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_FALSE(TicketVerifier::Create(std::vector<std::string>{}).ok());
  EXPECT_FALSE(TicketVerifier::Create({new_key->PublicKey(), "short"}).ok());
}

TEST(Ticket, KeysRoundTrip) {
  auto signer = *TicketSigner::Generate();
  auto again = TicketSigner::FromPrivateKey(signer->PrivateKey());
  ASSERT_TRUE(again.ok());
  EXPECT_EQ((*again)->PublicKey(), signer->PublicKey());
  EXPECT_FALSE(TicketSigner::FromPrivateKey("short").ok());
  EXPECT_FALSE(TicketVerifier::Create("short").ok());
}

}  // namespace
}  // namespace groupshare

#include <sys/resource.h>
#include <fcntl.h>
#include <unistd.h>

#include "core/file_hasher.h"
#include "tests/testing/temp_dir.h"

namespace groupshare {
namespace {

long MaxRssKib() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_maxrss;
}

// Pieces grow with the file past kMaxPieceCount of the default size, up to
// the largest there are.
TEST(FileLayout, PieceSizesGrowWithTheFile) {
  constexpr uint64_t kDefaultMost = uint64_t{kMaxPieceCount} * kDefaultPieceSize;  // 32 GiB
  EXPECT_EQ(PieceSizeFor(0), kDefaultPieceSize);
  EXPECT_EQ(PieceSizeFor(1), kDefaultPieceSize);
  EXPECT_EQ(PieceSizeFor(kDefaultMost), kDefaultPieceSize);
  EXPECT_EQ(PieceSizeFor(kDefaultMost + 1), 2 * kDefaultPieceSize);
  EXPECT_EQ(PieceSizeFor(2 * kDefaultMost), 2 * kDefaultPieceSize);
  EXPECT_EQ(PieceSizeFor(kMaxShareBytes - 1), kMaxPieceSize);
  EXPECT_EQ(PieceSizeFor(kMaxShareBytes), kMaxPieceSize);
  EXPECT_EQ(PieceSizeFor(kMaxShareBytes + 1), 0u);
  EXPECT_EQ(PieceSizeFor(UINT64_MAX), 0u);
  for (uint64_t size : {kDefaultMost + 1, 3 * kDefaultMost, kMaxShareBytes}) {
    EXPECT_LE((FileLayout{size, PieceSizeFor(size)}.PieceCount()), kMaxPieceCount) << size;
  }
}

TEST(FileHasher, HashesPiecesAndWholeFile) {
  testing::TempDir dir;
  std::string data;
  for (int i = 0; i < 100000; ++i) data += static_cast<char>(i * 7 + 3);
  testing::WriteFile(dir.File("f"), data);
  auto hashed = HashFile(dir.File("f"), 32 << 10);
  ASSERT_TRUE(hashed.ok()) << hashed.status();
  EXPECT_EQ(hashed->size, data.size());
  EXPECT_EQ(hashed->sha1, HexEncode(Sha1Of(data)));
  ASSERT_EQ(hashed->piece_sha1.size(), 4u);  // 3 full pieces and a short one
  EXPECT_EQ(hashed->piece_sha1[0], HexEncode(Sha1Of(data.substr(0, 32 << 10))));
  EXPECT_EQ(hashed->piece_sha1[3], HexEncode(Sha1Of(data.substr(3 * (32 << 10)))));
  // The chain after the first piece is the state a stream reaches there;
  // the last piece has none (the file's SHA1 ends it).
  ASSERT_EQ(hashed->sha1_chain.size(), 3u);
  Sha1Stream first;
  first.Update(absl::string_view(data).substr(0, 32 << 10));
  EXPECT_EQ(hashed->sha1_chain[0], HexEncode(first.Chain()));
  Sha1Stream last(*HexDecodeSha1(hashed->sha1_chain[2]), 3 * (32 << 10));
  last.Update(absl::string_view(data).substr(3 * (32 << 10)));
  EXPECT_EQ(HexEncode(last.Finish()), hashed->sha1);
}

TEST(FileHasher, RefusesMissingFilesAndFolders) {
  testing::TempDir dir;
  EXPECT_EQ(HashFile(dir.File("nope")).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(HashFile(dir.path()).status().code(), absl::StatusCode::kInvalidArgument);
  testing::WriteFile(dir.File("empty"), "");
  auto empty = HashFile(dir.File("empty"));
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->piece_sha1.empty());
  EXPECT_TRUE(empty->sha1_chain.empty());
  EXPECT_EQ(empty->sha1, "da39a3ee5e6b4b0d3255bfef95601890afd80709");
}

TEST(FileHasher, SeveralGibibytesInFlatMemory) {
  testing::TempDir dir;
  const uint64_t size = (5ull << 29) + 4097;  // 2.5 GiB and a bit, sparse
  int fd = open(dir.File("big").c_str(), O_CREAT | O_WRONLY, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(ftruncate(fd, static_cast<off_t>(size)), 0);
  ASSERT_EQ(pwrite(fd, "end", 3, static_cast<off_t>(size - 3)), 3);
  close(fd);
  long before = MaxRssKib();
  uint64_t last_progress = 0;
  auto hashed = HashFile(dir.File("big"), kDefaultPieceSize,
                         [&](uint64_t done, uint64_t) {
                           last_progress = done;
                           return true;
                         });
  ASSERT_TRUE(hashed.ok()) << hashed.status();
  EXPECT_EQ(last_progress, size);
  EXPECT_EQ(hashed->size, size);
  EXPECT_EQ(hashed->piece_sha1.size(), 5121u);
  EXPECT_EQ(hashed->piece_sha1[0], HexEncode(Sha1Of(std::string(kDefaultPieceSize, '\0'))));
  EXPECT_NE(hashed->piece_sha1.back(), hashed->piece_sha1[0]);
  EXPECT_LT(MaxRssKib() - before, 64 * 1024) << "hashing must not read the file into memory";
  // Cancelled from its progress callback, within a piece.
  uint64_t stopped_at = 0;
  auto cancelled = HashFile(dir.File("big"), kDefaultPieceSize, [&](uint64_t done, uint64_t) {
    stopped_at = done;
    return done < 3 * kDefaultPieceSize;
  });
  EXPECT_EQ(cancelled.status().code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(stopped_at, 3u * kDefaultPieceSize);
}

// Pages of `path` in the page cache.
size_t CachedPages(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY);
  struct stat st;
  fstat(fd, &st);
  void* map = mmap(nullptr, static_cast<size_t>(st.st_size), PROT_READ, MAP_SHARED, fd, 0);
  close(fd);
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  std::vector<unsigned char> resident((static_cast<size_t>(st.st_size) + page - 1) / page);
  mincore(map, static_cast<size_t>(st.st_size), resident.data());
  munmap(map, static_cast<size_t>(st.st_size));
  size_t count = 0;
  for (unsigned char r : resident) count += r & 1;
  return count;
}

// Whole blocks go around the page cache where the file system allows it,
// the rest the ordinary way; either way every byte lands where it belongs,
// from parts split anywhere, and reads give them back.
TEST(PartFile, WritesWholeBlocksAroundThePageCache) {
  testing::TempDir dir;
  const std::string path = dir.File("f.part");
  const uint64_t piece = 256 << 10;
  const uint64_t size = 9 * piece + 1000;  // a short last piece, not whole blocks
  auto opened = OpenPartFile(path, size, false);
  ASSERT_TRUE(opened.ok()) << opened.status();
  std::string content(size, '\0');
  std::mt19937 rng(7);
  for (char& c : content) c = static_cast<char>(rng());
  // Pieces in a scrambled order, each in three parts cut at odd places;
  // pieces 4 and 5 in one write of 512 KiB; piece 6 in one part from
  // aligned memory, which goes as it is.
  for (uint64_t p : {3, 0, 9, 4, 1, 8, 2, 7}) {
    uint64_t len = p == 9 ? 1000 : (p == 4 ? 2 * piece : piece);
    absl::string_view all(content.data() + p * piece, len);
    std::vector<absl::string_view> parts = {all.substr(0, 17), all.substr(17, len / 2 - 17),
                                            all.substr(len / 2)};
    ASSERT_TRUE(opened->file->Write(p * piece, parts).ok());
  }
  std::unique_ptr<char, decltype(&std::free)> aligned(
      static_cast<char*>(std::aligned_alloc(kDirectIoBlock, piece)), &std::free);
  std::memcpy(aligned.get(), content.data() + 6 * piece, piece);
  const absl::string_view six(aligned.get(), piece);
  ASSERT_TRUE(opened->file->Write(6 * piece, {six}).ok());
  int probe = open(dir.File("probe").c_str(), O_CREAT | O_RDWR | O_DIRECT, 0600);
  if (probe >= 0) {
    close(probe);
    // Only the last piece went through the cache: nowhere near the
    // file's 2,300 pages.
    EXPECT_LT(CachedPages(path), 16u);
  }
  std::string one(piece, '\0');
  ASSERT_TRUE(opened->file->Read(2 * piece, one.data(), piece).ok());  // whole blocks
  EXPECT_TRUE(one == content.substr(2 * piece, piece));
  std::string back(size, '\0');
  ASSERT_TRUE(opened->file->Read(0, back.data(), size).ok());  // not whole blocks
  EXPECT_TRUE(back == content);
  ASSERT_TRUE(opened->file->RenameTo(dir.File("f")).ok());
  EXPECT_TRUE(testing::ReadFile(dir.File("f")) == content);
}

}  // namespace
}  // namespace groupshare
