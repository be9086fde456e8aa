// The tracker's checks of what a request carries, apart from the service:
// pure functions of their arguments.
#ifndef GROUPSHARE_SERVICES_TRACKER_REQUEST_CHECKS_H_
#define GROUPSHARE_SERVICES_TRACKER_REQUEST_CHECKS_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/bitfield.h"
#include "groupshare/tracker/v1/tracker.pb.h"
#include "services/tracker/store.h"

namespace groupshare::tracker {

// The token of an authorization header as RFC 6750 has it: "Bearer" in any
// case, one or more spaces, a b64token. UNAUTHENTICATED saying what is
// wrong otherwise.
absl::StatusOr<absl::string_view> ParseBearer(absl::string_view value);

// The largest request a tracker takes (gRPC refuses a larger one,
// RESOURCE_EXHAUSTED): the UploadFile of the largest file description, with
// room for the rest. Every other request is a few KiB at most.
inline constexpr int kMaxRequestBytes = kMaxFileInfoBytes + (16 << 10);

// A request-id or client_id: 1 to 64 of [A-Za-z0-9._-].
bool IsRequestId(absl::string_view id);

// A page token is the key of the last item of the page before, in base64
// (names may hold any bytes but NUL and '/').
std::string PageToken(const std::string &last);
// The page a listing asks for: `size` items (0: `default_size`; at most
// `max_size`) after the key of `token`. INVALID_ARGUMENT for a token this
// tracker did not give.
absl::StatusOr<PageRequest> ReadPage(uint32_t size, const std::string &token,
                                     int64_t default_size, int64_t max_size);

} // namespace groupshare::tracker

#endif // GROUPSHARE_SERVICES_TRACKER_REQUEST_CHECKS_H_
