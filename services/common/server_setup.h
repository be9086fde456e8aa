// What every groupshare gRPC server turns on: server reflection (so generic
// clients such as grpcurl can list and describe the services without the
// .proto files) and the standard health service.
#ifndef GROUPSHARE_SERVICES_COMMON_SERVER_SETUP_H_
#define GROUPSHARE_SERVICES_COMMON_SERVER_SETUP_H_

#include <grpcpp/server_builder.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace groupshare {

// Call once before the first ServerBuilder is made.
void EnableReflectionAndHealth();

// Adds a plaintext listening port for "host:port" and starts the server
// with the services already registered on `builder`. Returns the server and
// stores the bound port (the chosen one for port 0) in `*bound_port`.
// UNAVAILABLE when the address cannot be bound.
absl::StatusOr<std::unique_ptr<grpc::Server>> StartServer(grpc::ServerBuilder& builder,
                                                          const std::string& address,
                                                          int* bound_port);

}  // namespace groupshare

#endif  // GROUPSHARE_SERVICES_COMMON_SERVER_SETUP_H_
