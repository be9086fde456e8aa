#include "services/common/process.h"

#include <fcntl.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <thread>

#include "absl/flags/parse.h"
#include "absl/flags/reflection.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "core/log.h"
#include "core/text.h"

namespace groupshare {

std::vector<std::string> ParseFlagsOrExit(int argc, char** argv, absl::string_view usage) {
  for (int i = 1; i < argc; ++i) {
    absl::string_view arg = argv[i];
    if (arg == "--") break;
    if (arg == "--help" || arg == "-h" || arg == "-help" || arg == "--helpfull") {
      std::cout << usage << "\nFlags:\n";
      std::map<std::string, std::string> lines;  // sorted by name
      for (const auto& [name, flag] : absl::GetAllFlags()) {
        if (!absl::EndsWith(flag->Filename(), "main.cc")) continue;
        std::string value = flag->DefaultValue();
        lines[std::string(name)] = absl::StrCat(
            "  --", name, "  ", flag->Help(),
            value.empty() || value == "\"\"" ? "" : absl::StrCat(" (default: ", value, ")"));
      }
      for (const auto& [name, line] : lines) std::cout << line << "\n";
      std::exit(0);
    }
  }
  std::vector<char*> rest = absl::ParseCommandLine(argc, argv);
  return std::vector<std::string>(rest.begin() + 1, rest.end());
}

int FailStartup(absl::string_view message) {
  std::cerr << "error: " << message << "\n";
  return 2;
}

namespace {
// Whether SIGHUP was ignored when the process started (nohup): then it
// stays so, rather than be waited for.
std::atomic<bool> g_hangup_ignored{false};

sigset_t TermSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  if (!g_hangup_ignored) sigaddset(&set, SIGHUP);
  return set;
}
}  // namespace

absl::Status CheckPositionalArgs(std::vector<std::string>& args,
                                 const std::vector<std::string>& names, size_t repeatable,
                                 absl::string_view binary) {
  if (args.size() == names.size() + 1 && args.back() == args[repeatable]) args.pop_back();
  if (args.size() < names.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "expected ", absl::StrJoin(names, " "), "; ", names[args.size()], " is missing; see ",
        binary, " --help"));
  }
  if (args.size() > names.size()) {
    const size_t extra = args.size() - names.size();
    return absl::InvalidArgumentError(absl::StrCat(
        extra == 1 ? "one argument too many: '" : absl::StrCat(extra, " arguments too many: '"),
        absl::StrJoin(args.begin() + static_cast<long>(names.size()), args.end(), "' '"),
        "'; expected ", absl::StrJoin(names, " "), " (see ", binary, " --help)"));
  }
  return absl::OkStatus();
}

void HidePasswordsInArgs(int argc, char** argv) {
  auto mask = [](char* from, char* to) {
    for (char* c = from; c < to; ++c) *c = 'x';
  };
  for (int i = 1; i < argc; ++i) {
    char* arg = argv[i];
    // key=value: password=secret, up to the next blank.
    for (char* at = std::strstr(arg, "password="); at != nullptr;
         at = std::strstr(at + 1, "password=")) {
      char* value = at + std::strlen("password=");
      mask(value, value + std::strcspn(value, " \t"));
    }
    // URI: postgresql://user:secret@host
    char* scheme = std::strstr(arg, "://");
    if (scheme == nullptr) continue;
    char* authority = scheme + 3;
    char* end = authority + std::strcspn(authority, "/?#");
    char* at = nullptr;
    for (char* c = authority; c < end; ++c) {
      if (*c == '@') at = c;
    }
    if (at == nullptr) continue;
    for (char* colon = authority; colon < at; ++colon) {
      if (*colon == ':') {
        mask(colon + 1, at);
        break;
      }
    }
  }
}

void DisableMutexDeadlockDetection() {
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
}

void BlockTermSignals() {
  struct sigaction hangup {};
  g_hangup_ignored = sigaction(SIGHUP, nullptr, &hangup) == 0 && hangup.sa_handler == SIG_IGN;
  sigset_t set = TermSignals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  // A peer that goes away mid-write must not kill us.
  signal(SIGPIPE, SIG_IGN);
}

namespace {

struct Stop {
  absl::Mutex mu;
  bool requested ABSL_GUARDED_BY(mu) = false;
};

Stop& TheStop() {
  static Stop* stop = new Stop();  // never destroyed: the signal thread may outlive main
  return *stop;
}

}  // namespace

void RequestStop() {
  absl::MutexLock lock(&TheStop().mu);
  TheStop().requested = true;
}

bool StopRequested() {
  absl::MutexLock lock(&TheStop().mu);
  return TheStop().requested;
}

void WaitForStop() {
  Stop& stop = TheStop();
  absl::MutexLock lock(&stop.mu);
  stop.mu.Await(absl::Condition(&stop.requested));
}

