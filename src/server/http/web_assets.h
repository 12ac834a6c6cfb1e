// The web UI's static files (web/*), compiled into the binary by cmake/embed_web.cmake, so that
// `cairn serve` needs no files beside it and users need no build step.
#pragma once

#include <span>
#include <string_view>

namespace cairn::server::http {

struct WebAsset {
  std::string_view path;          // "/index.html"
  std::string_view content_type;  // "text/html; charset=utf-8"
  std::string_view bytes;         // valid for the life of the process
};

std::span<const WebAsset> WebAssets();

}  // namespace cairn::server::http
