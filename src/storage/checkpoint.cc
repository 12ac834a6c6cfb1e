#include "storage/checkpoint.h"

#include <fmt/format.h>

#include "util/crc32c.h"

namespace cairn::storage {

Status WriteCheckpointFile(env::Env* env, const std::string& dir, const std::string& body) {
  std::string file;
  file.reserve(body.size() + 20);
  file.append(kCheckpointMagic, 8);
  char v[4];
  util::EncodeU32(v, kCheckpointVersion);
  file.append(v, 4);
  file.append(body);
  char crc[4];
  util::EncodeU32(crc, util::Crc32c(file.data(), file.size()));
  file.append(crc, 4);
  const std::string tmp = dir + "/" + kCheckpointFile + ".tmp";
  const std::string path = dir + "/" + kCheckpointFile;
  {
    CAIRN_ASSIGN_OR_RETURN(auto f, env->OpenFile(tmp, env::OpenMode::kCreate));
    CAIRN_RETURN_IF_ERROR(f->Truncate(0));
    CAIRN_RETURN_IF_ERROR(f->Write(0, std::as_bytes(std::span(file.data(), file.size()))));
    CAIRN_RETURN_IF_ERROR(f->Sync());
  }
  CAIRN_RETURN_IF_ERROR(env->RenameFile(tmp, path));
  return env->SyncDir(dir);
}

Status ReadCheckpointFile(env::Env* env, const std::string& dir, std::string* body) {
  const std::string path = dir + "/" + kCheckpointFile;
  if (!env->FileExists(path)) return Status::NotFound(path + " does not exist");
  CAIRN_ASSIGN_OR_RETURN(auto f, env->OpenFile(path, env::OpenMode::kRead));
  CAIRN_ASSIGN_OR_RETURN(uint64_t size, f->Size());
  if (size < 16) return Status::Corruption(path + ": too short");
  std::string file(size, '\0');
  size_t got = 0;
  CAIRN_RETURN_IF_ERROR(f->Read(0, size, reinterpret_cast<std::byte*>(file.data()), &got));
  if (got != size) return Status::Corruption(path + ": short read");
  if (std::memcmp(file.data(), kCheckpointMagic, 8) != 0) return Status::Corruption(path + ": bad magic");
  if (util::DecodeU32(file.data() + 8) != kCheckpointVersion) {
    return Status::Corruption(fmt::format("{}: version {} is not {}", path, util::DecodeU32(file.data() + 8), kCheckpointVersion));
  }
  if (util::DecodeU32(file.data() + size - 4) != util::Crc32c(file.data(), size - 4)) {
    return Status::Corruption(path + ": checksum mismatch");
  }
  body->assign(file.data() + 12, size - 16);
  return Status::Ok();
}

}  // namespace cairn::storage