void RunConsoleUntilStopped(absl::string_view server) {
  WatchTermSignals();
  const bool input_ended = ReadLines(STDIN_FILENO, [server](absl::string_view line) {
    absl::string_view cmd = absl::StripAsciiWhitespace(line);
    if (cmd == "quit" || cmd == "exit") return false;
    if (!cmd.empty()) {
      std::cout << "error: unknown command '" << Abbreviated(cmd, 64) << "'; type quit to stop "
                << server << std::endl;
    }
    return true;
  });
  if (!input_ended || isatty(STDIN_FILENO)) RequestStop();
  WaitForStop();
}

std::atomic<bool> g_interrupt_on_sigint{false};
std::atomic<bool> g_interrupted{false};

void InterruptOnSigint() { g_interrupt_on_sigint = true; }
bool TakeInterrupt() { return g_interrupted.exchange(false); }

void WatchTermSignals() {
  std::thread([] {
    sigset_t set = TermSignals();
    while (true) {
      int sig = 0;
      if (sigwait(&set, &sig) != 0) continue;
      if (sig == SIGINT && g_interrupt_on_sigint) {
        g_interrupted = true;
        continue;
      }
      GS_LOG(kInfo) << "signal " << sig << ": stopping";
      RequestStop();
    }
  }).detach();
}

bool ReadLines(int fd, const std::function<bool(absl::string_view)>& on_line,
               const std::function<void()>& on_idle) {
  std::string pending;
  char buf[4096];
  while (!StopRequested()) {
    pollfd in{fd, POLLIN, 0};
    int ready = poll(&in, 1, 100);
    if (ready < 0 && errno != EINTR) return true;
    if (ready == 0 && on_idle) on_idle();
    if (ready <= 0) continue;
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n <= 0) {
      if (!pending.empty()) on_line(absl::StripSuffix(pending, "\r"));
      return true;
    }
    pending.append(buf, static_cast<size_t>(n));
    for (size_t end; (end = pending.find('\n')) != std::string::npos;) {
      std::string line = pending.substr(0, end);
      pending.erase(0, end + 1);
      if (!on_line(absl::StripSuffix(line, "\r"))) return false;
      if (StopRequested()) return false;
    }
  }
  return false;
}

absl::Status LockForLife(const std::string& path) {
  // flock's lock goes with this descriptor, which stays open (and out of
  // any program this process runs) until the process ends.
  const int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot open '", path, "': ", std::strerror(errno)));
  }
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int error = errno;
    char holder[32] = {};
    const ssize_t n = pread(fd, holder, sizeof(holder) - 1, 0);
    close(fd);
    if (error != EWOULDBLOCK) {
      // A file system without locks (some network and container mounts)
      // must not stop the process: it goes on unguarded.
      GS_LOG(kWarning) << "cannot lock '" << path << "' (" << std::strerror(error)
                       << "); nothing stops a second process from using what it guards";
      return absl::OkStatus();
    }
    const absl::string_view pid = absl::StripAsciiWhitespace(
        absl::string_view(holder, n > 0 ? static_cast<size_t>(n) : 0));
    return absl::FailedPreconditionError(
        pid.empty() ? std::string("held by another process")
                    : absl::StrCat("held by process ", pid));
  }
  // Without the pid the lock holds all the same: only the message of a
  // second process would lack it.
  const std::string pid = absl::StrCat(getpid(), "\n");
  if (ftruncate(fd, 0) == 0) (void)!pwrite(fd, pid.data(), pid.size(), 0);
  return absl::OkStatus();
}

absl::Status WriteFileAtomically(const std::string& path, absl::string_view content,
                                 int mode) {
  std::string tmp = absl::StrCat(path, ".tmp");
  const int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  bool written = fd >= 0 && fchmod(fd, static_cast<mode_t>(mode)) == 0;
  for (size_t done = 0; written && done < content.size();) {
    const ssize_t n = write(fd, content.data() + done, content.size() - done);
    if (n < 0 && errno == EINTR) continue;
    written = n > 0;
    if (written) done += static_cast<size_t>(n);
  }
  if (fd >= 0 && close(fd) != 0) written = false;
  if (!written) {
    return absl::UnavailableError(
        absl::StrCat("cannot write '", tmp, "': ", std::strerror(errno)));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot rename '", tmp, "' to '", path, "': ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

std::string DefaultStatePath(absl::string_view name) {
  const char* home = std::getenv("HOME");
  if (home == nullptr || *home == '\0') {
    const passwd* account = getpwuid(getuid());
    home = account != nullptr ? account->pw_dir : nullptr;
  }
  if (home == nullptr || *home == '\0') return std::string(name);
  std::string dir = absl::StrCat(home, "/.groupshare");
  mkdir(dir.c_str(), 0700);
  return absl::StrCat(dir, "/", name);
}

absl::Status MakeStateFolder(const std::string& dir) {
  struct stat st;
  if (mkdir(dir.c_str(), 0700) != 0 && (errno != EEXIST || stat(dir.c_str(), &st) != 0)) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot create the state folder '", dir, "' (", std::strerror(errno),
                     "); give --state_dir a folder you may write"));
  }
  if (stat(dir.c_str(), &st) == 0 && !S_ISDIR(st.st_mode)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the state folder '", dir, "' is a file; give --state_dir a folder you may write"));
  }
  return absl::OkStatus();
}

}  // namespace groupshare
