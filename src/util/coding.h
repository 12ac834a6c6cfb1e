// Little-endian fixed-width encoding of integers into byte buffers (every on-disk integer of
// cairn is little-endian; see docs/format/). memcpy keeps it free of alignment assumptions.
#pragma once

#include <cstdint>
#include <cstring>

namespace cairn::util {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "cairn's formats assume a little-endian host");

inline void EncodeU16(void* dst, uint16_t v) { std::memcpy(dst, &v, sizeof v); }
inline void EncodeU32(void* dst, uint32_t v) { std::memcpy(dst, &v, sizeof v); }
inline void EncodeU64(void* dst, uint64_t v) { std::memcpy(dst, &v, sizeof v); }
inline uint16_t DecodeU16(const void* src) { uint16_t v; std::memcpy(&v, src, sizeof v); return v; }
inline uint32_t DecodeU32(const void* src) { uint32_t v; std::memcpy(&v, src, sizeof v); return v; }
inline uint64_t DecodeU64(const void* src) { uint64_t v; std::memcpy(&v, src, sizeof v); return v; }

}  // namespace cairn::util
