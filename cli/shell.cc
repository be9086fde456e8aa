#include "cli/shell.h"

#include <algorithm>
#include <cstdlib>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/time/time.h"
#include "core/status_macros.h"
#include "core/text.h"
#include "services/common/process.h"

namespace groupshare::cli {
namespace {

using Stub = tracker::v1::TrackerService::Stub;
namespace tv1 = ::groupshare::tracker::v1;

// The most of a line's unknown word that an error repeats.
constexpr size_t kMaxEchoed = 64;

// "~" and "~/..." stand for the home folder, as in a shell.
std::string ExpandHome(const std::string& path) {
  const char* home = std::getenv("HOME");
  if (home == nullptr || *home == '\0') return path;
  if (path == "~") return home;
  if (absl::StartsWith(path, "~/")) return absl::StrCat(home, path.substr(1));
  return path;
}

// "1 file", "3 files".
std::string Count(uint64_t n, absl::string_view noun) {
  return absl::StrCat(n, " ", noun, n == 1 ? "" : "s");
}

const char* RelationName(tv1::Relation r) {
  switch (r) {
    case tv1::RELATION_OWNER: return "owner";
    case tv1::RELATION_MEMBER: return "member";
    case tv1::RELATION_PENDING: return "pending";
    case tv1::RELATION_REJECTED: return "rejected";
    default: return "none";
  }
}

std::string HumanSize(uint64_t bytes) {
  constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double value = static_cast<double>(bytes);
  int unit = 0;
  while (value >= 1024 && unit < 4) {
    value /= 1024;
    ++unit;
  }
  if (unit == 0) return absl::StrCat(bytes, " B");
  return absl::StrCat(absl::StrFormat("%.1f", value), " ", kUnits[unit]);
}

// The tracker's messages name its calls (for any gRPC client); the shell
// speaks of its own commands instead.
std::string InShellWords(absl::string_view message) {
  static const auto* const kCommands = new std::vector<std::pair<std::string, std::string>>{
      {"CreateUser", "create_user"},     {"Login", "login"},
      {"Logout", "logout"},              {"CreateGroup", "create_group"},
      {"ListGroups", "list_groups"},     {"JoinGroup", "join_group"},
      {"LeaveGroup", "leave_group"},     {"ListRequests", "list_requests"},
      {"AcceptRequest", "accept_request"}, {"RejectRequest", "reject_request"},
      {"UploadFile", "upload_file"},     {"ListFiles", "list_files"},
      {"StopShare", "stop_share"}};
  return absl::StrReplaceAll(message, *kCommands);
}

// What upload_file says once a file is shared.
std::string SharedLine(const peer::UploadSummary& up, const std::string& group_id) {
  const char* news = up.already_yours ? "; you share this already"
                     : up.created      ? ""
                                       : "; others share it too, and you are now one of its sources";
  return absl::StrCat("shared ", up.name, " in ", group_id, " (", HumanSize(up.size), ", ",
                      Count(up.pieces, "piece"), ", sha1 ", up.sha1, ")", news);
}

// "; 2 unfinished downloads were removed, part files too", or "".
std::string RemovedDownloads(int removed) {
  if (removed == 0) return "";
  if (removed == 1) return "; an unfinished download was removed, part file too";
  return absl::StrCat("; ", removed, " unfinished downloads were removed, part files too");
}

}  // namespace

absl::StatusOr<std::vector<std::string>> SplitWords(absl::string_view line) {
  std::vector<std::string> words;
  std::string word;
  bool in_word = false;
  char quote = 0;
  for (size_t i = 0; i < line.size(); ++i) {
    char c = line[i];
    if (quote != 0) {
      if (c == quote) {
        quote = 0;
      } else if (c == '\\' && quote == '"' && i + 1 < line.size()) {
        word += line[++i];
      } else {
        word += c;
      }
    } else if (c == '"' || c == '\'') {
      quote = c;
      in_word = true;
    } else if (c == '\\' && i + 1 < line.size()) {
      word += line[++i];
      in_word = true;
    } else if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
      if (in_word) words.push_back(std::move(word));
      word.clear();
      in_word = false;
    } else {
      word += c;
      in_word = true;
    }
  }
  if (quote != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("unterminated ", std::string(1, quote), " quote; close it or escape it with \\"));
  }
  if (in_word) words.push_back(std::move(word));
  return words;
}

