// CRC32C (Castagnoli), as used by iSCSI, ext4 and LevelDB; computed by ISA-L (crc32_iscsi),
// which picks the fastest instructions of the CPU. Check value: Crc32c("123456789") = 0xe3069283.
#pragma once

#include <cstddef>
#include <cstdint>

namespace cairn::util {

// Extends `crc` (the result of an earlier call, or 0 to start) with `n` bytes.
uint32_t Crc32cExtend(uint32_t crc, const void* data, size_t n);
inline uint32_t Crc32c(const void* data, size_t n) { return Crc32cExtend(0, data, n); }

}  // namespace cairn::util
