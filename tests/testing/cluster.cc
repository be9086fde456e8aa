#include "tests/testing/cluster.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <random>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace groupshare::testing {

Cluster::Cluster(const std::vector<std::string>& tracker_flags,
                 const std::vector<std::string>& client_flags)
    : tracker_flags_(tracker_flags), client_flags_(client_flags) {
  StartTracker();
  tracker_info_ = dir_.File("tracker_info.txt");
  WriteFile(tracker_info_, absl::StrCat("127.0.0.1:", tracker_port_, "\n"));
}

bool Cluster::plaintext() const {
  return std::find(tracker_flags_.begin(), tracker_flags_.end(), "--plaintext") !=
         tracker_flags_.end();
}

void Cluster::StartTracker() {
  // The first start takes a port the system chooses; a restart takes it again.
  WriteFile(dir_.File("bind.txt"), absl::StrCat("127.0.0.1:", tracker_port_, "\n"));
  std::remove(dir_.File("tracker.port").c_str());
  std::vector<std::string> argv = {GS_TRACKER_BIN, dir_.File("bind.txt"), "1", "--db",
                                   dir_.File("tracker.db"), "--password_iterations", "1000",
                                   "--port_file", dir_.File("tracker.port")};
  argv.insert(argv.end(), tracker_flags_.begin(), tracker_flags_.end());
  tracker_ = std::make_unique<Subprocess>(
      argv,
      std::map<std::string, std::string>{{"HOME", dir_.path()}}, dir_.File("tracker.log"));
  std::string port = WaitForFile(dir_.File("tracker.port"));
  EXPECT_TRUE(absl::SimpleAtoi(absl::StripAsciiWhitespace(port), &tracker_port_))
      << ReadFile(dir_.File("tracker.log"));
}

void Cluster::KillTracker() {
  tracker_->Signal(SIGKILL);
  EXPECT_TRUE(tracker_->Wait().has_value());
  tracker_.reset();
}

Cluster::~Cluster() = default;

std::unique_ptr<Cluster::Client> Cluster::StartClient(const std::string& name,
                                                      const std::vector<std::string>& flags,
                                                      const std::string& advertised) {
  auto client = std::make_unique<Client>();
  client->name = name;
  client->state_dir = dir_.File("client-" + name);
  std::string port_file = dir_.File(name + ".port");
  std::remove(port_file.c_str());
  std::vector<std::string> argv = {GS_CLIENT_BIN, advertised, tracker_info_,
                                   "--state_dir", client->state_dir, "--port_file", port_file};
  argv.insert(argv.end(), client_flags_.begin(), client_flags_.end());
  argv.insert(argv.end(), flags.begin(), flags.end());
  client->shell = std::make_unique<Subprocess>(
      argv, std::map<std::string, std::string>{{"HOME", dir_.path()}},
      dir_.File(name + ".stderr"));
  std::string port = WaitForFile(port_file);
  EXPECT_TRUE(absl::SimpleAtoi(absl::StripAsciiWhitespace(port), &client->port))
      << ReadFile(dir_.File(name + ".stderr"));
  return client;
}

std::unique_ptr<Cluster::Client> Cluster::StartUser(const std::string& name,
                                                    const std::vector<std::string>& flags) {
  auto client = StartClient(name, flags);
  EXPECT_THAT(client->Run("create_user " + name + " pw-" + name),
              ::testing::StartsWith("user " + name + " created"));
  EXPECT_EQ(client->Run("login " + name + " pw-" + name), "logged in as " + name);
  return client;
}

void Cluster::AddMember(Client& owner, Client& member, const std::string& group) {
  std::string created = owner.Run("create_group " + group);
  EXPECT_TRUE(absl::StartsWith(created, "group " + group + " created") ||
              absl::StrContains(created, "already exists"))
      << created;
  EXPECT_EQ(member.Run("join_group " + group),
            "asked to join " + group + "; its owner must accept");
  EXPECT_EQ(owner.Run("accept_request " + group + " " + member.name),
            member.name + " is now a member of " + group);
}

std::vector<std::string> Cluster::Downloads(Client& client) {
  client.shell->Send("show_downloads");
  client.shell->Send("help");  // its last line marks the end of the list
  std::vector<std::string> lines;
  while (auto line = client.shell->ReadLine(absl::Seconds(10))) {
    if (absl::StartsWith(*line, "quit - ")) break;
    if (absl::StartsWith(*line, "[")) lines.push_back(*line);
  }
  return lines;
}

std::string Cluster::WaitForDownload(Client& client, const std::string& prefix,
                                     absl::Duration timeout) {
  absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    std::string found;
    for (const std::string& line : Downloads(client)) {
      if (absl::StartsWith(line, prefix)) found = line;
    }
    if (!found.empty()) return found;
    absl::SleepFor(absl::Milliseconds(100));  // a download's progress has no event to wait on
  }
  return "";
}

double Cluster::DownloadPercent(Client& client) {
  client.shell->Send("show_downloads");
  client.shell->Send("help");
  double percent = -1;
  while (auto line = client.shell->ReadLine(absl::Seconds(10))) {
    if (absl::StartsWith(*line, "[D]") && percent < 0) {
      size_t pct = line->find('%');
      size_t start = line->rfind(' ', pct);
      if (pct != std::string::npos && start != std::string::npos) {
        (void)absl::SimpleAtod(line->substr(start + 1, pct - start - 1), &percent);
      }
    }
    if (absl::StartsWith(*line, "quit - ")) break;
  }
  return percent;
}

double Cluster::WaitForPercent(Client& client, double at_least, absl::Duration timeout) {
  absl::Time deadline = absl::Now() + timeout;
  double percent = DownloadPercent(client);
  while (percent < at_least && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(50));  // a download's progress has no event to wait on
    percent = DownloadPercent(client);
  }
  return percent;
}

std::string RandomBytes(size_t size, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string out(size, '\0');
  for (size_t i = 0; i < size; ++i) out[i] = static_cast<char>(rng());
  return out;
}

}  // namespace groupshare::testing
