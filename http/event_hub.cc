#include "http/event_hub.h"

#include <utility>

namespace convstore::http {

EventHub::Subscription::State EventHub::Subscription::Take(
    std::vector<const RecordedEvent*>& out, std::vector<Group>& keep,
    std::function<void()> wake) {
  out.clear();
  keep.clear();
  std::lock_guard<std::mutex> lock(mu_);
  if (closed_) return State::kClosed;
  if (dropped_) {
    dropped_ = false;
    return State::kDropped;
  }
  if (queue_.empty()) {
    wake_ = std::move(wake);
    return State::kWait;
  }
  for (const Item& item : queue_) {
    if (keep.empty() || keep.back() != item.group) keep.push_back(item.group);
    out.push_back(&(*item.group)[item.index]);
  }
  queue_.clear();
  return State::kEvents;
}

std::shared_ptr<EventHub::Subscription> EventHub::Subscribe(
    std::optional<std::string> conversation_id) {
  auto sub = std::make_shared<Subscription>();
  sub->limit_ = queue_limit_;
  std::lock_guard<std::mutex> lock(mu_);
  if (closed_) {
    sub->closed_ = true;
    return sub;
  }
  // Forget subscribers that are gone, now and then, so the map stays the
  // size of the live ones.
  if (subs_.size() > 64 && subs_.size() % 64 == 0) {
    for (auto it = subs_.begin(); it != subs_.end();) {
      it = it->second.expired() ? subs_.erase(it) : std::next(it);
    }
  }
  subs_.emplace(conversation_id.value_or(""), sub);
  return sub;
}

std::function<void()> EventHub::Deliver(Subscription& sub, const Group& group,
                                        const std::vector<size_t>& indexes) {
  std::lock_guard<std::mutex> lock(sub.mu_);
  if (sub.closed_ || sub.dropped_) return nullptr;
  if (sub.queue_.size() + indexes.size() > sub.limit_) {
    // Too far behind: it reads the log instead (and a slow reader costs the
    // writer nothing but this flag).
    sub.queue_.clear();
    sub.dropped_ = true;
    fell_behind_.fetch_add(1, std::memory_order_relaxed);
  } else {
    for (size_t i : indexes) sub.queue_.push_back({group, i});
  }
  return std::exchange(sub.wake_, nullptr);
}

void EventHub::Publish(std::vector<RecordedEvent> events) {
  auto group =
      std::make_shared<const std::vector<RecordedEvent>>(std::move(events));
  std::vector<std::function<void()>> wakes;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (subs_.empty()) return;
    // Which events each conversation's subscribers get.
    std::map<std::string_view, std::vector<size_t>> by_conversation;
    std::vector<size_t> all(group->size());
    for (size_t i = 0; i < group->size(); ++i) {
      all[i] = i;
      std::string_view conv = ConversationIdOf((*group)[i].payload);
      if (!conv.empty()) by_conversation[conv].push_back(i);
    }
    auto deliver_to = [&](std::string_view key,
                          const std::vector<size_t>& indexes) {
      auto [first, last] = subs_.equal_range(key);
      for (auto it = first; it != last; ++it) {
        if (std::shared_ptr<Subscription> sub = it->second.lock()) {
          if (auto wake = Deliver(*sub, group, indexes)) {
            wakes.push_back(std::move(wake));
          }
        }
      }
    };
    deliver_to("", all);
    for (const auto& [conv, indexes] : by_conversation) {
      deliver_to(conv, indexes);
    }
  }
  for (auto& wake : wakes) wake();
}

void EventHub::CloseAll() {
  std::vector<std::function<void()>> wakes;
  {
    std::lock_guard<std::mutex> lock(mu_);
    closed_ = true;
    for (auto& [key, weak] : subs_) {
      if (std::shared_ptr<Subscription> sub = weak.lock()) {
        std::lock_guard<std::mutex> sub_lock(sub->mu_);
        sub->closed_ = true;
        if (sub->wake_) wakes.push_back(std::exchange(sub->wake_, nullptr));
      }
    }
    subs_.clear();
  }
  for (auto& wake : wakes) wake();
}

size_t EventHub::subscribers() const {
  std::lock_guard<std::mutex> lock(mu_);
  size_t n = 0;
  for (const auto& [key, weak] : subs_) n += weak.expired() ? 0 : 1;
  return n;
}

}  // namespace convstore::http