Shell::Shell(peer::TrackerClient& tracker, peer::Node& node, std::ostream& out)
    : tracker_(tracker), node_(node), out_(out) {
  Notices();  // what is there already is no news
  auto bind = [this](absl::Status (Shell::*fn)(const Args&)) {
    return [this, fn](const Args& a) { return (this->*fn)(a); };
  };
  commands_ = {
      {"create_user", {"user_id", "password"}, "create an account", false,
       bind(&Shell::CreateUser)},
      {"login", {"user_id", "password"}, "log in and share again what you shared before",
       false, bind(&Shell::Login)},
      {"create_group", {"group_id"}, "create a group that you own", true,
       bind(&Shell::CreateGroup)},
      {"join_group", {"group_id"}, "ask the owner of a group to let you in", true,
       bind(&Shell::JoinGroup)},
      {"leave_group", {"group_id"}, "leave a group and stop sharing in it", true,
       bind(&Shell::LeaveGroup)},
      {"list_requests", {"group_id"}, "pending join requests of a group you own", true,
       bind(&Shell::ListRequests)},
      {"accept_request", {"group_id", "user_id"}, "let a user into your group", true,
       [this](const Args& a) { return AnswerRequest(a, true); }},
      {"reject_request", {"group_id", "user_id"}, "refuse a user's join request", true,
       [this](const Args& a) { return AnswerRequest(a, false); }},
      {"list_groups", {}, "every group, with its owner, size and your place in it", true,
       bind(&Shell::ListGroups)},
      {"list_files", {"group_id"}, "the files shared in a group", true,
       bind(&Shell::ListFiles)},
      {"upload_file", {"file_path", "group_id"}, "share a file with a group", true,
       bind(&Shell::UploadFile)},
      {"download_file", {"group_id", "file_name", "destination_path"},
       "download a file from the group's members, in the background", true,
       bind(&Shell::DownloadFile)},
      {"show_downloads", {},
       "downloads: [D] running, [C] complete, [F] failed; --peers adds the bytes each member "
       "sent and the members dropped, --clear forgets the finished ones",
       true, bind(&Shell::ShowDownloads), {"--peers", "--clear"}},
      {"show_uploads", {}, "what each share sent since login, and to whom it sends now", true,
       bind(&Shell::ShowUploads)},
      {"set", {"setting", "value"},
       "change a limit now: upload_rate <KiB/s|off>, download_rate <KiB/s|off>, max_peers "
       "<1-64>, active_downloads <1-1000>",
       false,
       bind(&Shell::Set)},
      {"stop_share", {"group_id", "file_name"},
       "stop sharing a file, or downloading it (its part file is removed)", true,
       bind(&Shell::StopShare)},
      {"logout", {}, "log out: stop sharing, and pause downloads, until the next login", true,
       bind(&Shell::Logout)},
      {"help", {}, "this list", false, bind(&Shell::Help)},
      {"quit", {}, "log out and leave the shell", false,
       [](const Args&) { return absl::OkStatus(); }},
  };
}

Shell::WordKind Shell::KindOfWord(absl::string_view before) const {
  // The word may have begun with a quote, which is not part of it.
  if (!before.empty() && (before.back() == '"' || before.back() == '\'')) {
    before.remove_suffix(1);
  }
  absl::StatusOr<Args> words = SplitWords(before);
  if (!words.ok()) return WordKind::kOther;
  if (words->empty()) return WordKind::kCommand;
  for (const Command& c : commands_) {
    if (c.name != (*words)[0]) continue;
    const size_t param = words->size() - 1;
    if (param >= c.params.size()) return WordKind::kOther;
    if (c.params[param] == "group_id" && c.name != "create_group") return WordKind::kGroupId;
    if (absl::EndsWith(c.params[param], "_path")) return WordKind::kPath;
    return WordKind::kOther;
  }
  return WordKind::kOther;
}

