// The shell's input loop: GNU readline on a terminal (line editing, history
// kept in the state folder, and a live progress bar of the running downloads
// in the prompt, redrawn by readline itself so it never garbles the line
// being typed); plain lines from a pipe, with no prompt.
#ifndef GROUPSHARE_CLI_TERMINAL_H_
#define GROUPSHARE_CLI_TERMINAL_H_

#include <string>
#include <vector>

#include "cli/shell.h"
#include "services/peer/downloader.h"

namespace groupshare::cli {

// Reads commands until quit, end of input, or a stop asked for by a signal
// (RequestStop, seen within a tick).
void RunTerminal(Shell& shell, peer::Node& node, const std::string& history_file);
void RunPiped(Shell& shell);

// The prompt: "groupshare> ", led by a progress bar of the first running
// download (percent, bytes, rate, ETA, peers) while any runs.
std::string ProgressPrompt(const std::vector<peer::DownloadProgress>& downloads);

}  // namespace groupshare::cli

#endif  // GROUPSHARE_CLI_TERMINAL_H_
