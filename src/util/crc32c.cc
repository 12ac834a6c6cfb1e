#include "util/crc32c.h"

#include <isa-l/crc.h>

#include <climits>

namespace cairn::util {

namespace {
// ISA-L picks an AVX-512 kernel where the CPU has one, and returns with the upper halves of the
// vector registers dirty. The next SSE instruction of ours (any memcpy) then pays a state
// transition that cost ~190 ns per record in profiles (docs/performance.md): clear them.
const bool kHasAvx = __builtin_cpu_supports("avx");
}  // namespace

// ISA-L's crc32_iscsi takes and returns the raw register (no pre/post inversion), so the
// standard CRC32C is ~crc32_iscsi(data, n, ~crc). Lengths are chunked because it takes an int.
uint32_t Crc32cExtend(uint32_t crc, const void* data, size_t n) {
  uint32_t reg = ~crc;
  auto* p = static_cast<unsigned char*>(const_cast<void*>(data));
  while (n > 0) {
    size_t chunk = n > (size_t{1} << 30) ? (size_t{1} << 30) : n;
    reg = crc32_iscsi(p, static_cast<int>(chunk), reg);
    p += chunk;
    n -= chunk;
  }
  if (kHasAvx) asm volatile("vzeroupper" ::: "memory");
  return ~reg;
}

}  // namespace cairn::util