std::string Shell::Usage(const Command& c) const {
  std::string usage = c.name;
  for (const std::string& p : c.params) absl::StrAppend(&usage, " <", p, ">");
  for (const std::string& f : c.flags) absl::StrAppend(&usage, " [", f, "]");
  return usage;
}

std::string LineForHistory(absl::string_view line) {
  // The command as the shell reads it ("login", \login and "login" alike),
  // or, in a line it cannot split, its first blank-separated word unquoted.
  absl::StatusOr<std::vector<std::string>> words = SplitWords(line);
  std::string command;
  if (words.ok()) {
    if (!words->empty()) command = words->front();
  } else {
    absl::string_view rest = absl::StripLeadingAsciiWhitespace(line);
    command = absl::StrReplaceAll(rest.substr(0, rest.find_first_of(" \t")),
                                  {{"\"", ""}, {"'", ""}, {"\\", ""}});
  }
  if (command != "login" && command != "create_user") return std::string(line);
  // The command and the user id stay; the password is never kept. A line
  // of another arity (a forgotten blank: "login alicepw") keeps nothing.
  std::string user = words.ok() && words->size() == 3 ? (*words)[1] : "";
  return absl::StrCat(command, user.empty() ? "" : " ", user, " ********");
}

// Strings from the tracker reach the terminal only through here, escaped
// so that none can act on it or hide (core/text.h).
void Shell::Print(const std::string& line) { out_ << EscapeForTerminal(line) << std::endl; }

bool Shell::Execute(absl::string_view line) {
  absl::StatusOr<Args> split = SplitWords(line);
  if (!split.ok()) {
    Print(absl::StrCat("error: ", split.status().message()));
    return true;
  }
  Args words = *std::move(split);
  if (words.empty() || words[0].front() == '#') return true;
  std::string name = words[0];
  Args args(words.begin() + 1, words.end());
  for (const Command& c : commands_) {
    if (c.name != name) continue;
    bool fits = args.size() >= c.params.size() &&
                args.size() <= c.params.size() + c.flags.size();
    for (size_t i = c.params.size(); fits && i < args.size(); ++i) {
      fits = std::count(c.flags.begin(), c.flags.end(), args[i]) == 1 &&
             std::count(args.begin() + static_cast<long>(c.params.size()), args.end(),
                        args[i]) == 1;
    }
    if (!fits) {
      Print(absl::StrCat("error: usage: ", Usage(c)));
      return true;
    }
    if (name == "quit") return false;
    if (c.needs_login && !tracker_.user().has_value()) {
      Print("error: not logged in; log in first with login <user_id> <password>");
      return true;
    }
    absl::Status status = c.run(args);
    if (!status.ok()) Print(absl::StrCat("error: ", InShellWords(status.message())));
    user_after_command_ = tracker_.user();
    return true;
  }
  Print(absl::StrCat("error: unknown command '", Abbreviated(name, kMaxEchoed),
                     "'; type help for the list"));
  return true;
}

std::vector<std::string> Shell::CommandNames() const {
  std::vector<std::string> names;
  for (const Command& c : commands_) names.push_back(c.name);
  return names;
}

