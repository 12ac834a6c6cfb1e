#include <sys/mman.h>

#include <cstdint>

#include "env/env.h"

namespace cairn::env {

void DropMappedPages(const std::byte* p, size_t n) {
  // madvise wants a page-aligned start; the mapping's own start always is.
  const uintptr_t page = 4096;
  const uintptr_t start = reinterpret_cast<uintptr_t>(p) & ~(page - 1);
  const uintptr_t end = reinterpret_cast<uintptr_t>(p) + n;
  (void)madvise(reinterpret_cast<void*>(start), end - start, MADV_DONTNEED);
}

}  // namespace cairn::env
