// What every groupshare gRPC server turns on: server reflection (so generic
// clients such as grpcurl can list and describe the services without the
// .proto files) and the standard health service.
#ifndef GROUPSHARE_SERVICES_COMMON_SERVER_SETUP_H_
#define GROUPSHARE_SERVICES_COMMON_SERVER_SETUP_H_

#include <grpcpp/security/credentials.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server_builder.h>

#include <initializer_list>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "core/certificates.h"

namespace groupshare {

// Call once before the first ServerBuilder is made.
void EnableReflectionAndHealth();

// gRPC's own log lines go to ours, at debug level: the binaries report
// failures in their own words, and gRPC's dump of them (a port in use, say)
// shows only with --log_level debug.
void RouteGrpcLogs();

// Health checks by service name answer SERVING for these (the empty name,
// the server as a whole, always does).
void ReportServing(grpc::Server& server, std::initializer_list<std::string> services);

// The PEM key and certificate chain of the files a user names (--tls_key,
// --tls_cert); INVALID_ARGUMENT when only one is named or a file cannot be
// read.
absl::StatusOr<KeyAndCert> ReadTlsFiles(const std::string& cert_path,
                                        const std::string& key_path);
// TLS with this key and certificate.
std::shared_ptr<grpc::ServerCredentials> ServerCredentialsFor(const KeyAndCert& identity);

// Where a call came from without its port: "ipv4:127.0.0.1:5000" ->
// "ipv4:127.0.0.1" (of grpc::ServerContext::peer()).
std::string SourceAddress(const std::string& peer);

// What one server binary allows its clients, beside the flags every server
// binary has (see ApplyServerLimits).
struct ServerLimits {
  // Memory gRPC may hold for this server's connections and calls: what it
  // reads ahead of a handler included. Under pressure gRPC cancels calls
  // ("Buffers full") and closes connections. HTTP/2 lets a client declare
  // a message of any length, and gRPC 1.51 opens the window for all of it
  // before it checks the size; its quota takes memory back only once it
  // is exceeded. So a burst of such messages can rise far above this bound
  // for a moment (hundreds of MiB from a few connections on loopback), and
  // within a second or two the process holds no more than it.
  int memory_mb = 64;
  // Calls open at once on one connection.
  int max_streams = 32;
  // Threads serving calls; 0 leaves gRPC's default.
  int max_threads = 0;
};

// Bounds what clients may hold of a server process: `limits`, and the flags
// every server binary has (--max_connections, --max_connections_per_address,
// --idle_connection_timeout): connections counted at accept (see
// connection_guard.h), idle ones closed, handshakes timed out. Memory that
// gRPC freed (after an attack, say) is given back to the system within
// seconds. Call once, before StartServer. INVALID_ARGUMENT for a flag or a
// limit below 1.
absl::Status ApplyServerLimits(grpc::ServerBuilder& builder, const ServerLimits& limits);

// Adds a listening port for "host:port" and starts the server with the
// services already registered on `builder`. Returns the server and stores
// the bound port (the chosen one for port 0) in `*bound_port`. UNAVAILABLE
// when the address cannot be bound.
absl::StatusOr<std::unique_ptr<grpc::Server>> StartServer(
    grpc::ServerBuilder& builder, const std::string& address, int* bound_port,
    std::shared_ptr<grpc::ServerCredentials> credentials = nullptr);

}  // namespace groupshare

#endif  // GROUPSHARE_SERVICES_COMMON_SERVER_SETUP_H_
