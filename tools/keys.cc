// convstore keys create | list | revoke: directly on the data dir when no
// server runs on it, through the server's admin API when one does.
#include <boost/json.hpp>
#include <iostream>

#include "core/validation.h"
#include "http/api_keys.h"
#include "tools/admin_api.h"
#include "tools/commands.h"
#include "tools/store_access.h"

namespace convstore::tools {
namespace {

namespace json = boost::json;

// Runs `offline` with the keys store when the data dir is free, else
// `online` through the admin API. Prints errors; returns the exit code.
template <typename Offline, typename Online>
int OfflineOrOnline(const OnlineFlags& where, Offline offline, Online online) {
  auto log = OpenExclusive(where.data_dir);
  if (log.ok()) {
    Status created =
        (*log)->CreateColumnFamilies(http::ApiKeyStore::ColumnFamilies());
    if (!created.ok()) {
      std::cerr << "error: " << created.message() << "\n";
      return 1;
    }
    http::ApiKeyStore keys(log->get());
    if (Status opened = keys.Open(); !opened.ok()) {
      std::cerr << "error: " << opened.message() << "\n";
      return 1;
    }
    return offline(**log, keys);
  }
  if (log.status().kind() != ErrorKind::kUnavailable) {
    std::cerr << "error: " << log.status().message() << "\n";
    return 1;
  }
  auto api = AdminApi::Connect(where.server, where.admin_key);
  if (!api.ok()) {
    std::cerr << "error: " << api.status().message() << "\n";
    return 1;
  }
  return online(*api);
}

int Print(const Result<json::value>& r) {
  if (!r.ok()) {
    std::cerr << "error: " << r.status().message() << "\n";
    return 1;
  }
  if (!r->is_null()) std::cout << json::serialize(*r) << "\n";
  return 0;
}

}  // namespace

int RunKeysCreate(const KeysFlags& f) {
  if (!IsValidUserId(f.user)) {
    std::cerr << "error: --user must be 1 to 128 characters of letters, "
                 "digits and ._@:-\n";
    return 2;
  }
  const KeyRole role = f.admin ? KeyRole::kAdmin : KeyRole::kUser;
  return OfflineOrOnline(
      f.where,
      [&](EventLog& log, http::ApiKeyStore& keys) {
        std::string key = http::NewApiKeyText();
        int64_t now = http::NowMillis();
        LogBatch batch(&log);
        http::ApiKeyRecord rec =
            keys.Create(batch, key, f.user, role, now, "key_" + http::NewUuid(now));
        Status s = batch.Commit();
        if (!s.ok()) {
          std::cerr << "error: " << s.message() << "\n";
          return 1;
        }
        std::cout << json::serialize(http::ApiKeyToJson(rec, &key)) << "\n";
        return 0;
      },
      [&](AdminApi& api) {
        json::object body{{"user_id", f.user}, {"role", ToString(role)}};
        return Print(api.Call("POST", "/v1/admin/api-keys", json::serialize(body)));
      });
}

int RunKeysList(const KeysFlags& f) {
  return OfflineOrOnline(
      f.where,
      [&](EventLog&, http::ApiKeyStore& keys) {
        auto list = keys.List();
        if (!list.ok()) {
          std::cerr << "error: " << list.status().message() << "\n";
          return 1;
        }
        json::array items;
        for (const auto& k : *list) items.push_back(http::ApiKeyToJson(k));
        std::cout << json::serialize(items) << "\n";
        return 0;
      },
      [&](AdminApi& api) { return Print(api.Call("GET", "/v1/admin/api-keys")); });
}

int RunKeysRevoke(const KeysFlags& f) {
  return OfflineOrOnline(
      f.where,
      [&](EventLog& log, http::ApiKeyStore& keys) {
        LogBatch batch(&log);
        Status s = keys.Revoke(batch, f.id, http::NowMillis());
        if (s.ok()) s = batch.Commit();
        if (!s.ok()) {
          std::cerr << "error: " << s.message() << "\n";
          return 1;
        }
        std::cout << "revoked " << f.id << "\n";
        return 0;
      },
      [&](AdminApi& api) {
        int rc = Print(api.Call("DELETE", "/v1/admin/api-keys/" + f.id));
        if (rc == 0) std::cout << "revoked " << f.id << "\n";
        return rc;
      });
}

}  // namespace convstore::tools