std::vector<std::string> Shell::Notices() {
  std::vector<std::string> lines;
  if (user_after_command_.has_value() && !tracker_.user().has_value()) {
    lines.push_back(absl::StrCat("notice: the tracker ended the session of ",
                                 *user_after_command_,
                                 "; your files are not shared until you log in again"));
    user_after_command_.reset();
  }
  for (const peer::DownloadProgress& d : node_.Downloads()) {
    const std::string key = absl::StrCat(d.group_id, "\n", d.name, "\n", d.dest);
    auto [it, added] = seen_.try_emplace(key, d.state);
    const bool changed = !added && it->second != d.state;
    it->second = d.state;
    if (!(changed || (added && seen_any_))) continue;
    if (d.state == peer::DownloadState::kComplete) {
      lines.push_back(absl::StrCat("notice: download of ", d.name, " from ", d.group_id,
                                   " complete: ", d.dest));
    } else if (d.state == peer::DownloadState::kFailed) {
      lines.push_back(absl::StrCat("notice: download of ", d.name, " from ", d.group_id,
                                   " failed: ", d.error));
    }
  }
  seen_any_ = true;
  for (const peer::UploadProgress& u : node_.TakeFinishedUploads()) {
    lines.push_back(u.result.ok() ? "notice: " + SharedLine(*u.result, u.group_id)
                                  : absl::StrCat("notice: could not share ", u.name, " in ",
                                                 u.group_id, ": ",
                                                 InShellWords(u.result.status().message())));
  }
  for (const std::string& notice : node_.TakeNotices()) lines.push_back("notice: " + notice);
  for (std::string& line : lines) line = EscapeForTerminal(line);
  return lines;
}

void Shell::Close() {
  std::optional<std::string> user = tracker_.user();
  if (!user.has_value()) return;
  // Leaving the shell (quit, end of input) says so only when it stops work.
  const std::string paused = PausedByLogout();
  node_.Logout().IgnoreError();
  if (!paused.empty()) Print(absl::StrCat("logged out ", *user, paused));
}

std::string Shell::PausedByLogout() const {
  int running = 0;
  for (const peer::DownloadProgress& d : node_.Downloads()) {
    running += d.state == peer::DownloadState::kRunning;
  }
  if (running == 0) return "";
  return absl::StrCat("; ", Count(running, "download"), " paused: ",
                      running == 1 ? "it goes" : "they go", " on at the next login");
}

absl::Status Shell::CreateUser(const Args& a) {
  tv1::CreateUserRequest req;
  req.set_user_id(a[0]);
  req.set_password(a[1]);
  RETURN_IF_ERROR(tracker_.Call(&Stub::CreateUser, req).status());
  Print(absl::StrCat("user ", a[0], " created; log in with login ", a[0], " <password>"));
  return absl::OkStatus();
}

absl::Status Shell::Login(const Args& a) {
  ASSIGN_OR_RETURN(peer::LoginSummary summary, node_.Login(a[0], a[1]));
  std::string line = absl::StrCat("logged in as ", a[0]);
  if (summary.sharing > 0) absl::StrAppend(&line, "; sharing ", Count(summary.sharing, "file"), " again");
  if (summary.resumed > 0) absl::StrAppend(&line, "; resuming ", Count(summary.resumed, "download"));
  if (!summary.problems.empty()) {
    absl::StrAppend(&line, "; not shared again: ", absl::StrJoin(summary.problems, "; "));
  }
  Print(line);
  return absl::OkStatus();
}

absl::Status Shell::Logout(const Args&) {
  std::string user = tracker_.user().value_or("");
  const std::string paused = PausedByLogout();
  RETURN_IF_ERROR(node_.Logout());
  Print(absl::StrCat("logged out ", user, paused));
  return absl::OkStatus();
}

absl::Status Shell::CreateGroup(const Args& a) {
  tv1::CreateGroupRequest req;
  req.set_group_id(a[0]);
  RETURN_IF_ERROR(tracker_.Call(&Stub::CreateGroup, req).status());
  Print(absl::StrCat("group ", a[0], " created; you own it"));
  return absl::OkStatus();
}

absl::Status Shell::JoinGroup(const Args& a) {
  tv1::JoinGroupRequest req;
  req.set_group_id(a[0]);
  RETURN_IF_ERROR(tracker_.Call(&Stub::JoinGroup, req).status());
  Print(absl::StrCat("asked to join ", a[0], "; its owner must accept"));
  return absl::OkStatus();
}

