#include "services/common/server_setup.h"

#include <grpc/impl/codegen/grpc_types.h>
#include <grpc/support/log.h>
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/resource_quota.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server.h>

#include <malloc.h>
#include <time.h>

#include <mutex>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "core/log.h"
#include "core/read_file.h"
#include "services/common/connection_guard.h"
#include "grpc/health/v1/health.pb.h"

ABSL_FLAG(int, max_connections, 4096,
          "connections open at once, at most (and fewer when the limit of open files is "
          "lower); more are closed as they come, so that honest clients still get in");
ABSL_FLAG(int, max_connections_per_address, 256,
          "connections open at once from one address (an IPv6 /64), at most");
ABSL_FLAG(int, idle_connection_timeout, 300,
          "seconds after which a connection with no call is closed");

namespace groupshare {

void RouteGrpcLogs() {
  gpr_set_log_function([](gpr_log_func_args* args) {
    GS_LOG(kDebug) << "grpc: " << gpr_log_severity_string(args->severity) << " " << args->file
                   << ":" << args->line << " " << args->message;
  });
}

std::string SourceAddress(const std::string& peer) {
  const size_t colon = peer.rfind(':');
  return colon == std::string::npos || colon < 5 ? peer : peer.substr(0, colon);
}

void EnableReflectionAndHealth() {
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  // Links health.proto's descriptor in, for reflection to serve.
  (void)grpc::health::v1::HealthCheckRequest::descriptor();
}

void ReportServing(grpc::Server& server, std::initializer_list<std::string> services) {
  grpc::HealthCheckServiceInterface* health = server.GetHealthCheckService();
  if (health == nullptr) return;
  for (const std::string& name : services) health->SetServingStatus(name, true);
}

namespace {

// Idle threads a synchronous server keeps polling (see ApplyServerLimits).
constexpr int kMaxPollers = 8;

absl::StatusOr<std::string> ReadPem(const std::string& path, const char* what) {
  absl::StatusOr<std::string> text = ReadFileText(path, absl::StrCat("the ", what));
  if (!text.ok()) return absl::InvalidArgumentError(text.status().message());
  if (text->empty()) {
    return absl::InvalidArgumentError(absl::StrCat("the ", what, " '", path, "' is empty"));
  }
  return text;
}

}  // namespace

absl::StatusOr<KeyAndCert> ReadTlsFiles(const std::string& cert_path,
                                        const std::string& key_path) {
  if (cert_path.empty() || key_path.empty()) {
    return absl::InvalidArgumentError("TLS needs both --tls_cert and --tls_key");
  }
  auto cert = ReadPem(cert_path, "TLS certificate");
  if (!cert.ok()) return cert.status();
  auto key = ReadPem(key_path, "TLS key");
  if (!key.ok()) return key.status();
  return KeyAndCert{*std::move(key), *std::move(cert)};
}

std::shared_ptr<grpc::ServerCredentials> ServerCredentialsFor(const KeyAndCert& identity) {
  grpc::SslServerCredentialsOptions options;
  options.pem_key_cert_pairs.push_back({identity.key_pem, identity.cert_pem});
  return grpc::SslServerCredentials(options);
}

namespace {

// CPU time all threads of this process have used.
absl::Duration ProcessCpuTime() {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return absl::DurationFromTimespec(ts);
}

// glibc keeps what a process freed for its next allocations; after a burst
// of buffering (an attack, or a flash crowd) that is hundreds of MiB the
// process no longer needs. Gives it back, checked every `kEvery`, once more
// than `kKeepFree` lies unused and the process is quiet (it used under
// `kQuietShare` of a core), or once more than `kKeepFreeWhileBusy` does. A
// trim while data flows is paid again at once: the next buffers fault their
// pages back in. A trim costs a walk of the free lists, a millisecond or so.
void ReturnFreeMemoryInTheBackground() {
  static std::once_flag started;
  std::call_once(started, [] {
    std::thread([] {
      constexpr size_t kKeepFree = 8 << 20;
      constexpr size_t kKeepFreeWhileBusy = 64 << 20;
      constexpr absl::Duration kEvery = absl::Seconds(2);
      constexpr double kQuietShare = 0.05;
      absl::Duration cpu_before = ProcessCpuTime();
      for (;;) {
        absl::SleepFor(kEvery);
        const absl::Duration cpu = ProcessCpuTime();
        const bool quiet = cpu - cpu_before < kEvery * kQuietShare;
        cpu_before = cpu;
        const size_t unused = mallinfo2().fordblks;
        if (unused > (quiet ? kKeepFree : kKeepFreeWhileBusy)) malloc_trim(0);
      }
    }).detach();
  });
}

}  // namespace

absl::Status ApplyServerLimits(grpc::ServerBuilder& builder, const ServerLimits& limits) {
  const int total = absl::GetFlag(FLAGS_max_connections);
  const int per_address = absl::GetFlag(FLAGS_max_connections_per_address);
  const int idle = absl::GetFlag(FLAGS_idle_connection_timeout);
  if (total < 1 || per_address < 1 || idle < 1) {
    return absl::InvalidArgumentError(
        "--max_connections, --max_connections_per_address and --idle_connection_timeout "
        "must be at least 1");
  }
  if (limits.memory_mb < 1 || limits.max_streams < 1 || limits.max_threads < 0) {
    return absl::InvalidArgumentError(
        "--max_memory_mb and --max_streams_per_connection must be at least 1");
  }
  grpc::ResourceQuota quota;
  quota.Resize(static_cast<size_t>(limits.memory_mb) << 20);
  if (limits.max_threads > 0) quota.SetMaxThreads(limits.max_threads);
  builder.SetResourceQuota(quota);
  // A synchronous method's thread goes back to polling when its call is
  // done, and gRPC ends pollers past this many. Its default (2) ends and
  // starts threads all the time under load: each ListFiles cost a share
  // of a thread's creation. Idle pollers cost a stack each.
  builder.SetSyncServerOption(grpc::ServerBuilder::SyncServerOption::MAX_POLLERS, kMaxPollers);
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS, limits.max_streams);
  ReturnFreeMemoryInTheBackground();
  const int enforced = GuardConnections({total, per_address});
  if (enforced < total) {
    GS_LOG(kInfo) << "at most " << enforced
                  << " connections at once: the limit of open files allows no more";
  }
  builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_IDLE_MS, idle * 1000);
  // A connection that never completes its handshake holds a descriptor too.
  builder.AddChannelArgument(GRPC_ARG_SERVER_HANDSHAKE_TIMEOUT_MS, 10 * 1000);
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<grpc::Server>> StartServer(
    grpc::ServerBuilder& builder, const std::string& address, int* bound_port,
    std::shared_ptr<grpc::ServerCredentials> credentials) {
  if (credentials == nullptr) credentials = grpc::InsecureServerCredentials();
  // gRPC sets SO_REUSEPORT by default: a second process on a taken address
  // would then start and take a share of the connections.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.AddListeningPort(address, credentials, bound_port);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || *bound_port == 0) {
    return absl::UnavailableError(absl::StrCat(
        "cannot listen on ", address,
        ": the address is in use (by another process?) or not on this machine"));
  }
  return server;
}

}  // namespace groupshare
