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
#include "services/peer/node.h"

namespace groupshare::cli {

// Reads commands until quit, end of input, or a stop asked for by a signal
// (RequestStop, seen within a tick).
void RunTerminal(Shell& shell, peer::Node& node, const std::string& history_file);
void RunPiped(Shell& shell);

// The prompt: "groupshare> ", led while downloads run by a progress bar of
// the one nearest completion (percent, bytes, rate and ETA, or how long it
// still waits for a sharer; peers) and, with several, their count and total
// rate; while no download runs, the file being hashed for upload_file.
// `width` > 0 keeps it within that many columns (the name is cut).
std::string ProgressPrompt(const std::vector<peer::DownloadProgress>& downloads, int width = 0,
                           const std::vector<peer::UploadProgress>& uploads = {});

}  // namespace groupshare::cli

#endif  // GROUPSHARE_CLI_TERMINAL_H_
