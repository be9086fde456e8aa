#include "tests/testing/postgres.h"

#include <libpq-fe.h>

#include <cstdio>
#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace groupshare::testing {
namespace {

absl::StatusOr<std::string> RunScript(const std::string& args) {
  const std::string command = absl::StrCat(GS_SOURCE_DIR, "/tests/testing/postgres.sh ", args);
  FILE* out = popen(command.c_str(), "r");
  if (out == nullptr) return absl::InternalError("cannot run " + command);
  std::string text;
  char buf[512];
  while (size_t n = fread(buf, 1, sizeof buf, out)) text.append(buf, n);
  if (pclose(out) != 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        command, " failed (is PostgreSQL installed? scripts/setup.sh installs it)"));
  }
  return std::string(absl::StripAsciiWhitespace(text));
}

}  // namespace

absl::StatusOr<std::unique_ptr<PostgresServer>> PostgresServer::Start(const std::string& dir) {
  auto conninfo = RunScript("start " + dir);
  if (!conninfo.ok()) return conninfo.status();
  return std::unique_ptr<PostgresServer>(new PostgresServer(dir, *conninfo));
}

PostgresServer::~PostgresServer() { RunScript("stop " + dir_).IgnoreError(); }

absl::StatusOr<std::string> PostgresServer::NewDatabase() {
  const std::string name = absl::StrCat("test_", ++databases_);
  PGconn* conn = PQconnectdb(conninfo_.c_str());
  std::unique_ptr<PGconn, decltype(&PQfinish)> owned(conn, &PQfinish);
  if (PQstatus(conn) != CONNECTION_OK) {
    return absl::UnavailableError(PQerrorMessage(conn));
  }
  PGresult* res = PQexec(conn, absl::StrCat("CREATE DATABASE ", name).c_str());
  const bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
  PQclear(res);
  if (!ok) return absl::InternalError(PQerrorMessage(conn));
  std::string out = conninfo_;
  out.replace(out.find("dbname=postgres"), 15, "dbname=" + name);
  return out;
}

}  // namespace groupshare::testing
