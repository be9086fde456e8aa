// The tracker's request checks, from tables.
#include "services/tracker/request_checks.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "services/common/file_info.h"

namespace groupshare::tracker {
namespace {

using ::testing::HasSubstr;
namespace tv1 = ::groupshare::tracker::v1;

const std::string kSha1(40, 'a');

TEST(ParseBearer, TokensAndWhatIsWrongWithTheRest) {
  struct Case {
    std::string header;
    std::string token; // empty: refused
    std::string says;  // what the refusal says
  };
  const std::vector<Case> cases = {
      {"Bearer abc", "abc", ""},
      {"bearer abc", "abc", ""},
      {"BEARER   abc  ", "abc", ""},
      {"Bearer a-b.c_d~e+f/g==", "a-b.c_d~e+f/g==", ""},
      {"Basic abc", "", "scheme is 'Basic', not Bearer"},
      {"Bearer", "", "no token after Bearer"},
      {"Bearer ", "", "no token after Bearer"},
      {"Bearer a b", "", "characters no token has"},
      {"Bearer ab=c", "", "characters no token has"},
      {"Bearer =abc", "", "characters no token has"},
      {"Bearer ab\x01", "", "characters no token has"},
      {"", "", "not Bearer"},
  };
  for (const Case &c : cases) {
    auto token = ParseBearer(c.header);
    if (c.token.empty()) {
      ASSERT_FALSE(token.ok()) << c.header;
      EXPECT_EQ(token.status().code(), absl::StatusCode::kUnauthenticated)
          << c.header;
      EXPECT_THAT(std::string(token.status().message()), HasSubstr(c.says))
          << c.header;
    } else {
      ASSERT_TRUE(token.ok()) << c.header << ": " << token.status();
      EXPECT_EQ(*token, c.token);
    }
  }
}

TEST(IsRequestId, LettersDigitsAndThreeMarksUpTo64) {
  for (const std::string &id :
       std::vector<std::string>{"a", "R-1.x_2", std::string(64, 'z')}) {
    EXPECT_TRUE(IsRequestId(id)) << id;
  }
  for (const std::string &id : std::vector<std::string>{
           "", std::string(65, 'z'), "a b", "a/b", "é", "a\n"}) {
    EXPECT_FALSE(IsRequestId(id)) << id;
  }
}

tv1::FileInfo File(uint64_t size, uint32_t piece_size, int hashes) {
  tv1::FileInfo f;
  f.set_name("f.bin");
  f.set_size(size);
  f.set_piece_size(piece_size);
  f.set_sha1(kSha1);
  for (int i = 0; i < hashes; ++i)
    f.add_piece_sha1(kSha1);
  return f;
}

TEST(ValidateFileInfo, SizesPiecesAndHashes) {
  struct Case {
    tv1::FileInfo file;
    std::string says; // empty: accepted
  };
  tv1::FileInfo bad_sha1 = File(1, 16 << 10, 1);
  bad_sha1.set_sha1(std::string(40, 'A'));
  tv1::FileInfo bad_piece_sha1 = File(1, 16 << 10, 1);
  bad_piece_sha1.set_piece_sha1(0, "abc");
  // The chain: none, or one after each piece but the last.
  tv1::FileInfo chained = File((32 << 10) + 1, 16 << 10, 3);
  chained.add_sha1_chain(kSha1);
  chained.add_sha1_chain(kSha1);
  tv1::FileInfo short_chain = chained;
  short_chain.mutable_sha1_chain()->RemoveLast();
  tv1::FileInfo long_chain = chained;
  long_chain.add_sha1_chain(kSha1);
  tv1::FileInfo bad_chain = chained;
  bad_chain.set_sha1_chain(1, std::string(40, 'g'));
  tv1::FileInfo one_piece_chain = File(1, 16 << 10, 1);
  one_piece_chain.add_sha1_chain(kSha1);
  tv1::FileInfo bad_name = File(1, 16 << 10, 1);
  bad_name.set_name("a/b");
  const std::vector<Case> cases = {
      {File(0, 16 << 10, 0), ""},
      {File(1, 16 << 10, 1), ""},
      {File(16 << 10, 16 << 10, 1), ""},
      {File((16 << 10) + 1, 16 << 10, 2), ""},
      {File(1, 16 << 20, 1), ""},
      {File(1, 8 << 10, 1), "power of two from 16 KiB to 16 MiB"},
      {File(1, 32 << 20, 1), "power of two from 16 KiB to 16 MiB"},
      {File(1, 48 << 10, 1), "power of two from 16 KiB to 16 MiB"},
      {File(1, 16 << 10, 2), "has 1 pieces, but 2 piece hashes"},
      {File(uint64_t{1} << 63, 16 << 20, 0), "a shared file has at most 65536"},
      {File(uint64_t{kMaxPieceCount} << 14, 16 << 10, kMaxPieceCount), ""},
      {File((uint64_t{kMaxPieceCount} << 14) + 1, 16 << 10, 0), "has 65537 pieces"},
      {bad_sha1, "sha1 must be 40 lower-case hex digits"},
      {bad_piece_sha1, "piece_sha1[0] must be"},
      {chained, ""},
      {short_chain, "has 2 sha1_chain entries (one after each piece but the last) or none, but 1"},
      {long_chain, "but 3 were given"},
      {one_piece_chain, "has 0 sha1_chain entries"},
      {bad_chain, "sha1_chain[1] must be 40 lower-case hex digits"},
      {bad_name, ""}, // checked by ValidateFileName: any refusal will do
  };
  for (const Case &c : cases) {
    const absl::Status s = ValidateFileInfo(c.file);
    const std::string what =
        absl::StrCat(c.file.name(), " ", c.file.size(), "/",
                     c.file.piece_size(), "/", c.file.piece_sha1_size());
    if (&c == &cases.back()) {
      EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << what;
    } else if (c.says.empty()) {
      EXPECT_TRUE(s.ok()) << what << ": " << s;
    } else {
      EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << what;
      EXPECT_THAT(std::string(s.message()), HasSubstr(c.says)) << what;
    }
  }
}

// A tracker refuses requests larger than kMaxRequestBytes before it reads
// them: the UploadFile of the largest file there can be still fits.
TEST(ValidateFileInfo, TheLargestShareFitsInTheLargestRequest) {
  tv1::UploadFileRequest req;
  req.set_group_id(std::string(64, 'g'));
  *req.mutable_file() = File(kMaxShareBytes, kMaxPieceSize, kMaxPieceCount);
  req.mutable_file()->set_name(std::string(255, 'n'));
  for (uint32_t i = 0; i + 1 < kMaxPieceCount; ++i) req.mutable_file()->add_sha1_chain(kSha1);
  EXPECT_TRUE(ValidateFileInfo(req.file()).ok());
  EXPECT_LE(req.ByteSizeLong(), static_cast<size_t>(kMaxRequestBytes));
  EXPECT_GT(req.ByteSizeLong(), static_cast<size_t>(kMaxRequestBytes) - (64 << 10));
}

TEST(Paging, TokensRoundTripAndSizesAreBounded) {
  for (const std::string &key : std::vector<std::string>{
           "", "a", "name with spaces", std::string("\xff\x01/x", 4)}) {
    auto page = ReadPage(0, PageToken(key), 500, 1000);
    ASSERT_TRUE(page.ok()) << key;
    EXPECT_EQ(page->after, key);
  }
  EXPECT_EQ(ReadPage(0, "", 500, 1000)->size, 500);
  EXPECT_EQ(ReadPage(7, "", 500, 1000)->size, 7);
  EXPECT_EQ(ReadPage(5000, "", 500, 1000)->size, 1000);
  auto bad = ReadPage(0, "not base64!", 500, 1000);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bad.status().message()),
              HasSubstr("pass next_page_token as it came"));
}

} // namespace
} // namespace groupshare::tracker
