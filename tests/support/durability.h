// Test support: the durability checks the crash and full-disk suites share.
// After a fault and a restart: every acknowledged message is stored with
// identical bytes, the log is gapless from 1, and (with the server stopped)
// the read models equal a fresh rebuild from the log.
// Helpers report through gtest; use them from the test's thread.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "tests/support/test_server.h"

namespace convstore::testing {

// Acknowledged appends: message id -> the 201 response body.
using AckedMessages = std::map<std::string, std::string>;

// Checks that every message in `acked` is among the messages of
// `conversations`, rendered exactly as acknowledged. Returns how many were
// found.
size_t ExpectAcknowledgedMessagesPresent(
    HttpClient& client, const std::string& key,
    const std::vector<std::string>& conversations, const AckedMessages& acked);

// Pages through /v1/admin/events and checks positions run 1, 2, 3, ...
// without a gap; returns the last position.
uint64_t ExpectGaplessLog(HttpClient& client, const std::string& admin_key);

// Runs `convstore projections verify` on a stopped server's data dir.
void ExpectReadModelsEqualRebuild(const std::string& data_dir);

}  // namespace convstore::testing
