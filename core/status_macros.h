// Small helpers for absl::Status(Or) plumbing; Abseil 20220623 ships none.
#ifndef GROUPSHARE_CORE_STATUS_MACROS_H_
#define GROUPSHARE_CORE_STATUS_MACROS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define GS_CONCAT_INNER_(a, b) a##b
#define GS_CONCAT_(a, b) GS_CONCAT_INNER_(a, b)

// Returns the status from the enclosing function when `expr` is not OK.
#define RETURN_IF_ERROR(expr)                    \
  do {                                           \
    if (absl::Status gs_status_ = (expr);        \
        !gs_status_.ok()) {                      \
      return gs_status_;                         \
    }                                            \
  } while (false)

// `ASSIGN_OR_RETURN(auto x, F());` declares x from F()'s value, or returns
// F()'s status when it is not OK.
#define ASSIGN_OR_RETURN(lhs, expr) \
  ASSIGN_OR_RETURN_IMPL_(GS_CONCAT_(gs_statusor_, __LINE__), lhs, expr)
#define ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                           \
  if (!tmp.ok()) return tmp.status();          \
  lhs = std::move(*tmp)

#endif  // GROUPSHARE_CORE_STATUS_MACROS_H_
