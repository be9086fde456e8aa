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

// Tab completion: the first word from the commands, later words as file
// names (readline's default).
std::vector<std::string> g_commands;

char* NextCommand(const char* text, int state) {
  static size_t next;
  if (state == 0) next = 0;
  const absl::string_view prefix(text);
  while (next < g_commands.size()) {
    const std::string& name = g_commands[next++];
    if (absl::StartsWith(name, prefix)) return strdup(name.c_str());
  }
  return nullptr;
}

char** Complete(const char* text, int start, int) {
  // Only blanks before the word: it is the command.
  for (int i = 0; i < start; ++i) {
    if (rl_line_buffer[i] != ' ' && rl_line_buffer[i] != '\t') return nullptr;
  }
  rl_attempted_completion_over = 1;
  return rl_completion_matches(text, NextCommand);
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

std::string ProgressPrompt(const std::vector<peer::DownloadProgress>& downloads) {
  const peer::DownloadProgress* shown = nullptr;
  int running = 0;
  for (const auto& d : downloads) {
    if (d.state != peer::DownloadState::kRunning) continue;
    if (shown == nullptr) shown = &d;
    ++running;
  }
  if (shown == nullptr) return kPrompt;
  double fraction = shown->size == 0 ? 0 : static_cast<double>(shown->bytes_done) / shown->size;
  int filled = static_cast<int>(fraction * kBarWidth);
  std::string eta = "--";
  if (shown->eta_bytes_per_second > 0) {
    eta = absl::StrCat(static_cast<int64_t>((shown->size - shown->bytes_done) /
                                            shown->eta_bytes_per_second),
                       "s");
  }
  return absl::StrFormat("%s [%s%s] %.1f%% %.1f/%.1f MiB %.1f MiB/s ETA %s peers=%d%s | %s",
                         EscapeForTerminal(shown->name), std::string(filled, '#'),
                         std::string(kBarWidth - filled, '.'), 100 * fraction,
                         shown->bytes_done / 1048576.0, shown->size / 1048576.0,
                         shown->bytes_per_second / 1048576.0, eta, shown->peers,
                         running > 1 ? absl::StrCat(" (+", running - 1, " more)") : "",
                         kPrompt);
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
  g_commands = shell.CommandNames();
  rl_attempted_completion_function = Complete;
  std::string prompt = kPrompt;
  rl_callback_handler_install(prompt.c_str(), OnLine);
  while (!g_done && !StopRequested()) {
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
    std::string next = ProgressPrompt(node.Downloads());
    if (next != prompt) {
      prompt = next;
      rl_set_prompt(prompt.c_str());
      rl_redisplay();
    }
  }
  rl_callback_handler_remove();
  if (StopRequested()) std::cout << "\n";
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
