// HOST:PORT parsing and the loopback rule of ServerOptions.
#include <fmt/format.h>

#include <charconv>

#include "server/server.h"

namespace cairn::server {

Result<HostPort> ParseHostPort(std::string_view text, std::string_view field) {
  auto bad = [&](std::string_view why) {
    return Status::InvalidArgument(
        fmt::format("{}: \"{}\" is not HOST:PORT ({}); examples: 127.0.0.1:2113, [::1]:2113, 0.0.0.0:2113",
                    field, text, why));
  };
  size_t colon = text.rfind(':');
  if (colon == std::string_view::npos) return bad("no port");
  std::string_view host = text.substr(0, colon);
  std::string_view port_text = text.substr(colon + 1);
  if (host.starts_with('[')) {
    if (!host.ends_with(']') || host.size() < 3) return bad("unclosed IPv6 bracket");
    host = host.substr(1, host.size() - 2);
  } else if (host.find(':') != std::string_view::npos) {
    return bad("an IPv6 address needs brackets");
  }
  if (host.empty()) return bad("no host");
  unsigned port = 0;
  auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (port_text.empty() || ec != std::errc() || end != port_text.data() + port_text.size() || port > 65535) {
    return bad("the port must be a number from 0 to 65535");
  }
  return HostPort{std::string(host), static_cast<uint16_t>(port)};
}

bool IsLoopbackHost(std::string_view host) {
  if (host == "localhost" || host == "::1") return true;
  // 127.0.0.0/8: four dotted decimal parts, the first 127.
  if (!host.starts_with("127.")) return false;
  int parts = 0;
  size_t start = 0;
  while (start <= host.size()) {
    size_t dot = host.find('.', start);
    if (dot == std::string_view::npos) dot = host.size();
    std::string_view part = host.substr(start, dot - start);
    unsigned value = 0;
    auto [end, ec] = std::from_chars(part.data(), part.data() + part.size(), value);
    if (part.empty() || ec != std::errc() || end != part.data() + part.size() || value > 255) return false;
    ++parts;
    start = dot + 1;
  }
  return parts == 4;
}

Status CheckListenAddress(std::string_view text, std::string_view field, bool insecure, bool tls_and_auth) {
  CAIRN_ASSIGN_OR_RETURN(HostPort hp, ParseHostPort(text, field));
  if (insecure || tls_and_auth || IsLoopbackHost(hp.host)) return Status::Ok();
  return Status::InvalidArgument(fmt::format(
      "{}: {} is not a loopback address; without TLS (--tls-cert, --tls-key) and authentication (--auth) "
      "the server listens on loopback only. Turn both on, or pass --insecure to listen there anyway, "
      "unencrypted and without authentication",
      field, text));
}

}  // namespace cairn::server
