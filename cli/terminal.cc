#include "cli/terminal.h"

#include <readline/history.h>
#include <readline/readline.h>
#include <sys/select.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <iostream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/text.h"
#include "services/common/process.h"

namespace groupshare::cli {
namespace {

constexpr char kPrompt[] = "groupshare> ";
constexpr int kBarWidth = 20;

// readline's callback interface calls a plain function; it reaches the loop
// through these, which only the thread in RunTerminal touches.
Shell* g_shell = nullptr;
bool g_done = false;

// Tab completion: command names, the group ids of the last list_groups,
// and local paths, quoted as the shell's splitter reads them back.
std::vector<std::string> g_words;  // what the word being completed may be

char* NextWord(const char* text, int state) {
  static size_t next;
  if (state == 0) next = 0;
  const absl::string_view prefix(text);
  while (next < g_words.size()) {
    const std::string& word = g_words[next++];
    if (absl::StartsWith(word, prefix)) return strdup(word.c_str());
  }
  return nullptr;
}

char** Complete(const char* text, int start, int) {
  rl_attempted_completion_over = 1;
  switch (g_shell->KindOfWord(absl::string_view(rl_line_buffer, static_cast<size_t>(start)))) {
    case Shell::WordKind::kCommand:
      g_words = g_shell->CommandNames();
      return rl_completion_matches(text, NextWord);
    case Shell::WordKind::kGroupId:
      g_words = g_shell->KnownGroups();
      return rl_completion_matches(text, NextWord);
    case Shell::WordKind::kPath:
      rl_attempted_completion_over = 0;  // readline's own, for file names
      return nullptr;
    case Shell::WordKind::kOther:
      break;
  }
  return nullptr;
}

// A character after an unescaped backslash is part of the word.
int IsEscaped(char* line, int index) {
  int backslashes = 0;
  while (index - backslashes > 0 && line[index - backslashes - 1] == '\\') ++backslashes;
  return backslashes % 2;
}

// A word typed with backslashes (my\ file), as the file system names it.
char* Unescape(char* text, int quote) {
  std::string out;
  for (const char* c = text; *c != '\0'; ++c) {
    if (*c == '\\' && quote != '\'' && c[1] != '\0') ++c;
    out += *c;
  }
  return strdup(out.c_str());
}

void OnLine(char* line) {
  if (line == nullptr) {  // Ctrl-D
    std::cout << "\n";
    g_done = true;
    return;
  }
  if (*line != '\0') add_history(LineForHistory(line).c_str());
  if (!g_shell->Execute(line)) g_done = true;
  free(line);
}

}  // namespace

std::string ProgressPrompt(const std::vector<peer::DownloadProgress>& downloads, int width,
                           const std::vector<peer::UploadProgress>& uploads) {
  const peer::DownloadProgress* shown = nullptr;
  int running = 0;
  double total_rate = 0;
  auto fraction = [](const peer::DownloadProgress& d) {
    return d.size == 0 ? 0.0 : static_cast<double>(d.bytes_done) / d.size;
  };
  for (const auto& d : downloads) {
    if (d.state != peer::DownloadState::kRunning || d.queued_ahead.has_value()) continue;
    if (shown == nullptr || fraction(d) > fraction(*shown)) shown = &d;
    ++running;
    total_rate += d.bytes_per_second;
  }
  if (shown == nullptr && !uploads.empty()) {
    // A file being hashed for upload_file (the first one; they take turns).
    const peer::UploadProgress& u = uploads.front();
    const double done = u.size == 0 ? 0.0 : static_cast<double>(u.bytes_hashed) / u.size;
    const int filled = static_cast<int>(done * kBarWidth);
    std::string name = EscapeForTerminal(u.name);
    std::string tail = absl::StrFormat(
        " [%s%s] %.1f%% %.1f/%.1f MiB%s | %s", std::string(filled, '#'),
        std::string(kBarWidth - filled, '.'), 100 * done, u.bytes_hashed / 1048576.0,
        u.size / 1048576.0,
        uploads.size() > 1 ? absl::StrCat(" (+", uploads.size() - 1, " queued)") : "", kPrompt);
    const std::string head = "hashing ";
    if (width > 0 && head.size() + name.size() + tail.size() >= static_cast<size_t>(width)) {
      tail = absl::StrFormat(" %.0f%% | %s", 100 * done, kPrompt);
      const size_t room = static_cast<size_t>(width) - 1;
      const size_t used = head.size() + tail.size() + 3;
      const size_t keep = std::max<size_t>(room > used ? room - used : 0, 8);
      if (name.size() > keep) name = name.substr(0, keep) + "...";
    }
    return head + name + tail;
  }
  if (shown == nullptr) return kPrompt;
  const double done = fraction(*shown);
  std::string pace;
  if (shown->waiting_for_sharer) {
    pace = absl::StrCat("waiting for a sharer (gives up in ",
                        std::max<int64_t>(0, absl::ToInt64Seconds(shown->gives_up_in)), "s)");
  } else {
    std::string eta = "--";
    if (shown->eta_bytes_per_second > 0) {
      eta = absl::StrCat(static_cast<int64_t>((shown->size - shown->bytes_done) /
                                              shown->eta_bytes_per_second),
                         "s");
    }
    pace = absl::StrFormat("%.1f MiB/s ETA %s", shown->bytes_per_second / 1048576.0, eta);
  }
  const std::string others =
      running > 1 ? absl::StrFormat(" (+%d more; %d at %.1f MiB/s)", running - 1, running,
                                    total_rate / 1048576.0)
                  : "";
  const int filled = static_cast<int>(done * kBarWidth);
  const std::string bar =
      absl::StrCat(" [", std::string(filled, '#'), std::string(kBarWidth - filled, '.'), "]");
  const std::string rest = absl::StrFormat(" %.1f%% %.1f/%.1f MiB %s peers=%d%s | %s", 100 * done,
                                           shown->bytes_done / 1048576.0, shown->size / 1048576.0,
                                           pace, shown->peers, others, kPrompt);
  const std::string name = EscapeForTerminal(shown->name);
  if (width <= 0) return absl::StrCat(name, bar, rest);
  // Within the terminal's width, from the fullest form to the barest: the
  // name cut, then the bar gone, then only the percent and the pace.
  const size_t room = static_cast<size_t>(width) - 1;
  auto cut = [&](size_t others) {
    const size_t keep = room > others + 3 ? room - others - 3 : 0;
    return name.size() <= keep ? name : name.substr(0, std::max<size_t>(keep, 8)) + "...";
  };
  std::string brief = absl::StrFormat(
      " %.0f%% %s%s | %s", 100 * done,
      shown->waiting_for_sharer ? "waiting for a sharer" : pace.substr(pace.find("ETA")),
      running > 1 ? absl::StrCat(" (+", running - 1, ")") : "", kPrompt);
  for (const std::string& tail : {bar + rest, rest, brief}) {
    std::string candidate = cut(tail.size()) + tail;
    if (candidate.size() <= room) return candidate;
  }
  return cut(brief.size()) + brief;
}

void RunTerminal(Shell& shell, peer::Node& node, const std::string& history_file) {
  g_shell = &shell;
  g_done = false;
  read_history(history_file.c_str());
  // An older history may hold passwords: masked here, and so on disk at
  // the next write.
  for (int i = 0; i < history_length; ++i) {
    HIST_ENTRY* entry = history_get(history_base + i);
    if (entry == nullptr) continue;
    std::string masked = LineForHistory(entry->line);
    if (masked != entry->line) {
      HIST_ENTRY* old = replace_history_entry(i, masked.c_str(), entry->data);
      if (old != nullptr) free_history_entry(old);
    }
  }
  rl_attempted_completion_function = Complete;
  // A completed path with blanks is put in double quotes.
  rl_completer_quote_characters = "\"'";
  rl_filename_quote_characters = " \t\"'\\$`";
  rl_basic_word_break_characters = " \t\n";
  rl_char_is_quoted_p = IsEscaped;
  rl_filename_dequoting_function = Unescape;
  std::string prompt = kPrompt;
  rl_callback_handler_install(prompt.c_str(), OnLine);
  // Ctrl-C clears the line, as in bash; quit and Ctrl-D leave.
  InterruptOnSigint();
  while (!g_done && !StopRequested()) {
    if (TakeInterrupt()) {
      rl_replace_line("", 0);
      std::cout << "^C\n";
      std::cout.flush();
      rl_on_new_line();
      rl_redisplay();
    }
    fd_set in;
    FD_ZERO(&in);
    FD_SET(STDIN_FILENO, &in);
    timeval tick{0, 250000};
    int ready = select(STDIN_FILENO + 1, &in, nullptr, nullptr, &tick);
    if (ready > 0) {
      rl_callback_read_char();
      continue;
    }
    // Between keys: news above the prompt, the line being typed kept.
    if (std::vector<std::string> notices = shell.Notices(); !notices.empty()) {
      std::string typed(rl_line_buffer, static_cast<size_t>(rl_end));
      const int point = rl_point;
      rl_set_prompt("");
      rl_replace_line("", 0);
      rl_redisplay();
      for (const std::string& notice : notices) std::cout << notice << "\n";
      std::cout.flush();
      rl_set_prompt(prompt.c_str());
      rl_replace_line(typed.c_str(), 0);
      rl_point = point;
      rl_redisplay();
    }
    // Between keys: redraw the prompt when the downloads' progress changed.
    int rows = 0, columns = 0;
    rl_get_screen_size(&rows, &columns);
    std::string next = ProgressPrompt(node.Downloads(), columns, node.Uploads());
    if (next != prompt) {
      prompt = next;
      rl_set_prompt(prompt.c_str());
      rl_redisplay();
    }
  }
  rl_callback_handler_remove();
  // Nothing of the progress prompt stays behind on the terminal.
  std::cout << "\r\033[K";
  if (StopRequested()) std::cout << "\n";
  std::cout.flush();
  write_history(history_file.c_str());
  history_truncate_file(history_file.c_str(), 1000);
}

void RunPiped(Shell& shell) {
  // News goes out when the input is idle, and before each command.
  auto notices = [&] {
    for (const std::string& notice : shell.Notices()) std::cout << notice << std::endl;
  };
  ReadLines(
      STDIN_FILENO,
      [&](absl::string_view line) {
        notices();
        return shell.Execute(line);
      },
      notices);
}

}  // namespace groupshare::cli
