// A throwaway PostgreSQL server for one test binary (tests/testing/
// postgres.sh), with a fresh database for each test.
#ifndef GROUPSHARE_TESTS_TESTING_POSTGRES_H_
#define GROUPSHARE_TESTS_TESTING_POSTGRES_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace groupshare::testing {

class PostgresServer {
 public:
  // Starts a server with its files under `dir`, listening on a Unix socket
  // there. FAILED_PRECONDITION naming what to install when PostgreSQL is
  // missing.
  static absl::StatusOr<std::unique_ptr<PostgresServer>> Start(const std::string& dir);
  ~PostgresServer();  // stops it

  // A conninfo for a new, empty database.
  absl::StatusOr<std::string> NewDatabase();
  // A conninfo for the server's own database.
  const std::string& admin_conninfo() const { return conninfo_; }

 private:
  PostgresServer(std::string dir, std::string conninfo)
      : dir_(std::move(dir)), conninfo_(std::move(conninfo)) {}
  const std::string dir_;
  const std::string conninfo_;
  int databases_ = 0;
};

}  // namespace groupshare::testing

#endif  // GROUPSHARE_TESTS_TESTING_POSTGRES_H_
