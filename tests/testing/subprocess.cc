#include "tests/testing/subprocess.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <random>
#include <stdexcept>
#include <thread>

#include "absl/strings/match.h"
#include "absl/time/clock.h"
#include "tests/testing/temp_dir.h"

extern char** environ;

namespace groupshare::testing {

Subprocess::Subprocess(const std::vector<std::string>& argv,
                       const std::map<std::string, std::string>& env,
                       const std::string& stderr_path) {
  int in[2], out[2];
  if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0) {
    throw std::runtime_error("pipe failed");
  }
  std::map<std::string, std::string> vars;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string kv = *e;
    size_t eq = kv.find('=');
    if (eq != std::string::npos) vars[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  for (const auto& [k, v] : env) vars[k] = v;
  std::vector<std::string> env_strings;
  for (const auto& [k, v] : vars) env_strings.push_back(k + "=" + v);
  std::vector<char*> envp, args;
  for (std::string& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<std::string> argv_copy = argv;
  for (std::string& s : argv_copy) args.push_back(s.data());
  args.push_back(nullptr);

  const pid_t parent = getpid();
  pid_ = fork();
  if (pid_ < 0) throw std::runtime_error("fork failed");
  if (pid_ == 0) {
    // Gone with the test: a test that dies (a crash, a signal) leaves no
    // tracker or client behind.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    dup2(in[0], STDIN_FILENO);
    dup2(out[1], STDOUT_FILENO);
    if (!stderr_path.empty()) {
      int err = open(stderr_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      if (err >= 0) dup2(err, STDERR_FILENO);
    }
    // Signals blocked in the test runner must not stay blocked here, nor
    // SIGHUP ignored (a runner started with nohup).
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    signal(SIGHUP, SIG_DFL);
    execve(args[0], args.data(), envp.data());
    _exit(127);
  }
  close(in[0]);
  close(out[1]);
  in_fd_ = in[1];
  out_fd_ = out[0];
}

Subprocess::~Subprocess() {
  if (!exit_code_.has_value()) {
    Signal(SIGKILL);
    Wait(absl::Seconds(10));
  }
  if (in_fd_ >= 0) close(in_fd_);
  if (out_fd_ >= 0) close(out_fd_);
}

void Subprocess::Send(absl::string_view line) {
  std::string data = std::string(line) + "\n";
  size_t done = 0;
  while (in_fd_ >= 0 && done < data.size()) {
    ssize_t n = write(in_fd_, data.data() + done, data.size() - done);
    if (n <= 0) break;
    done += static_cast<size_t>(n);
  }
}

void Subprocess::CloseStdin() {
  if (in_fd_ >= 0) close(in_fd_);
  in_fd_ = -1;
}

std::optional<std::string> Subprocess::ReadLine(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    std::optional<std::string> line = ReadAnyLine(deadline);
    if (!line.has_value() || !absl::StartsWith(*line, "notice: ")) return line;
    notices_.push_back(*line);
  }
}

std::optional<std::string> Subprocess::WaitForNotice(absl::string_view needle,
                                                     absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  for (size_t seen = 0;; ++seen) {
    while (seen == notices_.size()) {
      std::optional<std::string> line = ReadAnyLine(deadline);
      if (!line.has_value()) return std::nullopt;
      if (absl::StartsWith(*line, "notice: ")) notices_.push_back(*line);
    }
    if (absl::StrContains(notices_[seen], needle)) return notices_[seen];
  }
}

std::optional<std::string> Subprocess::ReadAnyLine(absl::Time deadline) {
  while (true) {
    size_t nl = buffer_.find('\n');
    if (nl != std::string::npos) {
      std::string line = buffer_.substr(0, nl);
      buffer_.erase(0, nl + 1);
      transcript_ += line + "\n";
      return line;
    }
    if (eof_) return std::nullopt;
    absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) return std::nullopt;
    pollfd pfd{out_fd_, POLLIN, 0};
    int ready = poll(&pfd, 1, static_cast<int>(absl::ToInt64Milliseconds(left)) + 1);
    if (ready <= 0) continue;
    char chunk[4096];
    ssize_t n = read(out_fd_, chunk, sizeof chunk);
    if (n <= 0) {
      eof_ = true;
    } else {
      buffer_.append(chunk, static_cast<size_t>(n));
    }
  }
}

std::optional<std::string> Subprocess::WaitFor(absl::string_view needle,
                                               absl::Duration timeout) {
  absl::Time deadline = absl::Now() + timeout;
  while (true) {
    std::optional<std::string> line = ReadLine(deadline - absl::Now());
    if (!line.has_value()) return std::nullopt;
    if (absl::StrContains(*line, needle)) return line;
  }
}

std::string Subprocess::Run(absl::string_view command, absl::Duration timeout) {
  Send(command);
  return ReadLine(timeout).value_or("");
}

void Subprocess::Signal(int sig) {
  if (pid_ > 0 && !exit_code_.has_value()) kill(pid_, sig);
}

std::optional<int> Subprocess::Wait(absl::Duration timeout) {
  if (exit_code_.has_value()) return exit_code_;
  absl::Time deadline = absl::Now() + timeout;
  absl::Duration pause = absl::Milliseconds(1);
  while (true) {
    int status = 0;
    pid_t r = waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      return exit_code_;
    }
    if (absl::Now() >= deadline) return std::nullopt;
    absl::SleepFor(pause);  // polling a child's exit; there is no fd to wait on
    pause = std::min(pause * 2, absl::Milliseconds(50));
  }
}

std::string WaitForFile(const std::string& path, absl::Duration timeout) {
  absl::Time deadline = absl::Now() + timeout;
  absl::Duration pause = absl::Milliseconds(1);
  while (true) {
    std::string content = ReadFile(path);
    if (!content.empty()) return content;
    if (absl::Now() >= deadline) return "";
    absl::SleepFor(pause);
    pause = std::min(pause * 2, absl::Milliseconds(50));
  }
}

namespace {

// The lowest port the system hands out on its own (to port 0 and to the
// source of a connection); 32768 unless set otherwise.
int LowestEphemeralPort() {
  std::ifstream range("/proc/sys/net/ipv4/ip_local_port_range");
  int low = 0;
  return range >> low && low > 1024 ? low : 32768;
}

bool Binds(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  const bool bound = bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  close(fd);
  return bound;
}

}  // namespace

int UnusedPort() {
  // Drawn below the ports the system chooses itself: a port it chose for us
  // would be free again once tested, and a connection of a test running
  // beside this one could take it as its source before our process listens.
  const int high = LowestEphemeralPort();
  const int low = std::max(1025, high - 16384);
  thread_local std::mt19937 random(std::random_device{}());
  std::uniform_int_distribution<int> draw(low, high - 1);
  for (int tries = 0; tries < 200; ++tries) {
    if (const int port = draw(random); Binds(port)) return port;
  }
  throw std::runtime_error("no free port below the system's own");
}

int ConnectFrom(const std::string& source, int port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in from{}, to{};
  from.sin_family = to.sin_family = AF_INET;
  inet_pton(AF_INET, source.c_str(), &from.sin_addr);
  inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
  to.sin_port = htons(static_cast<uint16_t>(port));
  timeval timeout{1, 0};
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
  if (bind(fd, reinterpret_cast<sockaddr*>(&from), sizeof from) != 0 ||
      connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to) != 0) {
    close(fd);
    return -1;
  }
  timeout = {0, 0};
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
  return fd;
}

}  // namespace groupshare::testing