absl::Status Shell::LeaveGroup(const Args& a) {
  ASSIGN_OR_RETURN(peer::Node::LeftGroup left, node_.LeaveGroup(a[0]));
  std::string line = absl::StrCat("left ", a[0]);
  if (left.answer.group_deleted()) {
    absl::StrAppend(&line, "; it had no other member and is deleted");
  } else if (!left.answer.new_owner().empty()) {
    absl::StrAppend(&line, "; ", left.answer.new_owner(), " owns it now");
  }
  Print(absl::StrCat(line, RemovedDownloads(left.removed_downloads)));
  return absl::OkStatus();
}

absl::Status Shell::ListRequests(const Args& a) {
  tv1::ListRequestsRequest req;
  req.set_group_id(a[0]);
  ASSIGN_OR_RETURN(auto resp, tracker_.Call(&Stub::ListRequests, req));
  if (resp.requests().empty()) {
    Print(absl::StrCat("no pending requests for ", a[0]));
  }
  for (const tv1::JoinRequest& r : resp.requests()) {
    Print(absl::StrCat(r.user_id(), " asked ",
                       absl::FormatTime("%Y-%m-%d %H:%M:%S UTC",
                                        absl::FromUnixSeconds(r.requested_at()),
                                        absl::UTCTimeZone())));
  }
  return absl::OkStatus();
}

absl::Status Shell::AnswerRequest(const Args& a, bool accept) {
  if (accept) {
    tv1::AcceptRequestRequest req;
    req.set_group_id(a[0]);
    req.set_user_id(a[1]);
    RETURN_IF_ERROR(tracker_.Call(&Stub::AcceptRequest, req).status());
    Print(absl::StrCat(a[1], " is now a member of ", a[0]));
  } else {
    tv1::RejectRequestRequest req;
    req.set_group_id(a[0]);
    req.set_user_id(a[1]);
    RETURN_IF_ERROR(tracker_.Call(&Stub::RejectRequest, req).status());
    Print(absl::StrCat("rejected ", a[1], "'s request to join ", a[0]));
  }
  return absl::OkStatus();
}

namespace {

// Calls a listing RPC page after page, printing each as it comes, until the
// last. Returns how many items there were. A tracker that never says "last
// page" is cut off after 10,000 pages.
template <typename Req, typename Resp, typename OnPage>
absl::StatusOr<int64_t> EachPage(peer::TrackerClient& tracker,
                                 peer::TrackerClient::Rpc<Req, Resp> rpc, Req req,
                                 const OnPage& on_page) {
  int64_t items = 0;
  for (int page = 0; page < 10000; ++page) {
    ASSIGN_OR_RETURN(Resp resp, tracker.Call(rpc, req));
    items += on_page(resp);
    if (resp.next_page_token().empty() || resp.next_page_token() == req.page_token()) break;
    req.set_page_token(resp.next_page_token());
  }
  return items;
}

}  // namespace

absl::Status Shell::ListGroups(const Args&) {
  known_groups_.clear();
  ASSIGN_OR_RETURN(int64_t groups,
                   EachPage(tracker_, &Stub::ListGroups, tv1::ListGroupsRequest(),
                            [&](const tv1::ListGroupsResponse& resp) {
    for (const tv1::Group& g : resp.groups()) {
      known_groups_.push_back(g.group_id());
      Print(absl::StrCat(g.group_id(), " owner=", g.owner(), " members=", g.member_count(),
                         " you=", RelationName(g.relation())));
    }
    return resp.groups_size();
  }));
  if (groups == 0) Print("no groups yet; create one with create_group <group_id>");
  return absl::OkStatus();
}

