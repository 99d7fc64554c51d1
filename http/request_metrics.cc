#include "http/request_metrics.h"

#include <cstdio>

namespace convstore::http {

void RequestMetrics::Record(std::string_view method, std::string_view route,
                            unsigned status, double seconds) {
  std::lock_guard<std::mutex> lock(mu_);
  Series& s = series_[{std::string(method), std::string(route), status}];
  ++s.count;
  s.sum += seconds;
  for (size_t i = 0; i < kBuckets.size(); ++i) {
    if (seconds <= kBuckets[i]) ++s.buckets[i];
  }
}

std::string RequestMetrics::Render() const {
  std::map<std::tuple<std::string, std::string, unsigned>, Series> copy;
  {
    std::lock_guard<std::mutex> lock(mu_);
    copy = series_;
  }
  std::string out;
  out += "# HELP convstore_http_requests_total HTTP requests by route and status.\n";
  out += "# TYPE convstore_http_requests_total counter\n";
  auto labels = [](const auto& key) {
    const auto& [method, route, status] = key;
    return "method=\"" + method + "\",route=\"" + route + "\",status=\"" +
           std::to_string(status) + "\"";
  };
  for (const auto& [key, s] : copy) {
    out += "convstore_http_requests_total{" + labels(key) + "} " +
           std::to_string(s.count) + "\n";
  }
  out += "# HELP convstore_http_request_duration_seconds Time from request "
         "read to response ready.\n";
  out += "# TYPE convstore_http_request_duration_seconds histogram\n";
  char buf[64];
  for (const auto& [key, s] : copy) {
    std::string l = labels(key);
    for (size_t i = 0; i < kBuckets.size(); ++i) {
      std::snprintf(buf, sizeof buf, "%g", kBuckets[i]);
      out += "convstore_http_request_duration_seconds_bucket{" + l +
             ",le=\"" + buf + "\"} " + std::to_string(s.buckets[i]) + "\n";
    }
    out += "convstore_http_request_duration_seconds_bucket{" + l +
           ",le=\"+Inf\"} " + std::to_string(s.count) + "\n";
    std::snprintf(buf, sizeof buf, "%.6f", s.sum);
    out += "convstore_http_request_duration_seconds_sum{" + l + "} " + buf + "\n";
    out += "convstore_http_request_duration_seconds_count{" + l + "} " +
           std::to_string(s.count) + "\n";
  }
  return out;
}

}  // namespace convstore::http
