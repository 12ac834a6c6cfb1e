// The HTTP API's authorization hook over auth::Security (http_auth.h).
#include "server/http/http_auth.h"

#include "auth/security.h"

namespace cairn::server::http {

Authorizer SecurityAuthorizer(const auth::Security* security) {
  return [security](const AccessRequest& request) -> Result<Principal> {
    if (request.permission == Permission::kPublic) return Principal{};
    CAIRN_ASSIGN_OR_RETURN(auth::Principal who, security->Authenticate(request.authorization));
    auth::Permission needed = auth::Permission::kOperate;
    switch (request.permission) {
      case Permission::kRead:
        needed = request.stream == "$all" ? auth::Permission::kReadAll : auth::Permission::kRead;
        break;
      case Permission::kWrite:
        needed = auth::Permission::kWrite;
        break;
      case Permission::kDelete:
        needed = auth::Permission::kDelete;
        break;
      case Permission::kMetadataRead:
        needed = auth::Permission::kMetadataRead;
        break;
      case Permission::kMetadataWrite:
        needed = auth::Permission::kMetadataWrite;
        break;
      case Permission::kMetrics:
        needed = auth::Permission::kMetrics;
        break;
      case Permission::kOperate:
      case Permission::kPublic:
        needed = auth::Permission::kOperate;
        break;
    }
    CAIRN_RETURN_IF_ERROR(security->Authorize(who, needed, request.stream));
    return Principal{who.name};
  };
}

}  // namespace cairn::server::http