absl::Status Shell::ListFiles(const Args& a) {
  tv1::ListFilesRequest req;
  req.set_group_id(a[0]);
  ASSIGN_OR_RETURN(int64_t files, EachPage(tracker_, &Stub::ListFiles, req,
                                           [&](const tv1::ListFilesResponse& resp) {
    for (const tv1::FileSummary& f : resp.files()) {
      Print(absl::StrCat(f.name(), " size=", f.size(), " (", HumanSize(f.size()),
                         ") peers=", f.online_seeders() + f.online_partial(),
                         " seeders=", f.online_seeders(), " sha1=", f.sha1()));
    }
    return resp.files_size();
  }));
  if (files == 0) Print(absl::StrCat("no files in ", a[0], " yet"));
  return absl::OkStatus();
}

absl::Status Shell::StopShare(const Args& a) {
  ASSIGN_OR_RETURN(int removed, node_.StopShare(a[0], a[1]));
  Print(absl::StrCat("stopped sharing ", a[1], " in ", a[0], RemovedDownloads(removed)));
  return absl::OkStatus();
}

absl::Status Shell::UploadFile(const Args& a) {
  ASSIGN_OR_RETURN(peer::UploadProgress started, node_.StartUpload(ExpandHome(a[0]), a[1]));
  // Waits in steps, so that a stop asked for by a signal is heard.
  const absl::Time until = absl::Now() + upload_wait_;
  std::optional<peer::UploadProgress> done;
  while (!done.has_value() && absl::Now() < until && !StopRequested()) {
    done = node_.WaitForUpload(started.id, std::min(until - absl::Now(), absl::Milliseconds(250)));
  }
  if (!done.has_value() && StopRequested()) {
    return absl::CancelledError(absl::StrCat("stopped while hashing ", started.name));
  }
  if (!done.has_value()) {
    Print(absl::StrCat("hashing ", started.name, " (", HumanSize(started.size), ") for ", a[1],
                       " in the background; it is shared once hashed (stop_share ", a[1], " ",
                       started.name, " cancels)"));
    return absl::OkStatus();
  }
  RETURN_IF_ERROR(done->result.status());
  Print(SharedLine(*done->result, a[1]));
  return absl::OkStatus();
}

absl::Status Shell::DownloadFile(const Args& a) {
  ASSIGN_OR_RETURN(peer::DownloadProgress p, node_.StartDownload(a[0], a[1], ExpandHome(a[2])));
  if (!p.local_copy.empty()) {
    Print(absl::StrCat("you share ", p.name, " in ", a[0], " already: ", p.dest, " is a ",
                       p.local_copy, " of your file (", HumanSize(p.size), ")"));
    return absl::OkStatus();
  }
  Print(absl::StrCat("downloading ", p.name, " from ", a[0], " into ", p.dest, " (",
                     HumanSize(p.size), "); see show_downloads"));
  return absl::OkStatus();
}

absl::Status Shell::ShowUploads(const Args&) {
  std::vector<peer::ShareTraffic> traffic = node_.Traffic();
  if (traffic.empty()) Print("nothing sent since login");
  for (const peer::ShareTraffic& share : traffic) {
    std::string line = absl::StrCat("[", share.group_id, "] ", share.name, ": ",
                                    HumanSize(share.bytes), " sent since login");
    for (size_t i = 0; i < share.now.size(); ++i) {
      absl::StrAppend(&line, i == 0 ? "; now to " : ", ", share.now[i].user, " at ",
                      absl::StrFormat("%.1f", share.now[i].bytes_per_second / 1048576.0),
                      " MiB/s");
    }
    Print(line);
  }
  return absl::OkStatus();
}

