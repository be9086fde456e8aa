// The one converter between absl::Status (used everywhere inside) and
// grpc::Status (used only at service and stub edges). The codes are the
// same numbers in both; static_asserts in the .cc file keep it so.
#ifndef GROUPSHARE_SERVICES_COMMON_GRPC_STATUS_H_
#define GROUPSHARE_SERVICES_COMMON_GRPC_STATUS_H_

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace groupshare {

grpc::Status ToGrpcStatus(const absl::Status& status);
absl::Status FromGrpcStatus(const grpc::Status& status);

}  // namespace groupshare

#endif  // GROUPSHARE_SERVICES_COMMON_GRPC_STATUS_H_
