// A fresh folder under $TMPDIR (or /tmp) for one test, removed afterwards.
#ifndef GROUPSHARE_TESTS_TESTING_TEMP_DIR_H_
#define GROUPSHARE_TESTS_TESTING_TEMP_DIR_H_

#include <string>

namespace groupshare::testing {

class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// Writes `content` to `path`, replacing it.
void WriteFile(const std::string& path, const std::string& content);
// The whole file, or "" when it cannot be read.
std::string ReadFile(const std::string& path);

}  // namespace groupshare::testing

#endif  // GROUPSHARE_TESTS_TESTING_TEMP_DIR_H_
