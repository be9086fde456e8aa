// The shell's terminal prompt: a progress bar of the running downloads.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "cli/shell.h"
#include "cli/terminal.h"

namespace groupshare::cli {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

peer::DownloadProgress Running(const std::string& name, uint64_t done, uint64_t size) {
  peer::DownloadProgress p;
  p.name = name;
  p.bytes_done = done;
  p.size = size;
  p.bytes_per_second = 1 << 20;
  p.eta_bytes_per_second = 1 << 20;
  p.peers = 3;
  return p;
}

TEST(ProgressPrompt, PlainWithoutRunningDownloads) {
  EXPECT_EQ(ProgressPrompt({}), "groupshare> ");
  peer::DownloadProgress done = Running("a", 10, 10);
  done.state = peer::DownloadState::kComplete;
  EXPECT_EQ(ProgressPrompt({done}), "groupshare> ");
}

TEST(ProgressPrompt, BarPercentBytesRateEtaPeers) {
  EXPECT_EQ(ProgressPrompt({Running("film.mkv", 5 << 20, 20 << 20)}),
            "film.mkv [#####...............] 25.0% 5.0/20.0 MiB 1.0 MiB/s ETA 15s peers=3 "
            "| groupshare> ");
}

TEST(ProgressPrompt, AFileBeingHashedWhileNoDownloadRuns) {
  peer::UploadProgress u;
  u.name = "big.iso";
  u.size = 8 << 20;
  u.bytes_hashed = 2 << 20;
  EXPECT_EQ(ProgressPrompt({}, 0, {u}),
            "hashing big.iso [#####...............] 25.0% 2.0/8.0 MiB | groupshare> ");
  EXPECT_THAT(ProgressPrompt({}, 0, {u, u}), HasSubstr("(+1 queued)"));
  EXPECT_EQ(ProgressPrompt({}, 40, {u}), "hashing big.iso 25% | groupshare> ");
  u.name = std::string(60, 'n');
  EXPECT_EQ(ProgressPrompt({}, 50, {u}),
            "hashing " + std::string(19, 'n') + "... 25% | groupshare> ");
  // A running download has the prompt.
  EXPECT_THAT(ProgressPrompt({Running("film.mkv", 5 << 20, 20 << 20)}, 0, {u}),
              StartsWith("film.mkv ["));
}

TEST(ProgressPrompt, CountsTheOtherDownloads) {
  EXPECT_THAT(ProgressPrompt({Running("a", 0, 1 << 20), Running("b", 0, 1 << 20),
                              Running("c", 0, 1 << 20)}),
              StartsWith("a [....................] 0.0% 0.0/1.0 MiB 1.0 MiB/s ETA 1s peers=3 "
                         "(+2 more; 3 at 3.0 MiB/s) |"));
}

TEST(ProgressPrompt, ShowsTheDownloadNearestCompletion) {
  EXPECT_THAT(ProgressPrompt({Running("a", 1 << 19, 4 << 20), Running("b", 3 << 20, 4 << 20)}),
              StartsWith("b [###############.....] 75.0%"));
}

TEST(ProgressPrompt, WaitingForASharerInsteadOfAnEta) {
  peer::DownloadProgress p = Running("f", 5 << 20, 20 << 20);
  p.bytes_per_second = 0;
  p.peers = 0;
  p.waiting_for_sharer = true;
  p.gives_up_in = absl::Seconds(23);
  EXPECT_EQ(ProgressPrompt({p}), "f [#####...............] 25.0% 5.0/20.0 MiB waiting for a sharer "
                                 "(gives up in 23s) peers=0 | groupshare> ");
}

TEST(ProgressPrompt, KeepsWithinTheTerminalsWidth) {
  std::vector<peer::DownloadProgress> two = {Running(std::string(200, 'n'), 0, 1 << 20),
                                             Running("b", 0, 1 << 20)};
  for (int width : {60, 80, 120, 300}) {
    std::string prompt = ProgressPrompt(two, width);
    EXPECT_LT(prompt.size(), static_cast<size_t>(std::max(width, 60))) << prompt;
    EXPECT_THAT(prompt, ::testing::EndsWith("| groupshare> "));
  }
}

TEST(ProgressPrompt, TheEtaUsesTheSmoothedRate) {
  peer::DownloadProgress p = Running("f", 5 << 20, 20 << 20);
  p.bytes_per_second = 15 << 20;  // a burst just now
  EXPECT_THAT(ProgressPrompt({p}), ::testing::HasSubstr("15.0 MiB/s ETA 15s "));
}

TEST(ProgressPrompt, NamesAreEscaped) {
  EXPECT_THAT(ProgressPrompt({Running("a\x1b]0;x\x07\u202e", 0, 1 << 20)}),
              StartsWith("a\\e]0;x\\x07\\u{202e} ["));
}

TEST(LineForHistory, PasswordsAreNeverKept) {
  EXPECT_EQ(LineForHistory("login alice secret"), "login alice ********");
  EXPECT_EQ(LineForHistory("  create_user eve \"pw with blanks\""), "create_user eve ********");
  EXPECT_EQ(LineForHistory("login alice \"unterminated"), "login ********");
  EXPECT_EQ(LineForHistory("login"), "login ********");
  // Whatever the arity: a blank forgotten, or one too many.
  EXPECT_EQ(LineForHistory("login zedzedpw-S3cret"), "login ********");
  EXPECT_EQ(LineForHistory("create_user zed pw extra"), "create_user ********");
  // However the command is written, as long as the shell reads it so.
  EXPECT_EQ(LineForHistory("\"login\" alice secret"), "login alice ********");
  EXPECT_EQ(LineForHistory("\\login alice secret"), "login alice ********");
  EXPECT_EQ(LineForHistory("'create_user' eve \"unterminated"), "create_user ********");
  EXPECT_EQ(LineForHistory("list_groups"), "list_groups");
  EXPECT_EQ(LineForHistory("download_file g login.txt x"), "download_file g login.txt x");
}

using Words = std::vector<std::string>;

TEST(SplitWords, BlanksQuotesAndEscapes) {
  EXPECT_EQ(*SplitWords("  login  alice\tpw \r"), (Words{"login", "alice", "pw"}));
  EXPECT_EQ(*SplitWords("upload_file \"/home/me/my film.mkv\" g"),
            (Words{"upload_file", "/home/me/my film.mkv", "g"}));
  EXPECT_EQ(*SplitWords("upload_file '/a b/c\\d' g"), (Words{"upload_file", "/a b/c\\d", "g"}));
  EXPECT_EQ(*SplitWords("x my\\ file \"say \\\"hi\\\"\""), (Words{"x", "my file", "say \"hi\""}));
  EXPECT_EQ(*SplitWords("x \"\" y"), (Words{"x", "", "y"}));
  EXPECT_TRUE(SplitWords("")->empty());
  EXPECT_EQ(SplitWords("x \"open").status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace groupshare::cli
