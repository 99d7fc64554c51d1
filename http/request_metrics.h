// RequestMetrics: request counts and latency histograms by method, route
// template and status, rendered in the Prometheus text format. Record and
// Render are thread-safe (one short mutex hold; no I/O under it).
#pragma once

#include <array>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <tuple>

namespace convstore::http {

class RequestMetrics {
 public:
  static constexpr std::array<double, 12> kBuckets = {
      0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
      0.05,   0.1,   0.25,   0.5,   1.0,  2.5};

  void Record(std::string_view method, std::string_view route,
              unsigned status, double seconds);
  std::string Render() const;

 private:
  struct Series {
    uint64_t count = 0;
    double sum = 0;
    std::array<uint64_t, kBuckets.size()> buckets{};
  };
  mutable std::mutex mu_;
  std::map<std::tuple<std::string, std::string, unsigned>, Series> series_;
};

}  // namespace convstore::http
