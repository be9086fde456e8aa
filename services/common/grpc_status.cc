#include "services/common/grpc_status.h"

#include <string>

namespace groupshare {
namespace {

#define GS_SAME_CODE(name)                                              \
  static_assert(static_cast<int>(absl::StatusCode::k##name) ==          \
                    static_cast<int>(grpc::StatusCode::name##_CODE_ALIAS), \
                #name)

// grpc spells the codes in upper case; map the spellings once.
#define OK_CODE_ALIAS OK
#define Cancelled_CODE_ALIAS CANCELLED
#define Unknown_CODE_ALIAS UNKNOWN
#define InvalidArgument_CODE_ALIAS INVALID_ARGUMENT
#define DeadlineExceeded_CODE_ALIAS DEADLINE_EXCEEDED
#define NotFound_CODE_ALIAS NOT_FOUND
#define AlreadyExists_CODE_ALIAS ALREADY_EXISTS
#define PermissionDenied_CODE_ALIAS PERMISSION_DENIED
#define ResourceExhausted_CODE_ALIAS RESOURCE_EXHAUSTED
#define FailedPrecondition_CODE_ALIAS FAILED_PRECONDITION
#define Aborted_CODE_ALIAS ABORTED
#define OutOfRange_CODE_ALIAS OUT_OF_RANGE
#define Unimplemented_CODE_ALIAS UNIMPLEMENTED
#define Internal_CODE_ALIAS INTERNAL
#define Unavailable_CODE_ALIAS UNAVAILABLE
#define DataLoss_CODE_ALIAS DATA_LOSS
#define Unauthenticated_CODE_ALIAS UNAUTHENTICATED

static_assert(static_cast<int>(absl::StatusCode::kOk) ==
              static_cast<int>(grpc::StatusCode::OK));
GS_SAME_CODE(Cancelled);
GS_SAME_CODE(Unknown);
GS_SAME_CODE(InvalidArgument);
GS_SAME_CODE(DeadlineExceeded);
GS_SAME_CODE(NotFound);
GS_SAME_CODE(AlreadyExists);
GS_SAME_CODE(PermissionDenied);
GS_SAME_CODE(ResourceExhausted);
GS_SAME_CODE(FailedPrecondition);
GS_SAME_CODE(Aborted);
GS_SAME_CODE(OutOfRange);
GS_SAME_CODE(Unimplemented);
GS_SAME_CODE(Internal);
GS_SAME_CODE(Unavailable);
GS_SAME_CODE(DataLoss);
GS_SAME_CODE(Unauthenticated);

}  // namespace

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()),
                      std::string(status.message()));
}

absl::Status FromGrpcStatus(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                      status.error_message());
}

}  // namespace groupshare
