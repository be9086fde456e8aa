#include "services/common/server_setup.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/security/server_credentials.h>

#include "absl/strings/str_cat.h"

namespace groupshare {

void EnableReflectionAndHealth() {
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
}

absl::StatusOr<std::unique_ptr<grpc::Server>> StartServer(grpc::ServerBuilder& builder,
                                                          const std::string& address,
                                                          int* bound_port) {
  builder.AddListeningPort(address, grpc::InsecureServerCredentials(), bound_port);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || *bound_port == 0) {
    return absl::UnavailableError(absl::StrCat(
        "cannot listen on ", address,
        " (is the port in use, or the address not on this machine?)"));
  }
  return server;
}

}  // namespace groupshare
