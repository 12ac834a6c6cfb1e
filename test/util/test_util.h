// Shared test utilities: temporary directories and running the `cairn` command as a child process.
#pragma once

#include <string>
#include <vector>

namespace cairn::testing {

// A fresh directory under $TMPDIR (or /tmp), removed with its contents on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string Sub(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

struct CommandResult {
  int exit_code = -1;  // the exit status, or 128 + signal number when killed
  std::string out;
  std::string err;
};

// Starts argv (argv[0] is a path) with the given descriptors as its stdin, stdout and stderr;
// returns its pid. The descriptors should be close-on-exec (they are dup'ed for the child).
int SpawnProcess(const std::vector<std::string>& argv, int in_fd, int out_fd, int err_fd);

// Runs argv (argv[0] is a path) with `input` on stdin; waits for it and captures its output.
CommandResult RunCommand(const std::vector<std::string>& argv, const std::string& input = "");

// The path of the built `cairn` command.
std::string CliPath();

}  // namespace cairn::testing