absl::Status Shell::Set(const Args& a) {
  const std::string& setting = a[0];
  const std::string& value = a[1];
  if (setting == "upload_rate" || setting == "download_rate") {
    const bool up = setting == "upload_rate";
    uint64_t kib = 0;
    if (value != "off" &&
        (!absl::SimpleAtoi(value, &kib) || kib == 0 || kib > (uint64_t{1} << 30))) {
      return absl::InvalidArgumentError(absl::StrCat(
          "'", value, "' is not a rate; set ", setting, " takes KiB/s (1 or more) or off"));
    }
    up ? node_.SetMaxUploadRate(kib * 1024) : node_.SetMaxDownloadRate(kib * 1024);
    const char* what = up ? "uploads" : "downloads";
    Print(kib == 0 ? absl::StrCat(what, " are not capped")
                   : absl::StrCat(what, up ? " send" : " receive", " at most ", kib,
                                  " KiB/s together"));
    return absl::OkStatus();
  }
  if (setting == "max_peers") {
    uint32_t peers = 0;
    if (!absl::SimpleAtoi(value, &peers) || peers < 1 || peers > 64) {
      return absl::InvalidArgumentError(
          absl::StrCat("'", value, "' is not a peer count; set max_peers takes 1 to 64"));
    }
    node_.SetMaxPeers(peers);
    Print(absl::StrCat("downloads connect to at most ", peers, " peers at once"));
    return absl::OkStatus();
  }
  if (setting == "active_downloads") {
    uint32_t n = 0;
    if (!absl::SimpleAtoi(value, &n) || n < 1 || n > 1000) {
      return absl::InvalidArgumentError(absl::StrCat(
          "'", value, "' is not a download count; set active_downloads takes 1 to 1000"));
    }
    node_.SetMaxActiveDownloads(n);
    Print(absl::StrCat("at most ", n, " downloads run at once; the others wait their turn"));
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(
      absl::StrCat("no setting '", setting,
                   "'; set takes upload_rate <KiB/s|off>, download_rate <KiB/s|off>, max_peers "
                   "<1-64> or active_downloads <1-1000>"));
}

absl::Status Shell::ShowDownloads(const Args& a) {
  const bool peers = std::count(a.begin(), a.end(), "--peers") > 0;
  if (std::count(a.begin(), a.end(), "--clear") > 0) {
    if (peers) return absl::InvalidArgumentError("--peers and --clear do not go together");
    RETURN_IF_ERROR(node_.ClearFinishedDownloads());
    Print("forgot the finished downloads");
    return absl::OkStatus();
  }
  std::vector<peer::DownloadProgress> downloads = node_.DownloadsWithHistory();
  if (downloads.empty()) Print("no downloads yet; start one with download_file");
  for (const peer::DownloadProgress& p : downloads) {
    std::string line = absl::StrCat("[", peer::DownloadStateLetter(p.state), "] [",
                                    p.group_id, "] ", p.name);
    switch (p.state) {
      case peer::DownloadState::kRunning:
        if (p.queued_ahead.has_value()) {
          absl::StrAppend(&line, " queued: it starts when a running download ends (",
                          *p.queued_ahead, " ahead of it)");
          break;
        }
        absl::StrAppend(
            &line, " ",
            absl::StrFormat("%.1f%%", p.size == 0 ? 0.0 : 100.0 * p.bytes_done / p.size),
            " ", HumanSize(p.bytes_done), "/", HumanSize(p.size), " ",
            HumanSize(static_cast<uint64_t>(p.bytes_per_second)), "/s peers=", p.peers);
        break;
      case peer::DownloadState::kComplete:
        absl::StrAppend(&line, " -> ", p.dest);
        break;
      case peer::DownloadState::kFailed:
      case peer::DownloadState::kStopped:
        absl::StrAppend(&line, ": ", p.error.empty() ? "stopped" : p.error);
        break;
    }
    Print(line);
    if (!peers) continue;
    // What each member sent that passed its SHA1 check (kept while the
    // client runs).
    for (const auto& [user, bytes] : p.bytes_by_peer) {
      Print(absl::StrCat("  from ", user, " ", bytes, " bytes (", HumanSize(bytes), ")"));
    }
    for (const auto& [user, why] : p.dropped) Print(absl::StrCat("  dropped ", user, ": ", why));
  }
  return absl::OkStatus();
}

absl::Status Shell::Help(const Args&) {
  for (const Command& c : commands_) {
    Print(absl::StrCat(Usage(c), " - ", c.summary));
  }
  return absl::OkStatus();
}

}  // namespace groupshare::cli
